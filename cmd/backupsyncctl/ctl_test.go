package main

// The tests run backupsyncctl in-process (newApp, run) and once as the built
// binary against loopback clusters of real backupsyncd processes
// (internal/clustertest). They use 127.0.10.x only: the source cluster on
// 127.0.10.11-13, the destination on 127.0.10.21-22.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"backupsync/internal/clustertest"
	"backupsync/internal/ctl"
	"backupsync/internal/xmlrpc"
)

var (
	sourceIPs = []string{"127.0.10.11", "127.0.10.12", "127.0.10.13"}
	destIPs   = []string{"127.0.10.21", "127.0.10.22"}
)

const clientCfg = `# the source cluster's side
Connection1
{
DATABASE_NAME = exa_db1
START_CYCLE = @every 1h
LOCAL_URL = ftp://FTPbackup:ftp-pw@%s/v0003
REMOTE_URL = ftp://FTPbackup:ftp-pw@%s/v0002
REMOTE_NODES = 127.0.10.21; 127.0.10.22
Verbose = true
SSH = client
}
`

const serverCfg = "Connection1\n{\nVerbose = true\nSSH = server\n}\n"

// secrets must never appear in anything backupsyncctl prints.
var secrets = []string{clustertest.Password, "ftp-pw"}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout:\n" + r.stdout + "stderr:\n" + r.stderr
}

// runCtl runs backupsyncctl in-process with env as its environment.
func runCtl(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	a := newApp(context.Background(), strings.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
	code := a.main(args)
	r := result{out.String(), errb.String(), code}
	for _, s := range secrets {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Fatalf("backupsyncctl %s printed a secret:\n%s", strings.Join(args, " "), r)
		}
	}
	return r
}

// ok runs backupsyncctl and fails the test unless it exits 0.
func ok(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	r := runCtl(t, env, "", args...)
	if r.code != 0 {
		t.Fatalf("backupsyncctl %s: %s", strings.Join(args, " "), r)
	}
	return r
}

type jsonRow struct {
	Node   string `json:"node"`
	OK     bool   `json:"ok"`
	Code   *int   `json:"code"`
	Output string `json:"output"`
	Error  string `json:"error"`
}

func rowsOf(t *testing.T, r result) []jsonRow {
	t.Helper()
	var rows []jsonRow
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("not JSON rows: %v\n%s", err, r)
	}
	return rows
}

// healthOf parses status's JSON: one entry per node.
func healthOf(t *testing.T, r result) []ctl.NodeHealth {
	t.Helper()
	var hs []ctl.NodeHealth
	if err := json.Unmarshal([]byte(r.stdout), &hs); err != nil {
		t.Fatalf("not JSON health: %v\n%s", err, r)
	}
	return hs
}

// expectPlugin checks that status --json shows nodes in order, each
// answering with the plugin state plugin ("" for any).
func expectPlugin(t *testing.T, r result, nodes []string, plugin string) {
	t.Helper()
	hs := healthOf(t, r)
	if len(hs) != len(nodes) {
		t.Fatalf("%d nodes, want %d: %s", len(hs), len(nodes), r)
	}
	for i, h := range hs {
		if h.Node != nodes[i] || !h.OK || (plugin != "" && h.Plugin != plugin) {
			t.Fatalf("node %d = %+v, want %s ok %q\n%s", i, h, nodes[i], plugin, r)
		}
	}
}

// expectRows checks that the rows are nodes in order, each ok with output.
func expectRows(t *testing.T, r result, nodes []string, output string) {
	t.Helper()
	rows := rowsOf(t, r)
	if len(rows) != len(nodes) {
		t.Fatalf("%d rows, want %d: %s", len(rows), len(nodes), r)
	}
	for i, row := range rows {
		if row.Node != nodes[i] || !row.OK || row.Code == nil || *row.Code != 0 || (output != "" && row.Output != output) {
			t.Fatalf("row %d = %+v, want %s ok %q\n%s", i, row, nodes[i], output, r)
		}
	}
}

func names(c *clustertest.Cluster) []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Name)
	}
	return out
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// certFingerprint is the fingerprint of the certificate a node made in its
// state directory.
func certFingerprint(t *testing.T, n *clustertest.Node) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(n.Dir, "state", "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("cert.pem holds no PEM block")
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		t.Fatal(err)
	}
	return xmlrpc.Fingerprint(block.Bytes)
}

var loggedFingerprint = regexp.MustCompile(`fingerprint=(SHA256:[A-Za-z0-9+/]+)`)

