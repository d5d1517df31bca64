package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"backupsync/internal/clustertest"
	"backupsync/internal/ftptest"
)

// TestTunnelFailoverAndKilledServer: the first REMOTE_NODES entry is down,
// so the tunnel fails over to the second; the destination daemon (the SSH
// server) is killed in the middle of a large file: the cycle fails that
// file and publishes nothing partial; after a restart the next cycle
// resumes it and the copy is md5-identical.
func TestTunnelFailoverAndKilledServer(t *testing.T) {
	srcIP, dstIP, deadIP := "127.0.11.31", "127.0.11.41", "127.0.11.49"
	srcFTP := ftptest.Start(t, "vsftpd", srcIP)
	dstFTP := ftptest.Start(t, "vsftpd", dstIP)
	sshPort := clustertest.FreePort(t, dstIP)
	source := clustertest.Start(t, "n003", []string{srcIP}, clustertest.Options{FTPPorts: []int{srcFTP.Port}, RemoteSSHPort: sshPort})
	dest := clustertest.Start(t, "n004", []string{dstIP}, clustertest.Options{FTPPorts: []int{dstFTP.Port}, SSHPort: sshPort})

	big := "DB/id_1/level_0/node_0/data_big"
	p := filepath.Join(srcFTP.Dir, srcFTP.Volume, big)
	os.MkdirAll(filepath.Dir(p), 0o755)
	data := bytes.Repeat([]byte("0123456789abcdef"), 3<<20) // 48 MiB
	os.WriteFile(p, data, 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)

	clientCfg := fmt.Sprintf("Connection1\n{\nDATABASE_NAME = DB\nSTART_CYCLE = @every 1h\nLOCAL_URL = ftp://%s:%s@%%s/%s\nREMOTE_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_NODES = %s; %s\nSSH = client\nBANDWIDTH_LIMIT = 16M\n}\n",
		srcFTP.User, srcFTP.Password, srcFTP.Volume, dstFTP.User, dstFTP.Password, dstFTP.Port, dstFTP.Volume, deadIP, dstIP)
	src, dst := newAdmin(t, source), newAdmin(t, dest)
	src.each("INSTALL", "")
	dst.each("INSTALL", "")
	src.each("UPLOAD_CONFIG", b64(clientCfg))
	dst.each("UPLOAD_CONFIG", b64("Connection1\n{\nSSH = server\n}\n"))
	dst.each("UPLOAD_KEY", b64(strings.Join(src.each("SSHKEY", "Connection1"), "\n")))
	src.each("UPLOAD_KEY", b64(strings.Join(dst.each("SSHKEY", "Connection1"), "\n")))
	dst.each("ACTIVATE", "Connection1")
	src.each("ACTIVATE", "Connection1")

	bin := filepath.Join(clustertest.Binaries(t), "backupsyncd")
	syncOnce := func() (string, error) {
		out, err := exec.Command(bin, "sync-once", "--settings", source.Nodes[0].Settings(), "--connection", "Connection1").CombinedOutput()
		t.Logf("sync-once: %v\n%s", err, out)
		return string(out), err
	}

	// 48 MiB at 16 MiB/s: kill the SSH server once 8 MiB reached the
	// destination's temp file, in the middle of the file.
	temp := filepath.Join(dstFTP.Dir, dstFTP.Volume, big+".backupsync-part")
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if fi, err := os.Stat(temp); err == nil && fi.Size() > 8<<20 {
				dest.Nodes[0].Kill()
				return
			}
		}
	}()
	out, err := syncOnce()
	<-killed
	if err == nil {
		t.Fatal("the cycle succeeded although its SSH server died mid-transfer")
	}
	final := filepath.Join(dstFTP.Dir, dstFTP.Volume, big)
	if _, err := os.Stat(final); err == nil {
		t.Fatal("a partial file is under its final name")
	}
	if !strings.Contains(out, "failed: copy "+big) {
		t.Errorf("the report does not name the failed file:\n%s", out)
	}

	dest.Nodes[0].Start(t)
	out, err = syncOnce()
	if err != nil {
		t.Fatalf("the cycle after the restart failed: %v", err)
	}
	if !strings.Contains(out, "resumed 1") {
		t.Errorf("the file was not resumed:\n%s", out)
	}
	got, _ := os.ReadFile(final)
	if !bytes.Equal(got, data) {
		t.Errorf("the copy differs from the source (%d bytes, want %d)", len(got), len(data))
	}
	for _, n := range append(source.Nodes, dest.Nodes...) {
		n.CheckNoSecrets(t, srcFTP.Password, dstFTP.Password)
	}
}
