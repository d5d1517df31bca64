package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"backupsync/internal/tunnel"
)

// TestSSHServerRestartsWhenItsListenerDies: the listener is closed under a
// serving tunnel server (as when the accept loop ended on EMFILE before);
// the daemon logs it, listens again on the same address, the server serves
// again and its health counts the restart.
func TestSSHServerRestartsWhenItsListenerDies(t *testing.T) {
	const host = "127.0.13.5"
	keys, err := tunnel.NewKeyStore(t.TempDir(), "n0011")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tunnel.NewServer(tunnel.ServerConfig{Keys: keys, ArchiveFTP: host + ":2021"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	logs := &syncBuffer{}
	d := &Daemon{Logger: slog.New(slog.NewTextHandler(logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.serveSSH(ctx, srv, listen, ln) }()
	defer func() { cancel(); srv.Close(); <-done }()

	banner := func() string {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err != nil {
			return ""
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, 8)
		io.ReadFull(c, b)
		return string(b)
	}
	if got := banner(); got != "SSH-2.0-" {
		t.Fatalf("before: banner %q", got)
	}
	ln.Close() // not by the server: Serve returns an error
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(logs.String(), "SSH server restarted") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "SSH server stopped accepting; restarting it") {
		t.Fatalf("no log of the stop:\n%s", logs)
	}
	if got := banner(); got != "SSH-2.0-" {
		t.Fatalf("after the restart: banner %q; log:\n%s", got, logs)
	}
	h := srv.Health()
	if !h.Listening || h.Restarts != 1 || h.LastErr == nil {
		t.Fatalf("health %+v, want listening after 1 restart with the error", h)
	}
}
