// Package page loads the control plane's status page in a real browser
// (Debian's headless Chromium) from two loopback clusters of backupsyncd
// processes copying between real FTP servers, and checks what an admin
// sees: a failing connection marked failing with its cause, a copied
// backup set marked synced on every node. It keeps a screenshot of the
// page as a test artefact ($BACKUPSYNC_ARTIFACTS, or
// $TMPDIR/backupsync-artifacts). Its tests use 127.0.17.x. Under CI=true a
// missing chromium fails the test instead of skipping it.
package page

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"backupsync/internal/clustertest"
	"backupsync/internal/ftptest"
	"backupsync/internal/xmlrpc"
)

const pname = "Administration.BackupSync-1.0.1"

// chromium finds Debian's chromium; without it the test skips (fails
// under CI=true).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found: run test/install-deps.sh (Debian's chromium package)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true)")
	}
	t.Skip(msg)
	return ""
}

// artifacts is where the test keeps what it shows.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BACKUPSYNC_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "backupsync-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browse runs headless Chromium on pageURL with args (--dump-dom or
// --screenshot=…) and returns its standard output. The login travels in
// the URL: Chromium answers the page's Basic-auth challenge with it on a
// top-level navigation.
func browse(t *testing.T, bin, pageURL string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
		"--user-data-dir=" + t.TempDir(), "--no-first-run", "--disable-extensions", "--disable-background-networking",
		"--hide-scrollbars", "--virtual-time-budget=5000"}, args...)
	start := time.Now()
	defer func() { t.Logf("chromium %v took %s", args, time.Since(start).Round(time.Millisecond)) }()
	cmd := exec.CommandContext(ctx, bin, append(all, pageURL)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, lastLines(stderr.String(), 20))
	}
	return string(out)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// get loads pageURL with Go's client and returns the status and size.
func get(t *testing.T, pageURL string) (int, int) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 60 * time.Second}).Get(pageURL)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, int(n)
}

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

// each runs verb on every node of the cluster; a failure fails the test.
func (a *admin) each(cl *clustertest.Cluster, verb, arg string) {
	a.t.Helper()
	for _, n := range cl.Nodes {
		var row []any
		if err := a.c.Call(context.Background(), "callPlugin", &row, pname, n.Name, verb, arg); err != nil {
			a.t.Fatalf("%s %s: %v", n.Name, verb, err)
		}
		if code, _ := row[0].(int64); code != 0 {
			a.t.Fatalf("%s %s: %v", n.Name, verb, row)
		}
	}
}

func (a *admin) status(node, conn string) string {
	a.t.Helper()
	var row []any
	if err := a.c.Call(context.Background(), "callPlugin", &row, pname, node, "STATUS", conn); err != nil {
		a.t.Fatalf("STATUS %s on %s: %v", conn, node, err)
	}
	out, _ := row[1].(string)
	return out
}

// row is the table row of the page's DOM that holds node's health in the
// section of conn.
func row(dom, conn, node string) string {
	sec := regexp.MustCompile(`(?s)<section class="conn" id="conn-` + regexp.QuoteMeta(conn) + `">.*?</section>`).FindString(dom)
	return regexp.MustCompile(`(?s)<tr class="[a-z]+">\s*<td class="nowrap"><b>` + regexp.QuoteMeta(node) + `</b></td>.*?</tr>`).FindString(sec)
}

