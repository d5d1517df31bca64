// Package e2e runs whole clusters of backupsyncd processes against real FTP
// servers on loopback addresses and checks what admins care about: that the
// destination becomes an md5-identical copy. Its tests use 127.0.11.x.
package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"backupsync/internal/clustertest"
	"backupsync/internal/ftptest"
	"backupsync/internal/xmlrpc"
)

const pname = "Administration.BackupSync-1.0.1"

// admin calls the plugin surface of one cluster as an admin's script does.
type admin struct {
	t *testing.T
	c *xmlrpc.Client
}

func newAdmin(t *testing.T, cl *clustertest.Cluster) *admin {
	c, err := xmlrpc.NewClient(cl.URL(), xmlrpc.ClientOptions{Insecure: true, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &admin{t: t, c: c}
}

// each runs verb on every node and returns the outputs; any failure fails
// the test.
func (a *admin) each(verb, arg string) []string {
	a.t.Helper()
	var nodes []string
	if err := a.c.Call(context.Background(), "getNodeList", &nodes); err != nil {
		a.t.Fatal(err)
	}
	var outs []string
	for _, n := range nodes {
		var row []any
		if err := a.c.Call(context.Background(), "callPlugin", &row, pname, n, verb, arg); err != nil {
			a.t.Fatalf("%s %s: %v", n, verb, err)
		}
		if code, _ := row[0].(int64); code != 0 {
			a.t.Fatalf("%s %s: %v", n, verb, row)
		}
		outs = append(outs, row[1].(string))
	}
	return outs
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// writeTree writes a backup tree for database node index node under dir.
func writeTree(t *testing.T, dir string, node int) {
	for _, set := range []string{"id_1/level_0", "id_2/level_1"} {
		for i, size := range []int{300 << 10, 2 << 20, 10} {
			name := fmt.Sprintf("data_%d", i)
			if i == 2 {
				name = "metadata"
			}
			p := filepath.Join(dir, "DB", set, fmt.Sprintf("node_%d", node), name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			data := make([]byte, size)
			for j := range data {
				data[j] = byte(j*31 + node + i)
			}
			os.WriteFile(p, data, 0o644)
			old := time.Now().Add(-time.Hour)
			os.Chtimes(p, old, old)
		}
	}
}

// TestPairedClustersSyncThroughTheTunnel pairs a 2-node source cluster and
// a 1-node destination cluster with backupsyncctl pair, then runs each
// source node's cycle: FTP through our SSH tunnel to the destination's
// vsftpd, which must end md5-identical.
func TestPairedClustersSyncThroughTheTunnel(t *testing.T) {
	srcIPs, dstIPs := []string{"127.0.11.11", "127.0.11.12"}, []string{"127.0.11.21"}
	var srcFTP []*ftptest.Server
	var srcPorts []int
	for _, ip := range srcIPs {
		s := ftptest.Start(t, "vsftpd", ip)
		srcFTP, srcPorts = append(srcFTP, s), append(srcPorts, s.Port)
	}
	dstFTP := ftptest.Start(t, "vsftpd", dstIPs[0])
	sshPort := clustertest.FreePort(t, dstIPs[0])
	source := clustertest.Start(t, "n001", srcIPs, clustertest.Options{FTPPorts: srcPorts, RemoteSSHPort: sshPort})
	dest := clustertest.Start(t, "n002", dstIPs, clustertest.Options{FTPPorts: []int{dstFTP.Port}, SSHPort: sshPort})
	for i, s := range srcFTP {
		writeTree(t, filepath.Join(s.Dir, s.Volume), i)
	}

	clientCfg := fmt.Sprintf("Connection1\n{\nDATABASE_NAME = DB\nSTART_CYCLE = @every 1h\nLOCAL_URL = ftp://%s:%s@%%s/%s\nREMOTE_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_NODES = %s\nSSH = client\nSETTLE_TIME = 10s\n}\n",
		srcFTP[0].User, srcFTP[0].Password, srcFTP[0].Volume, dstFTP.User, dstFTP.Password, dstFTP.Port, dstFTP.Volume, dstIPs[0])
	// The admin pairs the clusters with one command.
	work := t.TempDir()
	srcCfg, dstCfg := filepath.Join(work, "client.cfg"), filepath.Join(work, "server.cfg")
	os.WriteFile(srcCfg, []byte(clientCfg), 0o600)
	os.WriteFile(dstCfg, []byte("Connection1\n{\nSSH = server\n}\n"), 0o600)
	ctl := filepath.Join(clustertest.Binaries(t), "backupsyncctl")
	out, err := exec.Command(ctl, "--insecure", "pair", "--source", source.URL(), "--dest", dest.URL(),
		"--connection", "Connection1", "--source-config", srcCfg, "--dest-config", dstCfg).CombinedOutput()
	t.Logf("backupsyncctl pair:\n%s", out)
	if err != nil {
		t.Fatalf("pair: %v", err)
	}
	if strings.Contains(string(out), clustertest.Password) || strings.Contains(string(out), srcFTP[0].Password) {
		t.Error("pair printed a password")
	}

	bin := filepath.Join(clustertest.Binaries(t), "backupsyncd")
	for i, n := range source.Nodes {
		out, err := exec.Command(bin, "sync-once", "--settings", n.Settings(), "--connection", "Connection1").CombinedOutput()
		t.Logf("%s sync-once:\n%s", n.Name, out)
		if err != nil {
			t.Fatalf("%s: %v\n%s", n.Name, err, dest.Nodes[0].Output())
		}
		want, got := clustertest.NodeSums(filepath.Join(srcFTP[i].Dir, srcFTP[i].Volume), "DB", i), clustertest.NodeSums(filepath.Join(dstFTP.Dir, dstFTP.Volume), "DB", i)
		if len(want) != 6 || fmt.Sprint(want) != fmt.Sprint(got) {
			t.Errorf("node_%d at the destination:\n%v\nwant\n%v", i, got, want)
		}
		if strings.Contains(string(out), srcFTP[0].Password) {
			t.Error("sync-once printed a password")
		}
	}
	if !strings.Contains(dest.Nodes[0].Output(), "SSH server started") {
		t.Errorf("the destination never started its SSH server:\n%s", dest.Nodes[0].Output())
	}
}
