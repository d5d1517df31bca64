package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"backupsync/internal/clustertest"
	"backupsync/internal/freeport"
	"backupsync/internal/ftpserver"
)

// startFTP starts an embedded archive FTP server on each ip, on one port
// for all (as a cluster's archive FTP listens), serving root/<ip>/.
func startFTP(t *testing.T, root string, ips []string) int {
	t.Helper()
	port, err := freeport.Common(ips...)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		dir := filepath.Join(root, ip)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		s, err := ftpserver.Start(ftpserver.Options{Dir: dir, Host: ip, Port: port, User: "FTPbackup", Password: "ftp-pw"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
	}
	return port
}

func putFile(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(path, old, old)
}

// The first hour against a real cluster: backups DB lists the sets with
// each node's part at the destination; getlog prints each node's lines
// under a header; an http:// URL says to use https://; a node whose daemon
// is down says to check that backupsyncd runs there, without internal
// method names.
func TestFirstHour(t *testing.T) {
	srcIPs, dstIPs := sourceIPs[:2], destIPs
	root := t.TempDir()
	srcPort := startFTP(t, root, srcIPs)
	dstPort := startFTP(t, root, dstIPs)
	source := clustertest.Start(t, "n001", srcIPs, clustertest.Options{FTPPorts: []int{srcPort, srcPort}})
	src := map[string]string{"BACKUPSYNC_URL": source.URL()}

	// id_1 (level 0): node_0's part copied, node_1's only half; id_2
	// (level 1): not copied at all.
	for i, ip := range srcIPs {
		set := fmt.Sprintf("%s/v0003/DB1/id_%%d/level_%%d/node_%d/", filepath.Join(root, ip), i)
		putFile(t, fmt.Sprintf(set, 1, 0)+"backup_data_00", 3<<20)
		putFile(t, fmt.Sprintf(set, 1, 0)+"metadata", 512)
		putFile(t, fmt.Sprintf(set, 2, 1)+"backup_data_00", 1<<20)
		dst := fmt.Sprintf("%s/v0002/DB1/id_1/level_0/node_%d/", filepath.Join(root, dstIPs[i]), i)
		putFile(t, dst+"backup_data_00", 3<<20)
		if i == 0 {
			putFile(t, dst+"metadata", 512)
		}
	}
	cfg := writeFile(t, t.TempDir(), "direct.cfg", fmt.Sprintf("Connection1\n{\nDATABASE_NAME = DB1\nSTART_CYCLE = @every 1h\n"+
		"LOCAL_URL = ftp://FTPbackup:ftp-pw@%%s:%d/v0003\nREMOTE_URL = ftp://FTPbackup:ftp-pw@%%s:%d/v0002\nREMOTE_NODES = %s; %s\nSSH = none\n}\n",
		srcPort, dstPort, dstIPs[0], dstIPs[1]))
	ok(t, src, "--insecure", "install")
	r := ok(t, src, "--insecure", "upload-config", cfg)
	if !strings.Contains(r.stdout, "Connection1: this node (n0012, node_1) copies to "+dstIPs[1]+", REMOTE_NODES entry 2 of 2") {
		t.Errorf("upload-config does not say where node_1 copies to:\n%s", r)
	}

	r = ok(t, src, "--insecure", "backups", "DB1")
	want := regexp.MustCompile(`^ID  LEVEL  TIME                     SIZE  USABLE  n0011    n0012\n` +
		` 1  0      \d{4}-\d\d-\d\dT\d\d:\d\d:00Z  6\.0 MiB  yes     synced   partial\n` +
		` 2  1      \d{4}-\d\d-\d\dT\d\d:\d\d:00Z  2\.0 MiB  yes     missing  missing\n$`)
	if !want.MatchString(r.stdout) {
		t.Errorf("backups DB1:\n%s", r)
	}
	var doc struct {
		Nodes []string
		Sets  []struct {
			ID    int
			Nodes map[string]string
		}
	}
	r = ok(t, src, "--insecure", "--json", "backups", "DB1")
	if err := jsonUnmarshal(r.stdout, &doc); err != nil || len(doc.Sets) != 2 || doc.Sets[0].Nodes["n0012"] != "partial" || strings.Join(doc.Nodes, ",") != "n0011,n0012" {
		t.Errorf("backups --json: %v\n%s", err, r)
	}
	if r := runCtl(t, src, "", "--insecure", "backups", "DB7"); r.code != 1 || !strings.Contains(r.stderr, "no connection copies database DB7") {
		t.Errorf("backups DB7: %s", r)
	}

	// getlog: each node's lines under its header, unindented.
	r = ok(t, src, "--insecure", "getlog", "--lines", "5")
	if !strings.HasPrefix(r.stdout, "== n0011 ==\n") || !strings.Contains(r.stdout, "\n\n== n0012 ==\n") ||
		strings.Contains(r.stdout, "NODE   CODE") || strings.Contains(r.stdout, "\n   ") {
		t.Errorf("getlog layout:\n%s", r)
	}

	// http:// is refused before anything is sent, naming the URL to use.
	httpURL := strings.Replace(source.URL(), "https://", "http://", 1)
	r = runCtl(t, map[string]string{"BACKUPSYNC_URL": httpURL}, "", "--insecure", "status")
	if r.code != 2 || !strings.Contains(r.stderr, "backupsyncd serves only HTTPS: use "+strings.Replace(maskPW(httpURL), "http://", "https://", 1)) {
		t.Errorf("http:// URL: %s", r)
	}

	// pair says which source node goes to which remote node, with the
	// destination's names found by their addresses, and flags an entry
	// that is no node of the destination.
	dest := clustertest.Start(t, "n002", dstIPs[:1], clustertest.Options{})
	work := t.TempDir()
	client := writeFile(t, work, "client2.cfg", strings.ReplaceAll(strings.ReplaceAll(clientCfg, "Connection1", "Connection2"),
		"REMOTE_NODES = 127.0.10.21; 127.0.10.22", "REMOTE_NODES = 127.0.10.21; 127.0.10.99"))
	server := writeFile(t, work, "server2.cfg", strings.ReplaceAll(serverCfg, "Connection1", "Connection2"))
	r = runCtl(t, nil, "", "--insecure", "pair", "--source", source.URL(), "--dest", dest.URL(), "--connection", "Connection2",
		"--source-config", client, "--dest-config", server)
	for _, want := range []string{
		"\n        REMOTE_NODES of Connection2, which source node goes to which remote node: 2 source node(s), 2 entries\n" +
			"          node_0 n0011 → 127.0.10.21 (n0021)\n" +
			"          node_1 n0012 → 127.0.10.99\n" +
			"        warning: REMOTE_NODES entry 127.0.10.99 is not a node of the destination cluster (n0021 127.0.10.21)",
		"Check REMOTE_NODES first: 127.0.10.99 is not a node of the destination cluster.",
	} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("pair lacks %q:\n%s", want, r)
		}
	}

	// A node whose daemon is down.
	source.Nodes[1].Stop()
	r = runCtl(t, src, "", "--insecure", "status")
	if r.code != 1 || !strings.Contains(r.stdout, "n0012 unreachable: is backupsyncd running on n0012?") ||
		strings.Contains(r.stdout+r.stderr, "callLocal") || strings.Contains(r.stdout+r.stderr, "backupsync.") {
		t.Errorf("a node down:\n%s", r)
	}
}

// maskPW masks the password of a cluster URL as messages show it.
func maskPW(u string) string { return strings.Replace(u, ":"+clustertest.Password+"@", ":***@", 1) }

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