func TestStatusPageInABrowser(t *testing.T) {
	bin := chromium(t)
	srcIPs := []string{"127.0.17.11", "127.0.17.12"}
	dstIPs := []string{"127.0.17.21", "127.0.17.22"}
	srcPort := clustertest.CommonFreePort(t, srcIPs...)
	dstPort := clustertest.CommonFreePort(t, dstIPs...)
	var srcFTP, dstFTP []*ftptest.Server
	for i := range 2 {
		srcFTP = append(srcFTP, ftptest.StartPort(t, ftptest.KindVsftpd, srcIPs[i], srcPort))
		dstFTP = append(dstFTP, ftptest.StartPort(t, ftptest.KindVsftpd, dstIPs[i], dstPort))
	}
	source := clustertest.Start(t, "n021", srcIPs, clustertest.Options{FTPPorts: []int{srcPort, srcPort}})
	dest := clustertest.Start(t, "n022", dstIPs, clustertest.Options{FTPPorts: []int{dstPort, dstPort}})

	// One level-0 set of DB1 on each source node (node_0 on n0211, node_1
	// on n0212), settled an hour ago; one of DB2 that cannot be copied.
	old := time.Now().Add(-time.Hour)
	for i, s := range srcFTP {
		for _, f := range []struct {
			path string
			size int
		}{
			{fmt.Sprintf("DB1/id_1/level_0/node_%d/backup_202612060100/data_%d", i, i), 256 << 10},
			{fmt.Sprintf("DB1/id_1/level_0/node_%d/metadata_%d", i, i), 512},
			{fmt.Sprintf("DB2/id_5/level_0/node_%d/data_%d", i, i), 4096},
		} {
			p := filepath.Join(s.Dir, s.Volume, f.path)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, make([]byte, f.size), 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(p, old, old)
		}
	}
	s0, d0 := srcFTP[0], dstFTP[0]
	local := fmt.Sprintf("ftp://%s:%s@%%s:%d/%s", s0.User, s0.Password, srcPort, s0.Volume)
	remote := func(pw string) string {
		return fmt.Sprintf("ftp://%s:%s@%%s:%d/%s", d0.User, pw, dstPort, d0.Volume)
	}
	const wrongPW = "not-the-password-17"
	block := func(name, db, remoteURL string) string {
		return fmt.Sprintf("%s\n{\nDATABASE_NAME = %s\nSTART_CYCLE = @every 2s\nLOCAL_URL = %s\nREMOTE_URL = %s\nREMOTE_NODES = %s\n}\n",
			name, db, local, remoteURL, strings.Join(dstIPs, "; "))
	}
	cfg := block("Connection1", "DB2", remote(wrongPW)) + block("Connection2", "DB1", remote(d0.Password))
	src, dst := newAdmin(t, source), newAdmin(t, dest)
	src.each(source, "INSTALL", "")
	dst.each(dest, "INSTALL", "")
	src.each(source, "UPLOAD_CONFIG", base64.StdEncoding.EncodeToString([]byte(cfg)))
	src.each(source, "ACTIVATE", "")

	// Until Connection1 has failed and Connection2 copied on both nodes.
	deadline := time.Now().Add(90 * time.Second)
	for {
		done := true
		for _, n := range source.Nodes {
			done = done && strings.HasPrefix(src.status(n.Name, "Connection1"), "health: failing") &&
				strings.HasPrefix(src.status(n.Name, "Connection2"), "health: ok, lag 0s")
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failing Connection1 and synced Connection2 within 90s:\n%s\n%s\nlog:\n%s",
				src.status(source.Nodes[0].Name, "Connection1"), src.status(source.Nodes[0].Name, "Connection2"), lastLines(source.Nodes[0].Output(), 30))
		}
		time.Sleep(300 * time.Millisecond)
	}

	// The page of the source cluster, through its second node (any node
	// answers for all), with the login in the URL.
	n := source.Nodes[1]
	u := url.URL{Scheme: "https", User: url.UserPassword(clustertest.User, clustertest.Password), Host: fmt.Sprintf("%s:%d", n.IP, n.ControlPort), Path: "/"}
	// What one load costs the answering node: both nodes asked, the
	// backup sets listed on both volumes and both destinations.
	for i := range 2 {
		start := time.Now()
		c, size := get(t, u.String())
		t.Logf("GET / (%s): %d, %d bytes in %s", map[int]string{0: "backup sets listed", 1: "backup sets cached"}[i], c, size, time.Since(start).Round(time.Millisecond))
	}
	dom := browse(t, bin, u.String(), "--dump-dom")
	dir := artifacts(t)
	if err := os.WriteFile(filepath.Join(dir, "statuspage.html"), []byte(dom), 0o644); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dom, "backupsync · cluster status") {
		t.Fatalf("chromium did not show the status page:\n%s", lastLines(dom, 20))
	}
	for _, node := range source.Nodes {
		r1 := row(dom, "Connection1", node.Name)
		for _, want := range []string{`<tr class="failing">`, `<span class="badge">failing</span>`, `refused the login`, `530`, `next step:`, "REMOTE_URL of Connection1"} {
			if !strings.Contains(r1, want) {
				t.Errorf("Connection1 on %s: the row lacks %q:\n%s", node.Name, want, r1)
			}
		}
		if strings.Contains(dom, wrongPW) || strings.Contains(dom, d0.Password) {
			t.Errorf("the page shows a password")
		}
		r2 := row(dom, "Connection2", node.Name)
		if !strings.Contains(r2, `<tr class="ok">`) || !strings.Contains(r2, `<span class="badge">ok</span>`) {
			t.Errorf("Connection2 on %s is not ok:\n%s", node.Name, r2)
		}
	}
	db1 := regexp.MustCompile(`(?s)<h3>Database DB1 .*?</table>`).FindString(dom)
	set := regexp.MustCompile(`(?s)<tr><td>v0003</td><td class="num">1</td>.*?</tr>`).FindString(db1)
	if !strings.Contains(set, `<td class="set-sync"><span class="badge ok">synced</span></td>`) ||
		strings.Count(set, `<span class="badge ok">synced · 2 files, 256.5 KiB</span>`) != 2 {
		t.Errorf("DB1's set 1 is not marked synced on both nodes:\n%s\n%s", set, db1)
	}
	if !strings.Contains(dom, `<div class="banner failing" id="summary">`) || !strings.Contains(dom, "Attention: 2 failing") {
		t.Errorf("the banner does not say 2 failing")
	}
	if c := strings.Count(dom, `<svg class="chart"`); c != 8 {
		t.Errorf("%d charts, want 4 per connection", c)
	}

	shot := filepath.Join(dir, "statuspage.png")
	browse(t, bin, u.String(), "--screenshot="+shot, "--window-size=1366,900")
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10<<10 {
		t.Fatalf("no screenshot: %v", err)
	}
	t.Logf("status page screenshot: %s (DOM: %s)", shot, filepath.Join(dir, "statuspage.html"))
	full := filepath.Join(dir, "statuspage-full.png")
	browse(t, bin, u.String(), "--screenshot="+full, "--window-size=1366,2000")
	t.Logf("whole page: %s", full)

	// The destination cluster's page answers too: nothing copies from it.
	d := dest.Nodes[0]
	du := url.URL{Scheme: "https", User: url.UserPassword(clustertest.User, clustertest.Password), Host: fmt.Sprintf("%s:%d", d.IP, d.ControlPort), Path: "/cluster1/"}
	ddom := browse(t, bin, du.String(), "--dump-dom")
	if !strings.Contains(ddom, "No copying connection is configured") || !strings.Contains(ddom, dest.Nodes[1].Name) {
		t.Errorf("the destination's page:\n%s", lastLines(ddom, 30))
	}

	// Without the login, the browser gets no page.
	nu := u
	nu.User = nil
	if plain := browse(t, bin, nu.String(), "--dump-dom"); strings.Contains(plain, "Connection1") {
		t.Errorf("the page was shown without a login")
	}
}
