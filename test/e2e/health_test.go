package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"backupsync/internal/clustertest"
	"backupsync/internal/ftptest"
)

// call runs one callPlugin and returns its code and output, whatever the code.
func (a *admin) call(node, verb, arg string) (int, string) {
	a.t.Helper()
	var row []any
	if err := a.c.Call(context.Background(), "callPlugin", &row, pname, node, verb, arg); err != nil {
		a.t.Fatalf("%s %s: %v", node, verb, err)
	}
	code, _ := row[0].(int64)
	out, _ := row[1].(string)
	return int(code), out
}

// lagIn reads "lag 3m12s" (display.Duration's format) from a health line.
func lagIn(t *testing.T, line string) time.Duration {
	t.Helper()
	m := regexp.MustCompile(`lag (?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?`).FindStringSubmatch(line)
	if m == nil || m[0] == "lag " {
		t.Fatalf("no lag in %q", line)
	}
	var d time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute, time.Second} {
		if m[i+1] != "" {
			n, _ := strconv.Atoi(m[i+1])
			d += time.Duration(n) * unit
		}
	}
	return d
}

func metric(t *testing.T, n *clustertest.Node, series string) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s:%d/metrics", n.IP, n.MetricsPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	t.Fatalf("no %s in /metrics", series)
	return ""
}

