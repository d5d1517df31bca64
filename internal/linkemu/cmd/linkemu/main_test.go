package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no --forward"},
		{[]string{"--forward", "127.0.29.3:0"}, "want LISTEN=TARGET"},
		{[]string{"--forward", "127.0.29.3:0=127.0.29.4:1", "--rate", "fast"}, "--rate"},
		{[]string{"--forward", "127.0.29.3:0=127.0.29.4:1", "--rtt", "-5ms"}, "negative"},
		{[]string{"--forward", "127.0.29.3:0=127.0.29.4:1", "--log-level", "loud"}, "--log-level"},
		{[]string{"--forward", "127.0.29.3:0=127.0.29.4:1", "extra"}, "unexpected argument"},
		{[]string{"--bogus"}, "flag provided but not defined"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("linkemu %q: exit %d, stderr %q; want exit 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--forward", "10.0.0.1:0=127.0.29.4:1"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "not a loopback address") {
		t.Errorf("a non-loopback listen address: exit %d, stderr %q; want exit 1 and a refusal", code, errb.String())
	}
}

// syncBuf is a bytes.Buffer safe to write from run while the test reads.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The command relays until its context ends, then reports and exits 0.
func TestRunRelaysUntilStopped(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.29.4:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuf
	done := make(chan int, 1)
	go func() {
		code := run(ctx, []string{"--rtt", "20ms", "--rate", "100mbit", "--forward", "127.0.29.3:0=" + ln.Addr().String()}, pw, &stderr)
		pw.Close()
		done <- code
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no ready line: %v; stderr %s", err, stderr.String())
	}
	go io.Copy(io.Discard, pr)
	f := strings.Fields(line)
	if len(f) != 6 || f[0] != "ready" || f[1] != "rtt=20ms" || f[2] != "rate=100mbit" || f[3] != "bps=12500000" || !strings.HasPrefix(f[4], "queue=") {
		t.Fatalf("ready line %q", line)
	}
	addr, _, _ := strings.Cut(f[5], "=")
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
		t.Fatalf("echo through the link: %q %v", b, err)
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Fatalf("a round trip took %v, less than the RTT", took)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(stderr.String(), "linkemu: stopped: 1 connections") {
			t.Fatalf("exit %d, stderr %q", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("linkemu did not stop within 10s of its context's end")
	}
}
