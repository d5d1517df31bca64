package crash

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"backupsync/internal/clustertest"
	"backupsync/internal/ftptest"
)

// TestFarEndKills: two paired daemons copy on the far-end path (the
// destination's daemon publishes into its own archive FTP) while requests
// are in flight, and the destination's daemon and the source's are killed
// with SIGKILL in turn, several times each. A watcher on the destination
// never sees a file under its final name with another size than the
// source's; after each restart the destination becomes md5-identical and
// no temp file is left (a temp file is resumed, or removed by the plan).
// Addresses 127.0.16.11 and 127.0.16.12.
func TestFarEndKills(t *testing.T) {
	const rounds = 6 // three of each daemon
	srcIP, dstIP := "127.0.16.11", "127.0.16.12"
	srcFTP := ftptest.Start(t, "vsftpd", srcIP)
	dstFTP := ftptest.Start(t, "vsftpd", dstIP)
	sshPort := clustertest.FreePort(t, dstIP)
	source := clustertest.Start(t, "n017", []string{srcIP}, clustertest.Options{FTPPorts: []int{srcFTP.Port}, RemoteSSHPort: sshPort})
	dest := clustertest.Start(t, "n018", []string{dstIP}, clustertest.Options{FTPPorts: []int{dstFTP.Port}, SSHPort: sshPort})
	srcVol, dstVol := filepath.Join(srcFTP.Dir, srcFTP.Volume), filepath.Join(dstFTP.Dir, dstFTP.Volume)

	// Many small files and a few large ones: small publishes pipelined on
	// the far end's channels, large ones striped.
	rng := rand.New(rand.NewPCG(2026, 19))
	sizes := map[string]int{}
	for i := range 200 {
		sizes[fmt.Sprintf("DB/id_1/level_0/node_0/small_%03d", i)] = 16 << 10
	}
	for i := range 3 {
		sizes[fmt.Sprintf("DB/id_1/level_0/node_0/large_%d", i)] = 24 << 20
	}
	sizes["DB/id_1/level_0/node_0/metadata"] = 1000
	for rel, n := range sizes {
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		p := filepath.Join(srcVol, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Hour)
		os.Chtimes(p, old, old)
	}
	want := sums(t, srcVol)

	work := t.TempDir()
	cfg := fmt.Sprintf("Connection1\n{\nDATABASE_NAME = DB\nSTART_CYCLE = @every 1s\nLOCAL_URL = ftp://%s:%s@%%s/%s\nREMOTE_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_NODES = %s\nSSH = client\nSETTLE_TIME = 1s\nPARALLEL = 8\nBANDWIDTH_LIMIT = 48M\n}\n",
		srcFTP.User, srcFTP.Password, srcFTP.Volume, dstFTP.User, dstFTP.Password, dstFTP.Port, dstFTP.Volume, dstIP)
	os.WriteFile(filepath.Join(work, "client.cfg"), []byte(cfg), 0o600)
	os.WriteFile(filepath.Join(work, "server.cfg"), []byte("Connection1\n{\nSSH = server\n}\n"), 0o600)
	ctl := filepath.Join(clustertest.Binaries(t), "backupsyncctl")
	if out, err := exec.Command(ctl, "--insecure", "pair", "--source", source.URL(), "--dest", dest.URL(), "--connection", "Connection1",
		"--source-config", filepath.Join(work, "client.cfg"), "--dest-config", filepath.Join(work, "server.cfg")).CombinedOutput(); err != nil {
		t.Fatalf("pair: %v\n%s", err, out)
	}

	var mu gosync.Mutex
	var partials []string
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			filepath.WalkDir(filepath.Join(dstVol, "DB"), func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() || strings.HasSuffix(p, ".backupsync-part") {
					return nil
				}
				rel, _ := filepath.Rel(dstVol, p)
				if fi, err := d.Info(); err == nil && int64(sizes[rel]) != fi.Size() {
					mu.Lock()
					partials = append(partials, fmt.Sprintf("%s (%d bytes)", rel, fi.Size()))
					mu.Unlock()
				}
				return nil
			})
		}
	}()

	temps := func() (n int) {
		filepath.WalkDir(filepath.Join(dstVol, "DB"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".backupsync-part") {
				n++
			}
			return nil
		})
		return n
	}
	for k := 1; k <= rounds; k++ {
		// A fresh copy each round: the destination loses its copy.
		source.Nodes[0].Kill()
		os.RemoveAll(filepath.Join(dstVol, "DB"))
		source.Nodes[0].Start(t)
		victim, name := source.Nodes[0], "source"
		if k%2 == 1 {
			victim, name = dest.Nodes[0], "destination"
		}
		wait := time.Duration(400+rng.IntN(1200)) * time.Millisecond
		time.Sleep(wait)
		victim.Kill()
		left := temps()
		start := time.Now()
		victim.Start(t)
		for fmt.Sprint(sums(t, dstVol)) != fmt.Sprint(want) || temps() > 0 {
			if time.Since(start) > 2*time.Minute {
				t.Fatalf("round %d (%s killed): the destination did not become identical without temp files in 2 minutes\nsource:\n%s\ndestination:\n%s",
					k, name, source.Nodes[0].Output(), dest.Nodes[0].Output())
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("round %d: %s killed after %v with %d temp files at the destination; identical, no temp file, %v after the restart",
			k, name, wait, left, time.Since(start).Round(10*time.Millisecond))
	}
	close(stop)
	<-watched
	if len(partials) > 0 {
		t.Errorf("the watcher saw %d partial files under final names: %v", len(partials), partials[:min(len(partials), 10)])
	}
	if !strings.Contains(dest.Nodes[0].Output(), "far end: publishing into the archive FTP") {
		t.Errorf("the destination's daemon did not publish on the far-end path:\n%s", dest.Nodes[0].Output())
	}
	dest.Nodes[0].CheckNoSecrets(t, dstFTP.Password)
	source.Nodes[0].CheckNoSecrets(t, dstFTP.Password)
}