// TestFailingReplicationNeverLooksHealthy: four ways a pairing breaks, at
// once on one source node, and a cycle in progress. Each failing
// connection says "failing" first in STATUS (code 256), with its own cause
// and a next step; `backupsyncctl status` exits 1 and names it; its lag
// grows from one cycle to the next; /metrics says it is down. The running
// one shows its progress.
func TestFailingReplicationNeverLooksHealthy(t *testing.T) {
	srcIP, dstIP, deadIP := "127.0.11.71", "127.0.11.81", "127.0.11.89"
	srcFTP := ftptest.StartPort(t, "vsftpd", srcIP, clustertest.FreePort(t, srcIP))
	dstPort := clustertest.FreePort(t, dstIP)
	dstFTP := ftptest.StartPort(t, "vsftpd", dstIP, dstPort)
	sshPort := clustertest.CommonFreePort(t, dstIP, deadIP)
	source := clustertest.Start(t, "n007", []string{srcIP}, clustertest.Options{FTPPorts: []int{srcFTP.Port}, RemoteSSHPort: sshPort})
	dest := clustertest.Start(t, "n008", []string{dstIP}, clustertest.Options{FTPPorts: []int{dstPort}, SSHPort: sshPort})

	// One 8 MiB file, copied at 2 MiB/s by Connection5: a cycle that runs
	// for seconds.
	p := filepath.Join(srcFTP.Dir, srcFTP.Volume, "DB/id_1/level_0/node_0/data_0")
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, make([]byte, 8<<20), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)

	local := fmt.Sprintf("ftp://%s:%s@%%s:%d/%s", srcFTP.User, srcFTP.Password, srcFTP.Port, srcFTP.Volume)
	remote := func(pw string) string {
		return fmt.Sprintf("ftp://%s:%s@%%s:%d/%s", dstFTP.User, pw, dstPort, dstFTP.Volume)
	}
	block := func(name, remoteURL, nodes, extra string) string {
		return fmt.Sprintf("%s\n{\nDATABASE_NAME = DB\nSTART_CYCLE = @every 1s\nLOCAL_URL = %s\nREMOTE_URL = %s\nREMOTE_NODES = %s\n%s}\n",
			name, local, remoteURL, nodes, extra)
	}
	const wrongPW = "not-the-password-42"
	clientCfg := block("Connection1", remote(wrongPW), dstIP, "") + // wrong FTP password, plain FTP
		block("Connection2", remote(dstFTP.Password), deadIP, "SSH = client\n") + // no daemon at the remote
		block("Connection3", remote(dstFTP.Password), dstIP, "SSH = client\n") + // the remote calls it Connection9
		block("Connection4", remote(dstFTP.Password), dstIP, "SSH = client\n") + // the remote has no key of ours
		block("Connection5", remote(dstFTP.Password), dstIP, "BANDWIDTH_LIMIT = 2M\n") // runs for seconds
	serverCfg := "Connection9\n{\nSSH = server\n}\nConnection4\n{\nSSH = server\n}\n"

	src, dst := newAdmin(t, source), newAdmin(t, dest)
	src.each("INSTALL", "")
	dst.each("INSTALL", "")
	src.each("UPLOAD_CONFIG", b64(clientCfg))
	dst.each("UPLOAD_CONFIG", b64(serverCfg))
	// Connection3's client key, in the guide's form (no connection in its
	// comment), bound on the remote to a connection of another name.
	key := src.each("SSHKEY", "Connection3")[0]
	fields := strings.Fields(key)
	dst.each("UPLOAD_KEY", b64(fields[0]+" "+fields[1]+" root@n0071.c0001.exacluster.local\n"))
	dst.each("SSHKEY", "Connection9")
	src.each("ACTIVATE", "")

	node := source.Nodes[0].Name
	// The running cycle shows its progress.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, out := src.call(node, "STATUS", "Connection5")
		if m := regexp.MustCompile(`health: running since \S+: 0 of 1 files, ([\d.]+) MiB of 8\.0 MiB, [\d.]+ [KM]iB/s`).FindStringSubmatch(out); m != nil && m[1] != "0.0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress of a running cycle in STATUS: %q", out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Wait until every broken connection has failed at least twice.
	deadline = time.Now().Add(60 * time.Second)
	status := map[string]string{}
	for {
		done := true
		for _, c := range []string{"Connection1", "Connection2", "Connection3", "Connection4"} {
			_, out := src.call(node, "STATUS", c)
			status[c] = out
			done = done && regexp.MustCompile(`failing since \S+ \(([2-9]|\d\d+) cycles\)`).MatchString(out)
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every connection failed twice in 60s: %v\nlog:\n%s", status, source.Nodes[0].Output())
		}
		time.Sleep(300 * time.Millisecond)
	}

	causes := map[string][]string{
		"Connection1": {"REMOTE_URL", `"` + dstFTP.User + `"`, "530", "next: check the user and password in REMOTE_URL"},
		"Connection2": {deadIP, "backupsyncd running"},
		"Connection3": {"Connection9", "Connection3"},
		"Connection4": {"authorized", "SSHKEY Connection4"},
	}
	for c, wants := range causes {
		code, out := src.call(node, "STATUS", c)
		first := strings.SplitN(out, "\n", 2)[0]
		if code != 256 || !strings.HasPrefix(first, "health: failing since") {
			t.Errorf("STATUS %s: code %d, first line %q: want 256 and health first", c, code, first)
		}
		for _, w := range wants {
			if !strings.Contains(first, w) {
				t.Errorf("STATUS %s: health line %q lacks %q", c, first, w)
			}
		}
		if strings.Contains(out, wrongPW) || strings.Contains(out, dstFTP.Password) {
			t.Errorf("STATUS %s shows a password: %q", c, out)
		}
		if v := metric(t, source.Nodes[0], `backupsync_connection_up{connection="`+c+`"}`); v != "0" {
			t.Errorf("%s: backupsync_connection_up = %s, want 0", c, v)
		}
	}

	// Lag grows while cycles fail.
	_, before := src.call(node, "STATUS", "Connection1")
	time.Sleep(2500 * time.Millisecond)
	_, after := src.call(node, "STATUS", "Connection1")
	if lb, la := lagIn(t, before), lagIn(t, after); la <= lb {
		t.Errorf("lag did not grow while failing: %v then %v", lb, la)
	}

	// backupsyncctl status: health first, exit 1, the failing ones named.
	ctlBin := filepath.Join(clustertest.Binaries(t), "backupsyncctl")
	cmd := exec.Command(ctlBin, "--insecure", "--url", source.URL(), "status")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("backupsyncctl status: %v (want exit 1)\n%s", err, out)
	}
	for _, w := range []string{"NODE", "HEALTH", "Connection1  failing since", "failing: Connection1 on " + node} {
		if !strings.Contains(string(out), w) {
			t.Errorf("backupsyncctl status lacks %q:\n%s", w, out)
		}
	}
	// GETLOG leads with health too.
	if _, log := src.call(node, "GETLOG", "20"); !strings.HasPrefix(log, "health: Connection1: failing since") {
		t.Errorf("GETLOG does not lead with health: %q", firstLines(log, 3))
	}
	// STATUS '' keeps the guide's three words.
	if code, out := src.call(node, "STATUS", ""); code != 0 || out != "activated" {
		t.Errorf("STATUS '': %d %q", code, out)
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
