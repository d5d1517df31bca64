package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	gosync "sync"
	"testing"
	"time"

	"backupsync/internal/clustertest"
	"backupsync/internal/ftptest"
)

// TestWholeClusterConverges is the whole-cluster proof: a 2-node source and
// a 2-node destination cluster with real vsftpd archive volumes and daemons
// as processes, paired with backupsyncctl pair, running on their schedule.
// Backup sets keep arriving (one written slowly), one expires; the
// destination converges to an md5-identical copy, the expired set
// disappears there, a watcher never sees a partial file under a final name,
// and a stopped source daemon does not hold up the other.
func TestWholeClusterConverges(t *testing.T) {
	srcIPs, dstIPs := []string{"127.0.11.51", "127.0.11.52"}, []string{"127.0.11.61", "127.0.11.62"}
	srcPort, dstPort := clustertest.CommonFreePort(t, srcIPs...), clustertest.CommonFreePort(t, dstIPs...)
	var srcFTP, dstFTP []*ftptest.Server
	for i := range 2 {
		srcFTP = append(srcFTP, ftptest.StartPort(t, "vsftpd", srcIPs[i], srcPort))
		dstFTP = append(dstFTP, ftptest.StartPort(t, "vsftpd", dstIPs[i], dstPort))
	}
	sshPort := clustertest.CommonFreePort(t, dstIPs...)
	source := clustertest.Start(t, "n005", srcIPs, clustertest.Options{FTPPorts: []int{srcPort, srcPort}, RemoteSSHPort: sshPort})
	dest := clustertest.Start(t, "n006", dstIPs, clustertest.Options{FTPPorts: []int{dstPort, dstPort}, SSHPort: sshPort})
	vol := func(s *ftptest.Server) string { return filepath.Join(s.Dir, s.Volume) }

	writeSet := func(id, level int, age time.Duration) {
		for i, s := range srcFTP {
			for f, size := range []int{700 << 10, 300 << 10, 5 << 10} {
				name := fmt.Sprintf("data_%d", f)
				if f == 2 {
					name = "metadata"
				}
				p := filepath.Join(vol(s), "DB", fmt.Sprintf("id_%d/level_%d/node_%d", id, level, i), name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				data := make([]byte, size)
				for j := range data {
					data[j] = byte(j*7 + id + i + f)
				}
				os.WriteFile(p, data, 0o644)
				mt := time.Now().Add(-age)
				os.Chtimes(p, mt, mt)
			}
		}
	}
	writeSet(1, 0, time.Hour)
	writeSet(2, 1, time.Hour)

	work := t.TempDir()
	clientCfg := fmt.Sprintf("Connection1\n{\nDATABASE_NAME = DB\nSTART_CYCLE = @every 2s\nLOCAL_URL = ftp://%s:%s@%%s/%s\nREMOTE_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_NODES = %s; %s\nSSH = client\nSETTLE_TIME = 2s\n}\n",
		srcFTP[0].User, srcFTP[0].Password, srcFTP[0].Volume, dstFTP[0].User, dstFTP[0].Password, dstPort, dstFTP[0].Volume, dstIPs[0], dstIPs[1])
	srcCfg, dstCfg := filepath.Join(work, "client.cfg"), filepath.Join(work, "server.cfg")
	os.WriteFile(srcCfg, []byte(clientCfg), 0o600)
	os.WriteFile(dstCfg, []byte("Connection1\n{\nSSH = server\n}\n"), 0o600)

	// The watcher: every 50 ms, every file under a final name at the
	// destination is recorded with its size; at the end each must have
	// had its source's size.
	seen := map[string]map[int64]bool{}
	var seenMu gosync.Mutex
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(50 * time.Millisecond):
			}
			for _, d := range dstFTP {
				filepath.WalkDir(filepath.Join(vol(d), "DB"), func(p string, e fs.DirEntry, err error) error {
					if err != nil || e.IsDir() || filepath.Ext(p) == ".backupsync-part" {
						return nil
					}
					if fi, err := e.Info(); err == nil {
						rel, _ := filepath.Rel(vol(d), p)
						seenMu.Lock()
						if seen[rel] == nil {
							seen[rel] = map[int64]bool{}
						}
						seen[rel][fi.Size()] = true
						seenMu.Unlock()
					}
					return nil
				})
			}
		}
	}()

	ctl := filepath.Join(clustertest.Binaries(t), "backupsyncctl")
	if out, err := exec.Command(ctl, "--insecure", "pair", "--source", source.URL(), "--dest", dest.URL(),
		"--connection", "Connection1", "--source-config", srcCfg, "--dest-config", dstCfg).CombinedOutput(); err != nil {
		t.Fatalf("pair: %v\n%s", err, out)
	}

	converged := func(node int) bool {
		want, got := clustertest.NodeSums(vol(srcFTP[node]), "DB", node), clustertest.NodeSums(vol(dstFTP[node]), "DB", node)
		return len(want) > 0 && fmt.Sprint(want) == fmt.Sprint(got)
	}
	waitConverged := func(what string, nodes ...int) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			all := true
			for _, n := range nodes {
				all = all && converged(n)
			}
			if all {
				t.Logf("converged: %s", what)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no convergence in 90s\nsource log:\n%s", what, source.Nodes[0].Output())
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	waitConverged("first copy", 0, 1)

	writeSet(3, 1, time.Hour)
	waitConverged("a new set", 0, 1)

	// One set is written slowly: its data file grows for a few cycles.
	slow := filepath.Join(vol(srcFTP[0]), "DB/id_4/level_1/node_0")
	os.MkdirAll(slow, 0o755)
	os.WriteFile(filepath.Join(slow, "metadata"), []byte("meta"), 0o644)
	f, _ := os.Create(filepath.Join(slow, "data_0"))
	for range 12 {
		f.Write(make([]byte, 64<<10))
		time.Sleep(500 * time.Millisecond)
		if _, err := os.Stat(filepath.Join(vol(dstFTP[0]), "DB/id_4/level_1/node_0/data_0")); err == nil {
			t.Fatal("a file still being written reached the destination")
		}
	}
	f.Close()
	if _, err := os.Stat(filepath.Join(vol(dstFTP[0]), "DB/id_4/level_1/node_0/metadata")); err == nil {
		t.Error("the metadata of a set still being written reached the destination")
	}
	// Done writing: once its time is older than SETTLE_TIME and vsftpd's
	// minute precision, it is copied. Age it rather than wait the minute.
	old := time.Now().Add(-5 * time.Minute)
	os.Chtimes(filepath.Join(slow, "data_0"), old, old)
	os.Chtimes(filepath.Join(slow, "metadata"), old, old)
	waitConverged("the slowly written set", 0, 1)

	// id_1 expires at the source.
	for _, s := range srcFTP {
		os.RemoveAll(filepath.Join(vol(s), "DB/id_1"))
	}
	waitConverged("expiry", 0, 1)
	// Its emptied directories go in the same cycle, right after its files.
	for i, d := range dstFTP {
		dir := filepath.Join(vol(d), "DB/id_1")
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if _, err := os.Stat(dir); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("the expired set's directory is still at destination node %d", i)
				break
			}
		}
	}

	// A stopped source daemon does not hold up the other.
	source.Nodes[1].Stop()
	writeSet(5, 1, time.Hour)
	waitConverged("node_0 with n0052 stopped", 0)
	if converged(1) {
		t.Error("node_1 converged although its daemon is stopped")
	}

	close(stopWatch)
	<-watched
	final := map[string]int64{}
	for _, s := range srcFTP {
		filepath.WalkDir(filepath.Join(vol(s), "DB"), func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				fi, _ := e.Info()
				rel, _ := filepath.Rel(vol(s), p)
				final[rel] = fi.Size()
			}
			return nil
		})
	}
	partial := 0
	for p, sizes := range seen {
		for size := range sizes {
			if want, ok := final[p]; ok && size != want {
				t.Errorf("the watcher saw %s under its final name with %d bytes, the source has %d", p, size, want)
				partial++
			}
		}
	}
	t.Logf("watcher: %d destination files observed, %d partial", len(seen), partial)
	for _, n := range append(source.Nodes, dest.Nodes...) {
		n.CheckNoSecrets(t, srcFTP[0].Password, dstFTP[0].Password)
	}
}
