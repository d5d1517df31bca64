// Package crash is the crash proof: a source daemon is killed with SIGKILL
// at random moments of a large sync; after each restart the destination
// must become md5-identical, and a watcher listing the destination every
// 50 ms must never see a partial file under a final name. Its tests use
// 127.0.16.x. With BACKUPSYNC_RELIABILITY_OUT set, the figures are written
// there as Markdown (bench/crash.sh puts them into docs/RELIABILITY.md).
package crash

import (
	"crypto/md5"
	"encoding/hex"
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

const (
	kills     = 20
	files     = 8
	fileSize  = 16 << 20 // 128 MiB in all
	bandwidth = "64M"    // a full copy takes about 2 s: kills land mid-transfer
)

func sums(t *testing.T, vol string) map[string]string {
	out := map[string]string{}
	filepath.WalkDir(filepath.Join(vol, "DB"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil // vanished while read: a temp file renamed
		}
		sum := md5.Sum(data)
		rel, _ := filepath.Rel(vol, p)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	return out
}

type observation struct {
	kill         int
	killedAfter  time.Duration
	tempsLeft    int
	convergedIn  time.Duration
	bytesAtKill  int64
	finalsAtKill int
	partialsSeen int
}

func TestCrashProof(t *testing.T) {
	srcIP, dstIP := "127.0.16.1", "127.0.16.2"
	srcFTP := ftptest.Start(t, "vsftpd", srcIP)
	dstFTP := ftptest.Start(t, "vsftpd", dstIP)
	sshPort := clustertest.FreePort(t, dstIP)
	source := clustertest.Start(t, "n007", []string{srcIP}, clustertest.Options{FTPPorts: []int{srcFTP.Port}, RemoteSSHPort: sshPort})
	dest := clustertest.Start(t, "n008", []string{dstIP}, clustertest.Options{FTPPorts: []int{dstFTP.Port}, SSHPort: sshPort})
	srcVol, dstVol := filepath.Join(srcFTP.Dir, srcFTP.Volume), filepath.Join(dstFTP.Dir, dstFTP.Volume)

	rng := rand.New(rand.NewPCG(2026, 11))
	final := map[string][]byte{}
	for i := range files {
		rel := fmt.Sprintf("DB/id_1/level_0/node_0/data_%02d", i)
		if i == files-1 {
			rel = "DB/id_1/level_0/node_0/metadata"
		}
		data := make([]byte, fileSize)
		for j := 0; j < len(data); j += 8 {
			v := rng.Uint64()
			for k := 0; k < 8 && j+k < len(data); k++ {
				data[j+k] = byte(v >> (8 * k))
			}
		}
		p := filepath.Join(srcVol, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, data, 0o644)
		old := time.Now().Add(-time.Hour)
		os.Chtimes(p, old, old)
		final[rel] = data
	}
	want := sums(t, srcVol)

	work := t.TempDir()
	cfg := fmt.Sprintf("Connection1\n{\nDATABASE_NAME = DB\nSTART_CYCLE = @every 1s\nLOCAL_URL = ftp://%s:%s@%%s/%s\nREMOTE_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_NODES = %s\nSSH = client\nSETTLE_TIME = 1s\nBANDWIDTH_LIMIT = %s\n}\n",
		srcFTP.User, srcFTP.Password, srcFTP.Volume, dstFTP.User, dstFTP.Password, dstFTP.Port, dstFTP.Volume, dstIP, bandwidth)
	os.WriteFile(filepath.Join(work, "client.cfg"), []byte(cfg), 0o600)
	os.WriteFile(filepath.Join(work, "server.cfg"), []byte("Connection1\n{\nSSH = server\n}\n"), 0o600)
	ctl := filepath.Join(clustertest.Binaries(t), "backupsyncctl")
	if out, err := exec.Command(ctl, "--insecure", "pair", "--source", source.URL(), "--dest", dest.URL(), "--connection", "Connection1",
		"--source-config", filepath.Join(work, "client.cfg"), "--dest-config", filepath.Join(work, "server.cfg")).CombinedOutput(); err != nil {
		t.Fatalf("pair: %v\n%s", err, out)
	}

	// The watcher: any file under a final name must have its final size
	// (and, read back at the end of each round, its final content).
	var mu gosync.Mutex
	partials := 0
	var partialNames []string
	stop := make(chan struct{})
	watched := make(chan struct{})
	listings := 0
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			filepath.WalkDir(filepath.Join(dstVol, "DB"), func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() || strings.HasSuffix(p, ".backupsync-part") {
					return nil
				}
				rel, _ := filepath.Rel(dstVol, p)
				if fi, err := d.Info(); err == nil && int64(len(final[rel])) != fi.Size() {
					mu.Lock()
					partials++
					partialNames = append(partialNames, fmt.Sprintf("%s (%d bytes)", rel, fi.Size()))
					mu.Unlock()
				}
				return nil
			})
			mu.Lock()
			listings++
			mu.Unlock()
		}
	}()

	var obs []observation
	for k := 1; k <= kills; k++ {
		// A fresh large sync: the destination loses its copy.
		source.Nodes[0].Kill()
		os.RemoveAll(filepath.Join(dstVol, "DB"))
		mu.Lock()
		before := partials
		mu.Unlock()
		source.Nodes[0].Start(t)
		wait := time.Duration(300+rng.IntN(2200)) * time.Millisecond
		time.Sleep(wait)
		source.Nodes[0].Kill()
		o := observation{kill: k, killedAfter: wait}
		filepath.WalkDir(filepath.Join(dstVol, "DB"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				fi, _ := d.Info()
				o.bytesAtKill += fi.Size()
				if strings.HasSuffix(p, ".backupsync-part") {
					o.tempsLeft++
				} else {
					o.finalsAtKill++
				}
			}
			return nil
		})
		start := time.Now()
		source.Nodes[0].Start(t)
		for {
			if fmt.Sprint(sums(t, dstVol)) == fmt.Sprint(want) {
				break
			}
			if time.Since(start) > 2*time.Minute {
				t.Fatalf("kill %d: the destination did not become identical in 2 minutes\n%s", k, source.Nodes[0].Output())
			}
			time.Sleep(100 * time.Millisecond)
		}
		o.convergedIn = time.Since(start)
		mu.Lock()
		o.partialsSeen = partials - before
		mu.Unlock()
		obs = append(obs, o)
		t.Logf("kill %2d after %v: %d final + %d temp files (%.1f MiB) at the kill; identical %v after the restart; partial files seen: %d",
			k, o.killedAfter, o.finalsAtKill, o.tempsLeft, float64(o.bytesAtKill)/(1<<20), o.convergedIn.Round(10*time.Millisecond), o.partialsSeen)
	}
	close(stop)
	<-watched
	if partials > 0 {
		t.Errorf("the watcher saw %d partial files under final names: %v", partials, partialNames)
	}
	if out := os.Getenv("BACKUPSYNC_RELIABILITY_OUT"); out != "" {
		writeFigures(t, out, obs, listings, partials)
	}
}

func writeFigures(t *testing.T, path string, obs []observation, listings, partials int) {
	var b strings.Builder
	fmt.Fprintf(&b, "| kill | killed after | at the kill: final files | temp files | MiB at destination | identical after restart | partial files seen |\n|---|---|---|---|---|---|---|\n")
	var worst time.Duration
	for _, o := range obs {
		fmt.Fprintf(&b, "| %d | %v | %d | %d | %.1f | %v | %d |\n", o.kill, o.killedAfter, o.finalsAtKill, o.tempsLeft,
			float64(o.bytesAtKill)/(1<<20), o.convergedIn.Round(10*time.Millisecond), o.partialsSeen)
		worst = max(worst, o.convergedIn)
	}
	fmt.Fprintf(&b, "\n%d kills, %d destination listings by the watcher (every 50 ms), %d partial files under a final name; slowest recovery %v.\n",
		len(obs), listings, partials, worst.Round(10*time.Millisecond))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Error(err)
	}
}
