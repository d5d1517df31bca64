package e2e

import (
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

// TestTwoPairingsOnOneCluster: the middle cluster is the server of EDU01's
// Connection1 and the client of its own Connection3 to EDU03, each pairing
// made with backupsyncctl pair from its own pair of files (the guide's one
// file per pairing). The second upload keeps the first connection, its
// activation and keys: both keep syncing, md5-identical, and pair's
// pre-flight test passes for both. Removing Connection3 by uploading
// "Connection3 { REMOVE = true }" drops it and its activation; Connection1
// goes on syncing.
func TestTwoPairingsOnOneCluster(t *testing.T) {
	ipA, ipB, ipC := "127.0.11.101", "127.0.11.102", "127.0.11.103"
	ftpA, ftpB, ftpC := ftptest.Start(t, "vsftpd", ipA), ftptest.Start(t, "vsftpd", ipB), ftptest.Start(t, "vsftpd", ipC)
	sshB, sshC := clustertest.CommonFreePort(t, ipB), clustertest.CommonFreePort(t, ipC)
	edu01 := clustertest.Start(t, "n011", []string{ipA}, clustertest.Options{FTPPorts: []int{ftpA.Port}, RemoteSSHPort: sshB})
	mid := clustertest.Start(t, "n012", []string{ipB}, clustertest.Options{FTPPorts: []int{ftpB.Port}, SSHPort: sshB, RemoteSSHPort: sshC})
	edu03 := clustertest.Start(t, "n013", []string{ipC}, clustertest.Options{FTPPorts: []int{ftpC.Port}, SSHPort: sshC})
	vol := func(s *ftptest.Server) string { return filepath.Join(s.Dir, s.Volume) }

	writeSet := func(s *ftptest.Server, db string, id int) {
		for f, size := range []int{200 << 10, 3 << 10} {
			name := fmt.Sprintf("data_%d", f)
			if f == 1 {
				name = "metadata"
			}
			p := filepath.Join(vol(s), db, fmt.Sprintf("id_%d/level_0/node_0", id), name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			data := make([]byte, size)
			for j := range data {
				data[j] = byte(j*13 + id + f + len(db))
			}
			os.WriteFile(p, data, 0o644)
			old := time.Now().Add(-time.Hour)
			os.Chtimes(p, old, old)
		}
	}
	writeSet(ftpA, "DB1", 1)
	writeSet(ftpB, "DB3", 1)

	work := t.TempDir()
	client := func(name, db string, src, dst *ftptest.Server, remote string) string {
		return fmt.Sprintf("# %s: this cluster copies %s to the remote one\n%s\n{\nDATABASE_NAME = %s\nSTART_CYCLE = @every 2s\n"+
			"LOCAL_URL = ftp://%s:%s@%%s/%s\nREMOTE_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_NODES = %s\nSSH = client\nSETTLE_TIME = 2s\n}\n",
			name, db, name, db, src.User, src.Password, src.Volume, dst.User, dst.Password, dst.Port, dst.Volume, remote)
	}
	file := func(name, content string) string {
		p := filepath.Join(work, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ctl := filepath.Join(clustertest.Binaries(t), "backupsyncctl")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(ctl, append([]string{"--insecure"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("backupsyncctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	pair := func(src, dst *clustertest.Cluster, conn, srcCfg, dstCfg string) string {
		return run("pair", "--source", src.URL(), "--dest", dst.URL(), "--connection", conn, "--source-config", srcCfg, "--dest-config", dstCfg)
	}

	// EDU01 → middle (Connection1), then middle → EDU03 (Connection3): the
	// middle cluster gets the server file of the first pairing and the
	// client file of the second.
	out := pair(edu01, mid, "Connection1",
		file("edu01-client.cfg", client("Connection1", "DB1", ftpA, ftpB, ipB)), file("mid-server.cfg", "Connection1\n{\nSSH = server\n}\n"))
	if !strings.Contains(out, "paired and tested: ") {
		t.Fatalf("first pairing:\n%s", out)
	}
	out = pair(mid, edu03, "Connection3",
		file("mid-client.cfg", client("Connection3", "DB3", ftpB, ftpC, ipC)), file("edu03-server.cfg", "Connection3\n{\nSSH = server\n}\n"))
	if !strings.Contains(out, "paired and tested: ") || !strings.Contains(out, "kept: Connection1 (server, activated)") {
		t.Fatalf("second pairing:\n%s", out)
	}
	status := run("--url", mid.URL(), "status", "Connection1")
	if !strings.Contains(status, "connection: Connection1 (activated)") || !strings.Contains(status, "origin: uploaded ") {
		t.Fatalf("middle cluster's Connection1 after the second pairing:\n%s", status)
	}

	type copyOf struct {
		db       string
		src, dst *ftptest.Server
	}
	converged := func(what string, copies ...copyOf) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			all := true
			for _, c := range copies {
				want, got := clustertest.NodeSums(vol(c.src), c.db, 0), clustertest.NodeSums(vol(c.dst), c.db, 0)
				all = all && len(want) > 0 && fmt.Sprint(want) == fmt.Sprint(got)
			}
			if all {
				t.Logf("converged: %s", what)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no convergence in 90s\nmiddle log:\n%s", what, mid.Nodes[0].Output())
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	db1, db3 := copyOf{"DB1", ftpA, ftpB}, copyOf{"DB3", ftpB, ftpC}
	converged("both pairings, first copy", db1, db3)
	writeSet(ftpA, "DB1", 2)
	writeSet(ftpB, "DB3", 2)
	converged("both pairings keep syncing", db1, db3)

	// backupsyncctl test: passes on the paired cluster; with a wrong FTP
	// password at the destination, the destination login fails with the
	// server's 530 and the next step, exit 1; the right file again passes.
	if out := run("--url", edu01.URL(), "test", "Connection1"); !strings.Contains(out, "test of Connection1 on n0111: ok") ||
		!strings.Contains(out, "the far end publishes (backupsyncd)") {
		t.Fatalf("test:\n%s", out)
	}
	wrong := strings.Replace(client("Connection1", "DB1", ftpA, ftpB, ipB), "REMOTE_URL = ftp://"+ftpB.User+":"+ftpB.Password+"@",
		"REMOTE_URL = ftp://"+ftpB.User+":wrong-password@", 1)
	run("--url", edu01.URL(), "upload-config", file("edu01-wrong.cfg", wrong))
	cmd := exec.Command(ctl, "--insecure", "--url", edu01.URL(), "test", "Connection1")
	outb, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 ||
		!strings.Contains(string(outb), "destination login failed: the destination's FTP server refused the login of REMOTE_URL") ||
		!strings.Contains(string(outb), "530") || !strings.Contains(string(outb), "next: check the user and password in REMOTE_URL of Connection1") ||
		strings.Contains(string(outb), "wrong-password") {
		t.Fatalf("test with a wrong password: %v\n%s", err, outb)
	}
	run("--url", edu01.URL(), "upload-config", file("edu01-client.cfg", client("Connection1", "DB1", ftpA, ftpB, ipB)))
	run("--url", edu01.URL(), "test", "Connection1")

	// The removal form: Connection3 goes, with its activation; Connection1
	// stays and keeps syncing.
	out = run("--url", mid.URL(), "upload-config", file("remove3.cfg", "Connection3\n{\nREMOVE = true\n}\n"))
	if !strings.Contains(out, "kept: Connection1 (server, activated)\n") || !strings.Contains(out, "removed: Connection3\n") ||
		!strings.Contains(out, "note: Connection3 was activated: its activation was dropped with it") {
		t.Fatalf("removal:\n%s", out)
	}
	if data, _ := os.ReadFile(filepath.Join(mid.Nodes[0].Dir, "connections.cfg")); strings.Contains(string(data), "Connection3") ||
		!strings.Contains(string(data), "Connection1") {
		t.Fatalf("the middle cluster's connections file after the removal:\n%s", data)
	}
	writeSet(ftpA, "DB1", 3)
	converged("Connection1 after Connection3's removal", db1)
	_ = edu03
}