// TestCommands drives the whole pairing through the single commands, as
// an admin would by hand, and checks the output shapes, --nodes, the
// errors (wrong password, TLS, a stopped node) and the built binary.
func TestCommands(t *testing.T) {
	source := clustertest.Start(t, "n001", sourceIPs, clustertest.Options{})
	dest := clustertest.Start(t, "n002", destIPs, clustertest.Options{})
	work := t.TempDir()
	client := writeFile(t, work, "client.cfg", clientCfg)
	server := writeFile(t, work, "server.cfg", serverCfg)
	src := map[string]string{"BACKUPSYNC_URL": source.URL()}
	dst := map[string]string{"BACKUPSYNC_URL": dest.URL()}
	srcNodes, dstNodes := names(source), names(dest)

	// The cluster, its plugin and verbs.
	r := ok(t, src, "--insecure", "plugins")
	if !strings.HasPrefix(r.stdout, "Administration.BackupSync-") {
		t.Fatalf("plugins: %s", r)
	}
	r = ok(t, src, "--insecure", "nodes", "--json")
	var nodeList []string
	if err := json.Unmarshal([]byte(r.stdout), &nodeList); err != nil || strings.Join(nodeList, ",") != "n0011,n0012,n0013" {
		t.Fatalf("nodes --json: %v %s", err, r)
	}
	r = ok(t, src, "--insecure", "functions", "--json")
	var fns map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &fns); err != nil || len(fns) != 9 || fns["SSHKEY"] == "" {
		t.Fatalf("functions --json: %v %s", err, r)
	}
	r = ok(t, src, "--insecure", "functions")
	if !strings.HasPrefix(r.stdout, "VERB") || !strings.Contains(r.stdout, "UPLOAD_CONFIG  Upload configuration.") {
		t.Fatalf("functions: %s", r)
	}

	// A fresh cluster; the table's shape.
	r = ok(t, src, "--insecure", "status")
	wantTable := "NODE   PLUGIN         CONNECTION  HEALTH\n" +
		"n0011  not installed  -           no connection configured\n" +
		"n0012  not installed  -           no connection configured\n" +
		"n0013  not installed  -           no connection configured\n"
	if r.stdout != wantTable {
		t.Fatalf("status table:\n%s\nwant:\n%s", r.stdout, wantTable)
	}

	// Steps 4 to 10 of the guide, one command each.
	expectRows(t, ok(t, src, "--insecure", "--json", "install"), srcNodes, "installed")
	expectRows(t, ok(t, dst, "--insecure", "--json", "install"), dstNodes, "installed")
	expectPlugin(t, ok(t, src, "--insecure", "status", "--json"), srcNodes, "not activated")
	expectPlugin(t, ok(t, dst, "--insecure", "status", "--json"), dstNodes, "not activated")
	expectRows(t, ok(t, src, "--insecure", "--json", "upload-config", client), srcNodes, "")
	expectRows(t, ok(t, dst, "--insecure", "--json", "upload-config", server), dstNodes, "")

	clientKeys := filepath.Join(work, "Connection1_ssh_key_file.key")
	r = ok(t, src, "--insecure", "sshkey", "Connection1", "-o", clientKeys)
	keyFile, err := os.ReadFile(clientKeys)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(keyFile), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("key file has %d lines:\n%s", len(lines), keyFile)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, "ssh-") || !strings.HasSuffix(l, "backupsync:Connection1@"+srcNodes[i]) {
			t.Fatalf("key line %d: %q", i, l)
		}
		if !strings.Contains(r.stdout, l) {
			t.Fatalf("the table lacks key line %q:\n%s", l, r)
		}
	}
	expectRows(t, ok(t, dst, "--insecure", "--json", "upload-key", clientKeys), dstNodes, "")
	hostKeys := filepath.Join(work, "host_keys.key")
	ok(t, dst, "--insecure", "sshkey", "-o", hostKeys, "Connection1")
	keyFile, _ = os.ReadFile(hostKeys)
	if n := strings.Count(string(keyFile), "backupsync-host:Connection1@"); n != 2 {
		t.Fatalf("host key file has %d host keys:\n%s", n, keyFile)
	}
	expectRows(t, ok(t, src, "--insecure", "--json", "upload-key", hostKeys), srcNodes, "")
	expectRows(t, ok(t, dst, "--insecure", "--json", "activate", "Connection1"), dstNodes, "activated")
	expectRows(t, ok(t, src, "--insecure", "--json", "activate", "Connection1"), srcNodes, "activated")
	expectPlugin(t, ok(t, src, "--insecure", "status", "--json"), srcNodes, "activated")

	// An unknown connection: every row says so, the exit status too.
	r = runCtl(t, src, "", "--insecure", "activate", "Connection9")
	if r.code != 1 || strings.Count(r.stdout, `no connection "Connection9" in the configuration (it has Connection1)`) != 3 ||
		!strings.Contains(r.stderr, "ACTIVATE failed on 3 of 3 node(s): n0011, n0012, n0013") {
		t.Fatalf("unknown connection: %s", r)
	}

	// A multi-line output is indented to the OUTPUT column.
	r = ok(t, src, "--insecure", "status", "Connection1")
	if !strings.Contains(r.stdout, "n0011  0     health: ") || !strings.Contains(r.stdout, "\n             connection: Connection1 (activated)\n             role: client") {
		t.Fatalf("status Connection1 table:\n%s", r)
	}

	// --nodes: the guide's step 11 on two nodes.
	r = ok(t, src, "--insecure", "--nodes", "n0012,n0011", "deactivate", "Connection1", "--json")
	expectRows(t, r, []string{"n0011", "n0012"}, "not activated")
	hs := healthOf(t, ok(t, src, "--insecure", "--json", "status"))
	if got := hs[0].Plugin + "," + hs[1].Plugin + "," + hs[2].Plugin; got != "not activated,not activated,activated" {
		t.Fatalf("status after deactivating two nodes: %s", got)
	}
	r = runCtl(t, src, "", "--insecure", "--nodes", "n0011,n0099", "status")
	if r.code != 2 || !strings.Contains(r.stderr, "unknown node n0099: the cluster has n0011, n0012, n0013") {
		t.Fatalf("unknown node: %s", r)
	}

	// getlog --lines.
	rows := rowsOf(t, ok(t, src, "--insecure", "--json", "getlog", "--lines", "3"))
	for _, row := range rows {
		if n := strings.Count(row.Output, "\n") + 1; row.Output != "" && n > 3 {
			t.Fatalf("getlog --lines 3 gave %d lines on %s", n, row.Node)
		}
	}

	// A broken config is refused before anything is sent.
	broken := writeFile(t, work, "broken.cfg", "Connection1\n{\nSTART_CYCLE = sometimes\n}\n")
	r = runCtl(t, src, "", "--insecure", "upload-config", broken)
	if r.code != 1 || !strings.Contains(r.stderr, "broken.cfg:3:") || !strings.Contains(r.stderr, "nothing was sent") || r.stdout != "" {
		t.Fatalf("broken config: %s", r)
	}

	// Credentials: a wrong password, then the right one by flag and by
	// environment with a URL that has none.
	bad := strings.Replace(source.URL(), clustertest.Password, "wrong-pw", 1)
	r = runCtl(t, nil, "", "--url", bad, "--insecure", "status")
	if r.code != 1 || !strings.Contains(r.stderr, "wrong user or password") || strings.Contains(r.stdout+r.stderr, "wrong-pw") {
		t.Fatalf("wrong password: %s", r)
	}
	bare := source.Nodes[0].URL() + "cluster1/"
	ok(t, nil, "--url", bare, "--insecure", "--user", clustertest.User, "--password", clustertest.Password, "status")
	ok(t, map[string]string{"BACKUPSYNC_URL": bare, "BACKUPSYNC_USER": clustertest.User, "BACKUPSYNC_PASSWORD": clustertest.Password},
		"--insecure", "status")
	r = runCtl(t, nil, "", "--url", bare, "--insecure", "status")
	if r.code != 1 || !strings.Contains(r.stderr, "wrong user or password") {
		t.Fatalf("no credentials: %s", r)
	}

	// TLS: unverified, the logged fingerprint pinned, a wrong one refused.
	fp := certFingerprint(t, source.Nodes[0])
	if m := loggedFingerprint.FindStringSubmatch(source.Nodes[0].Output()); m == nil || m[1] != fp {
		t.Fatalf("the daemon logged %v, its cert.pem has %s", m, fp)
	}
	r = runCtl(t, src, "", "status")
	if r.code != 1 || !strings.Contains(r.stderr, "not trusted") || !strings.Contains(r.stderr, "--fingerprint "+fp) {
		t.Fatalf("unverified certificate: %s", r)
	}
	expectPlugin(t, ok(t, src, "--fingerprint", fp, "--json", "status"), srcNodes, "")
	r = runCtl(t, src, "", "--fingerprint", certFingerprint(t, dest.Nodes[0]), "status")
	if r.code != 1 || !strings.Contains(r.stderr, "does not match --fingerprint (it presented "+fp+")") || r.stdout != "" {
		t.Fatalf("wrong fingerprint: %s", r)
	}

	// The built binary, with the environment and a JSON answer.
	bin := filepath.Join(clustertest.Binaries(t), "backupsyncctl")
	cmd := exec.Command(bin, "status", "--json", "--insecure")
	cmd.Env = append(os.Environ(), "BACKUPSYNC_URL="+dest.URL())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("backupsyncctl binary: %v\n%s", err, out)
	}
	expectPlugin(t, result{stdout: string(out)}, dstNodes, "activated")
	if out, err := exec.Command(bin, "--version").Output(); err != nil || !strings.HasPrefix(string(out), "backupsyncctl ") {
		t.Fatalf("--version: %v %s", err, out)
	}
	if err := exec.Command(bin, "status", "one", "two").Run(); err == nil || err.(*exec.ExitError).ExitCode() != 2 {
		t.Fatalf("usage error of the binary: %v", err)
	}

	// A stopped node fails its own row, fast; the others answer.
	source.Nodes[2].Stop()
	start := time.Now()
	r = runCtl(t, src, "", "--insecure", "status")
	took := time.Since(start)
	if r.code != 1 || !strings.Contains(r.stderr, "failing: n0013 (no answer)") {
		t.Fatalf("a stopped node: %s", r)
	}
	if !regexp.MustCompile(`(?m)^n0011  not activated  Connection1  not activated\nn0012  not activated  Connection1  not activated\nn0013  -              -            error: n0013 unreachable: `).MatchString(r.stdout) {
		t.Fatalf("a stopped node's table:\n%s", r)
	}
	if took > 5*time.Second {
		t.Fatalf("a stopped node held the command up for %v", took)
	}
	hs = healthOf(t, runCtl(t, src, "", "--insecure", "--json", "status"))
	if hs[2].OK || !strings.Contains(hs[2].Error, "n0013 unreachable") || !hs[0].OK || !hs[1].OK {
		t.Fatalf("a stopped node's JSON: %+v", hs)
	}

	// The daemon the URL names is stopped: one clear line.
	source.Nodes[0].Stop()
	r = runCtl(t, src, "", "--insecure", "status")
	if r.code != 1 || !strings.Contains(r.stderr, "(connection refused): is backupsyncd running there") {
		t.Fatalf("the URL's daemon stopped: %s", r)
	}
}

