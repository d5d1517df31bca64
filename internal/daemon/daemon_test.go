package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"backupsync/internal/config"
	"backupsync/internal/control"
	"backupsync/internal/xmlrpc"
)

// This package's tests use 127.0.13.x.

func settings(t *testing.T) *config.Settings {
	dir := t.TempDir()
	s, err := config.ParseSettings(filepath.Join(dir, "backupsyncd.hcl"), []byte(`node {
  name = "n0011"
  ip = "127.0.13.1"
  index = 0
}
connections_file = "connections.cfg"
state_dir = "state"
xmlrpc {
  listen = "127.0.13.1:0"
}
metrics {
  listen = "127.0.13.1:0"
}
`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSystemdNotifyAndMetrics runs a daemon under a fake systemd: it must
// say READY=1, pet the watchdog at half of WatchdogSec, and say STOPPING=1;
// /metrics must answer meanwhile.
func TestSystemdNotifyAndMetrics(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000") // 200 ms: pets every 100 ms
	t.Setenv("WATCHDOG_PID", "")
	os.Unsetenv("WATCHDOG_PID")

	d, err := New(settings(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, time.Second) }()

	got := map[string]int{}
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for got["WATCHDOG=1"] < 3 {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("notifications so far %v: %v", got, err)
		}
		msg := string(buf[:n])
		if strings.HasPrefix(msg, "STATUS=") {
			msg = "STATUS"
		}
		got[msg]++
	}
	if got["READY=1"] != 1 || got["STATUS"] == 0 {
		t.Errorf("notifications %v", got)
	}
	resp, err := http.Get("http://" + d.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("/metrics: %.200s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal("no STOPPING=1")
		}
		if string(buf[:n]) == "STOPPING=1" {
			break
		}
	}
}

func callNodes(t *testing.T, addr, user, pw string) error {
	t.Helper()
	c, err := xmlrpc.NewClient("https://"+user+":"+pw+"@"+addr+"/", xmlrpc.ClientOptions{Insecure: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var nodes []string
	return c.Call(context.Background(), "getNodeList", &nodes)
}

// SIGHUP (ReloadSettings + Reload): new users take effect at once; a broken
// settings or connections file is reported and what was in force stays.
func TestReloadKeepsWhatIsInForceOnErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "backupsyncd.hcl")
	hash := func(pw string) string { h, _ := control.HashPassword(pw); return h }
	write := func(users string) {
		os.WriteFile(file, []byte("node {\n  name = \"n0011\"\n  ip = \"127.0.13.2\"\n  index = 0\n}\nconnections_file = \"c.cfg\"\nstate_dir = \"state\"\nxmlrpc {\n  listen = \"127.0.13.2:0\"\n"+users+"}\n"), 0o600)
	}
	write(fmt.Sprintf("  user \"admin\" {\n    password_hash = %q\n  }\n", hash("one")))
	os.WriteFile(filepath.Join(dir, "c.cfg"), []byte("C1\n{\nSSH = server\n}\n"), 0o600)
	s, err := config.ReadSettings(file)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	runDaemon(t, d)

	if err := callNodes(t, d.ControlAddr, "admin", "one"); err != nil {
		t.Fatalf("admin before the reload: %v", err)
	}
	write(fmt.Sprintf("  user \"admin\" {\n    password_hash = %q\n  }\n  user \"ops\" {\n    password_hash = %q\n  }\n", hash("one"), hash("two")))
	if err := d.ReloadSettings(); err != nil {
		t.Fatal(err)
	}
	if err := callNodes(t, d.ControlAddr, "ops", "two"); err != nil {
		t.Errorf("a user added by the reload: %v", err)
	}
	os.WriteFile(file, []byte("node {\n  name = \n"), 0o600)
	if err := d.ReloadSettings(); err == nil {
		t.Error("a broken settings file was accepted")
	}
	if err := callNodes(t, d.ControlAddr, "ops", "two"); err != nil {
		t.Errorf("the settings in force were lost: %v", err)
	}

	os.WriteFile(filepath.Join(dir, "c.cfg"), []byte("C1\n{\nSSH = sideways\n}\n"), 0o600)
	d.Reload()
	d.mu.Lock()
	conns := d.conns
	d.mu.Unlock()
	if len(conns) != 1 || conns[0].Name != "C1" {
		t.Errorf("a broken connections file replaced the one in force: %+v", conns)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "state", "log", "plugin.log"))
	for _, want := range []string{"settings not reloaded", "connections file not loaded: the previous configuration stays in force"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the plugin log does not say %q", want)
		}
	}
}
