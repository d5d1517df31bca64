package daemon

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"backupsync/internal/config"
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
