// Package confd runs admins' Python 3 scripts of the ConfD dialect
// (job_exec, GET /master, as the ConfD seed makes those calls) against
// loopback clusters of backupsyncd processes whose archive volumes are real
// FTP servers, and checks that backupsyncctl --api confd prints what the
// plugin dialect prints. Its tests use 127.0.15.10 and above (the unit
// tests of internal/confd use 127.0.15.1-9).
package confd

import (
	"bytes"
	"encoding/json"
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

// ftpKind is vsftpd where it is installed (and always under CI, where
// test/install-deps.sh installs it), else the embedded server.
func ftpKind() string {
	if _, err := exec.LookPath("vsftpd"); err == nil || os.Getenv("CI") == "true" {
		return ftptest.KindVsftpd
	}
	if _, err := os.Stat("/usr/sbin/vsftpd"); err == nil {
		return ftptest.KindVsftpd
	}
	return ftptest.KindEmbedded
}

func urls(c *clustertest.Cluster) string {
	var u []string
	for _, n := range c.Nodes {
		u = append(u, n.URL())
	}
	return strings.Join(u, ",")
}

// write puts size bytes at the volume-relative path rel of s, modified
// at when.
func write(t *testing.T, s *ftptest.Server, rel string, size int, when time.Time) {
	t.Helper()
	p := filepath.Join(s.Dir, s.Volume, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.Repeat([]byte{'b'}, size), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, when, when); err != nil {
		t.Fatal(err)
	}
}

func TestConfDFlow(t *testing.T) {
	clustertest.Python(t)
	kind := ftpKind()
	srcIPs := []string{"127.0.15.11", "127.0.15.12", "127.0.15.13"}
	dstIPs := []string{"127.0.15.21", "127.0.15.22"}
	const remoteIP = "127.0.15.31" // Connection2's remote volume (direct FTP)

	srcPort, dstPort := clustertest.CommonFreePort(t, srcIPs...), clustertest.CommonFreePort(t, dstIPs...)
	var srcFTP, dstFTP []*ftptest.Server
	for _, ip := range srcIPs {
		srcFTP = append(srcFTP, ftptest.StartPort(t, kind, ip, srcPort))
	}
	for _, ip := range dstIPs {
		dstFTP = append(dstFTP, ftptest.StartPort(t, kind, ip, dstPort))
	}
	remote := ftptest.Start(t, kind, remoteIP)
	deadPort := clustertest.FreePort(t, remoteIP) // Connection3: nobody listens
	sshPort := clustertest.CommonFreePort(t, dstIPs...)
	start := time.Now()
	dest := clustertest.Start(t, "n002", dstIPs, clustertest.Options{FTPPorts: []int{dstPort, dstPort}, SSHPort: sshPort})
	source := clustertest.Start(t, "n001", srcIPs, clustertest.Options{FTPPorts: []int{srcPort, srcPort, srcPort}, RemoteSSHPort: sshPort})
	t.Logf("%s FTP servers and 5 daemons up in %v", kind, time.Since(start).Round(time.Millisecond))

	u, pw := srcFTP[0].User, srcFTP[0].Password
	clientCfg := fmt.Sprintf(`# the source cluster: Connection1 through SSH to the destination cluster,
# Connection2 directly to another volume, Connection3 to nobody
Connection1
{
DATABASE_NAME = DB2
START_CYCLE = @every 1h
LOCAL_URL = ftp://%[1]s:%[2]s@%%s/v0003
REMOTE_URL = ftp://%[1]s:%[2]s@%%s:%[3]d/v0003
REMOTE_NODES = %[4]s; %[5]s
SSH = client
}
Connection2
{
DATABASE_NAME = DB1
START_CYCLE = @every 1h
LOCAL_URL = ftp://%[1]s:%[2]s@%%s/v0003
REMOTE_URL = ftp://%[1]s:%[2]s@%%s:%[6]d/v0003
REMOTE_NODES = %[7]s
SSH = none
SETTLE_TIME = 1s
}
Connection3
{
DATABASE_NAME = DB9
START_CYCLE = @every 1h
LOCAL_URL = ftp://%[1]s:%[2]s@%%s/v0003
REMOTE_URL = ftp://%[1]s:%[2]s@%%s:%[8]d/v0003
REMOTE_NODES = %[7]s
SSH = none
}
`, u, pw, dstPort, dstIPs[0], dstIPs[1], remote.Port, remoteIP, deadPort)
	serverCfg := "Connection1\n{\nVerbose = true\nSSH = server\n}\n"
	work := t.TempDir()
	client, server := filepath.Join(work, "client.cfg"), filepath.Join(work, "server.cfg")
	os.WriteFile(client, []byte(clientCfg), 0o600)
	os.WriteFile(server, []byte(serverCfg), 0o600)

	// Backup trees on every source node; stable (an hour old, on a whole
	// minute, as LIST shows recent times).
	when := time.Now().Add(-time.Hour).Truncate(time.Minute)
	for i, s := range srcFTP {
		node := fmt.Sprintf("node_%d", i)
		write(t, s, "DB1/id_1/level_0/"+node+"/backup_202401020304/data", 384<<10, when)
		write(t, s, "DB1/id_1/level_0/"+node+"/metadata", 10, when)
		write(t, s, "DB1/id_2/level_1/"+node+"/data", 64<<10, when)
		write(t, s, "DB2/id_5/level_0/"+node+"/data", 1000, when)
	}

	out := clustertest.RunScript(t, "confd_flow.py", clustertest.User, clustertest.Password, urls(source), urls(dest), client, server, work)
	if !strings.Contains(out, "confd flow: OK") {
		t.Fatal("the ConfD flow did not finish")
	}

	// backupsyncctl pairs through ConfD as well: every step again, harmlessly.
	ctl := filepath.Join(clustertest.Binaries(t), "backupsyncctl")
	pair := exec.Command(ctl, "--api", "confd", "--insecure", "pair", "--source", source.URL(), "--dest", dest.URL(),
		"--connection", "Connection1", "--source-config", client, "--dest-config", server)
	if out, err := pair.CombinedOutput(); err != nil || !strings.Contains(string(out), "ConfD's job_exec on n0011 (") {
		t.Fatalf("backupsyncctl --api confd pair: %v\n%s", err, out)
	} else {
		t.Logf("backupsyncctl --api confd pair:\n%s", out)
	}

	// backupsyncctl --api confd prints what the plugin dialect prints.
	run := func(api string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(ctl, append([]string{"--url", source.URL(), "--insecure", "--api", api}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil && cmd.ProcessState.ExitCode() != 1 {
			t.Fatalf("backupsyncctl --api %s %v: %v\n%s", api, args, err, stderr.String())
		}
		return stdout.String(), cmd.ProcessState.ExitCode()
	}
	for _, args := range [][]string{{"status"}, {"status", "Connection1"}, {"--json", "status", "Connection2"},
		{"--nodes", "n0012,n0013", "status"}, {"sshkey", "Connection1"}, {"nodes"}, {"activate", "Connection9"}} {
		plugin, pcode := run("plugin", args...)
		confd, ccode := run("confd", args...)
		if plugin != confd || pcode != ccode {
			t.Errorf("backupsyncctl %v:\nplugin (exit %d):\n%s\nconfd (exit %d):\n%s", args, pcode, plugin, ccode, confd)
		} else {
			t.Logf("backupsyncctl --api confd %v (exit %d), as with --api plugin:\n%s", args, ccode, confd)
		}
	}
	// GETLOG grows between two calls: its rows, not its text.
	var rows []struct {
		Node   string
		OK     bool
		Output string
	}
	text, _ := run("confd", "--json", "getlog", "--lines", "3")
	if err := json.Unmarshal([]byte(text), &rows); err != nil || len(rows) != 3 {
		t.Errorf("getlog through ConfD: %v\n%s", err, text)
	}
	for _, r := range rows {
		if !r.OK || strings.Count(r.Output, "\n") > 2 {
			t.Errorf("getlog row %+v", r)
		}
	}

	// One cycle of the direct connection on every node (the daemons' own
	// schedule is an hour away), then a set that came after it.
	d := filepath.Join(clustertest.Binaries(t), "backupsyncd")
	for _, n := range source.Nodes {
		cmd := exec.Command(d, "sync-once", "--settings", n.Settings(), "--connection", "Connection2")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sync-once on %s: %v\n%s", n.Name, err, out)
		}
	}
	for i, s := range srcFTP[:2] {
		write(t, s, fmt.Sprintf("DB1/id_3/level_0/node_%d/data", i), 100, when)
	}
	out = clustertest.RunScript(t, "confd_backups.py", source.Nodes[1].AdminURL())
	if !strings.Contains(out, "confd backups: OK") {
		t.Fatal("the db_backup_list checks did not finish")
	}

	for _, n := range append(source.Nodes, dest.Nodes...) {
		n.CheckNoSecrets(t, pw)
	}

	// The first node goes down: /master names the second.
	source.Nodes[0].Stop()
	out = clustertest.RunScript(t, "confd_master.py", clustertest.User, clustertest.Password,
		source.Nodes[1].URL()+","+source.Nodes[2].URL(), "11")
	if !strings.Contains(out, "confd master: OK") {
		t.Fatal("the /master checks did not finish")
	}
}