// TestPair pairs two fresh clusters with pair, twice: the second run
// succeeds and leaves everything as it was. Before that, a pair with the
// configs swapped stops before it changes anything.
func TestPair(t *testing.T) {
	source := clustertest.Start(t, "n001", sourceIPs, clustertest.Options{})
	dest := clustertest.Start(t, "n002", destIPs, clustertest.Options{})
	work := t.TempDir()
	client := writeFile(t, work, "client.cfg", clientCfg)
	server := writeFile(t, work, "server.cfg", serverCfg)
	srcFP, dstFP := certFingerprint(t, source.Nodes[0]), certFingerprint(t, dest.Nodes[0])
	pair := func(srcCfg, dstCfg string, extra ...string) result {
		args := append([]string{"pair", "--source", source.URL(), "--dest", dest.URL(), "--connection", "Connection1",
			"--source-config", srcCfg, "--dest-config", dstCfg,
			"--source-fingerprint", srcFP, "--dest-fingerprint", dstFP}, extra...)
		return runCtl(t, nil, "", args...)
	}

	r := pair(server, client)
	if r.code != 1 || !strings.Contains(r.stderr, "its connection Connection1 has SSH = server, but the source cluster needs SSH = client") ||
		!strings.Contains(r.stderr, "nothing was changed") {
		t.Fatalf("swapped configs: %s", r)
	}
	expectPlugin(t, ok(t, map[string]string{"BACKUPSYNC_URL": source.URL()}, "--insecure", "--json", "status"), names(source), "not installed")

	// These clusters have no archive FTP: the pairing is made, and its
	// last step, the pre-flight test, fails on every source node and
	// says so (test/e2e pairs clusters whose test passes).
	start := time.Now()
	r = pair(client, server)
	t.Logf("pair took %v:\n%s", time.Since(start), r.stdout)
	if r.code != 1 || !strings.Contains(r.stderr, "Connection1 is paired and activated, but the pre-flight test failed on 3 of 3 source node(s):\nn0011: source login failed: the source's archive volume (LOCAL_URL) is unreachable") ||
		!strings.Contains(r.stderr, "run backupsyncctl test Connection1 on the source") {
		t.Fatalf("pair: %s", r)
	}
	order := []string{
		"check   the client config", "check   the server config",
		"check   reach the source cluster", "check   reach the destination cluster",
		"step 4  install the plugin on the source (INSTALL)", "step 4  install the plugin on the destination (INSTALL)",
		"step 7  upload the client config", "step 7  upload the server config",
		"step 8  create the client keys on the source (SSHKEY)",
		"step 9  upload the client keys to the destination (UPLOAD_KEY)",
		"step 9  authorize the client keys on the destination (its host keys) (SSHKEY)",
		"step 10 upload the destination's host keys to the source (UPLOAD_KEY)",
		"step 10 activate Connection1 on the destination (ACTIVATE)",
		"step 10 activate Connection1 on the source (ACTIVATE)",
		"check   Connection1 is activated on the destination", "check   Connection1 is activated on the source",
		"check   test Connection1 on the source (logins, listings, a probe file at the destination): Connection1 is activated on the source (n0011, n0012, n0013) and the destination (n0021, n0022)\n",
		"n0011  256   test of Connection1 on n0011: FAILED at source login, SSH tunnel\n",
	}
	at := 0
	for _, s := range order {
		i := strings.Index(r.stdout[at:], s)
		if i < 0 {
			t.Fatalf("pair output lacks %q after offset %d:\n%s", s, at, r.stdout)
		}
		at += i + len(s)
	}
	if !strings.Contains(r.stdout, "check   reach the source cluster at "+source.Nodes[0].URL()+"cluster1/: Administration.BackupSync-") {
		t.Fatalf("pair does not say which cluster it reached:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "on n0011 (not configured), n0012 (not configured), n0013 (not configured)\n") {
		t.Fatalf("pair does not show the state it found:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "already before") {
		t.Fatalf("the first pair says it was already paired:\n%s", r.stdout)
	}

	// Again: the same result, and it says so; JSON this time.
	before := snapshot(t, source, dest)
	r = pair(client, server, "--json")
	if r.code != 1 {
		t.Fatalf("second pair: %s", r)
	}
	var doc struct {
		OK    bool `json:"ok"`
		Steps []struct {
			Step  int       `json:"step"`
			Title string    `json:"title"`
			Side  string    `json:"side"`
			Verb  string    `json:"verb"`
			Rows  []jsonRow `json:"rows"`
			Note  string    `json:"note"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc.OK || len(doc.Steps) != 17 {
		t.Fatalf("pair --json: %v\n%s", err, r)
	}
	last := doc.Steps[len(doc.Steps)-1]
	if last.Verb != "TEST" || len(last.Rows) != 3 || last.Rows[0].OK || !strings.Contains(last.Note, "it was already before") {
		t.Fatalf("second pair's last step: %+v", last)
	}
	if s := doc.Steps[8]; s.Step != 8 || s.Verb != "SSHKEY" || len(s.Rows) != 3 || !s.Rows[0].OK {
		t.Fatalf("step 8 in JSON: %+v", s)
	}
	for _, c := range []*clustertest.Cluster{source, dest} {
		expectPlugin(t, ok(t, map[string]string{"BACKUPSYNC_URL": c.URL()}, "--insecure", "--json", "status"), names(c), "activated")
	}
	// The destination authorized exactly the source's three keys, and the
	// second run changed no state file on any node.
	for _, n := range dest.Nodes {
		auth, err := os.ReadFile(filepath.Join(n.Dir, "state", "ssh", "conn", "Connection1", "authorized_keys"))
		if err != nil || strings.Count(string(auth), "backupsync:Connection1@") != 3 {
			t.Fatalf("%s authorized (%v):\n%s", n.Name, err, auth)
		}
	}
	for name, content := range snapshot(t, source, dest) {
		if before[name] != content {
			t.Errorf("the second pair changed %s:\n%s\nwas:\n%s", name, content, before[name])
		}
	}
	if after := snapshot(t, source, dest); len(after) != len(before) {
		t.Errorf("the second pair left %d state files, the first %d", len(after), len(before))
	}

	// A destination node down: pair stops before changing anything.
	dest.Nodes[1].Stop()
	r = pair(client, server)
	if r.code != 1 || !strings.Contains(r.stderr, "reach the destination cluster") || !strings.Contains(r.stderr, "n0022 unreachable") ||
		!strings.Contains(r.stderr, "Start backupsyncd on those nodes") {
		t.Fatalf("pair with a node down: %s", r)
	}
}

// TestHashPassword reads the password from stdin and prints a bcrypt hash
// of it.
func TestHashPassword(t *testing.T) {
	r := runCtl(t, nil, "correct horse\n", "hash-password")
	if r.code != 0 {
		t.Fatalf("hash-password: %s", r)
	}
	hash := strings.TrimSpace(r.stdout)
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse")); err != nil {
		t.Fatalf("hash %q does not verify: %v", hash, err)
	}
	if !strings.Contains(r.stderr, "password_hash") {
		t.Fatalf("no hint where the hash goes: %s", r)
	}
	// run, the entry point main uses, with a last line lacking its newline.
	var out, errb bytes.Buffer
	if code := run([]string{"hash-password"}, strings.NewReader("pw"), &out, &errb); code != 0 {
		t.Fatalf("run hash-password: %d %s", code, errb.String())
	}
	if bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(out.String())), []byte("pw")) != nil {
		t.Fatalf("hash of a line without newline: %q", out.String())
	}
	if r := runCtl(t, nil, "", "hash-password"); r.code != 1 || !strings.Contains(r.stderr, "no password") {
		t.Fatalf("empty stdin: %s", r)
	}
}

// TestUsage checks the usage errors: exit 2 and a usage line, no cluster
// needed.
func TestUsage(t *testing.T) {
	env := map[string]string{"BACKUPSYNC_URL": "https://admin:pw-123@127.0.10.99:1/cluster1/"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"activate"}, "activate needs CONN"},
		{[]string{"status", "a", "b"}, `status takes [CONN], not "a b"`},
		{[]string{"install", "x"}, `install takes no arguments`},
		{[]string{"--bogus", "status"}, "flag provided but not defined: -bogus"},
		{[]string{"status", "--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"status", "--insecure", "--fingerprint", "SHA256:x"}, "exclude each other"},
		{[]string{"getlog", "--lines", "-1"}, "--lines must be a positive"},
		{[]string{"pair", "--source", "https://a/"}, "pair needs --dest, --connection, --source-config, --dest-config"},
		{[]string{"pair", "--url", "https://a/"}, "pair takes --source and --dest, not --url"},
		{[]string{"--url", "ftp://x/", "status"}, `must be http:// or https://, not "ftp"`},
	} {
		r := runCtl(t, env, "", tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "usage: backupsyncctl") {
			t.Errorf("%q: want exit 2 with %q: %s", tc.args, tc.want, r)
		}
		if strings.Contains(r.stderr, "pw-123") {
			t.Errorf("%q printed the password: %s", tc.args, r)
		}
	}
	if r := runCtl(t, nil, "", "status", "--url", ""); r.code != 2 || !strings.Contains(r.stderr, "no cluster URL") {
		t.Errorf("no URL: %s", r)
	}
	if r := runCtl(t, nil, "", "help"); r.code != 0 || !strings.Contains(r.stdout, "pair --source URL") {
		t.Errorf("help: %s", r)
	}
	if r := runCtl(t, nil, "", "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "backupsyncctl ") {
		t.Errorf("--version: %s", r)
	}
	// Flags after the command and after "--".
	if r := runCtl(t, nil, "", "install", "--", "--json"); r.code != 2 || !strings.Contains(r.stderr, `install takes no arguments, not "--json"`) {
		t.Errorf("--: %s", r)
	}
	// The password of an unparsable URL is masked too.
	if r := runCtl(t, nil, "", "--url", "https://admin:pw-123/x@127.0.10.99:1/", "status"); strings.Contains(r.stderr, "pw-123") {
		t.Errorf("an odd URL's password printed: %s", r)
	}
}

// snapshot reads the state a pairing writes on every node: the plugin
// state, the connections file and the SSH key store.
func snapshot(t *testing.T, clusters ...*clustertest.Cluster) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, c := range clusters {
		for _, n := range c.Nodes {
			for _, root := range []string{"state/plugin", "state/ssh", "connections.cfg"} {
				filepath.WalkDir(filepath.Join(n.Dir, root), func(path string, d os.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					data, err := os.ReadFile(path)
					if err != nil {
						t.Fatal(err)
					}
					files[n.Name+":"+strings.TrimPrefix(path, n.Dir)] = string(data)
					return nil
				})
			}
		}
	}
	if len(files) == 0 {
		t.Fatal("no state files found")
	}
	return files
}
