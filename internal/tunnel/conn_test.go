package tunnel

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func TestWatchdogClosesStalledRead(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	var idled atomic.Int32
	cc := newChanConn(a, &net.TCPAddr{IP: net.IPv4(127, 0, 3, 1), Port: 21}, 200*time.Millisecond, connHooks{onIdle: func(*chanConn) { idled.Add(1) }})
	start := time.Now()
	_, err := cc.Read(make([]byte, 10))
	if !errors.Is(err, ErrIdle) {
		t.Fatalf("read error %v, want ErrIdle", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Fatalf("watchdog fired after %v", d)
	}
	if idled.Load() != 1 {
		t.Fatalf("onIdle called %d times", idled.Load())
	}
	if err := cc.Close(); err != nil {
		t.Fatalf("close after idle: %v", err)
	}
}

func TestWatchdogSparesProgressAndRestingConns(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	cc := newChanConn(a, &net.TCPAddr{}, 150*time.Millisecond, connHooks{})
	defer cc.Close()
	// Resting with no operation pending for several idle periods is fine.
	time.Sleep(400 * time.Millisecond)
	// A slow but steady writer keeps a long read alive.
	go func() {
		for i := 0; i < 6; i++ {
			time.Sleep(60 * time.Millisecond)
			b.Write([]byte{byte(i)})
		}
	}()
	buf := make([]byte, 1)
	for i := 0; i < 6; i++ {
		if _, err := io.ReadFull(cc, buf); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
}

func TestChanConnAddrDeadlinesAndClose(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	raddr := &net.TCPAddr{IP: net.IPv4(127, 0, 3, 1), Port: 2021}
	cc := newChanConn(a, raddr, 0, connHooks{})
	if ta, ok := cc.RemoteAddr().(*net.TCPAddr); !ok || ta.String() != "127.0.3.1:2021" {
		t.Fatalf("RemoteAddr %v", cc.RemoteAddr())
	}
	if err := cc.SetDeadline(time.Now().Add(time.Second)); !errors.Is(err, ErrDeadlineUnsupported) {
		t.Fatalf("SetDeadline: %v", err)
	}
	if err := cc.SetReadDeadline(time.Time{}); err != nil {
		t.Fatalf("clearing a deadline: %v", err)
	}
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTargetHostRewrite(t *testing.T) {
	ks := newStore(t, "n0011")
	// These addresses are parsed, never dialed.
	c, err := NewClient(ClientConfig{Connection: "C1", Nodes: []string{"10.0.0.1", "10.0.0.2:2200", "[fd00::1]"}, Keys: ks})
	if err != nil {
		t.Fatal(err)
	}
	if c.nodes[0].addr != "10.0.0.1:2022" || c.nodes[1].addr != "10.0.0.2:2200" || c.nodes[2].addr != "[fd00::1]:2022" {
		t.Fatalf("nodes %+v", c.nodes)
	}
	l := &link{node: c.nodes[1]} // connected to the second node
	for in, want := range map[string]string{
		"":         "10.0.0.2", // empty host
		"0.0.0.0":  "10.0.0.2", // what jlaffaye derives over a channel
		"::":       "10.0.0.2",
		"10.0.0.1": "10.0.0.2", // REMOTE_NODES[0] follows the failover
		"fd00::1":  "10.0.0.2",
		"10.0.0.9": "10.0.0.9", // anything else: the peer decides
	} {
		if got := c.targetHost(l, in); got != want {
			t.Errorf("targetHost(%q) = %q, want %q", in, got, want)
		}
	}
	c.cfg.FTPHost = "127.0.0.1"
	for in, want := range map[string]string{"0.0.0.0": "127.0.0.1", "10.0.0.1": "127.0.0.1", "10.0.0.9": "10.0.0.9"} {
		if got := c.targetHost(l, in); got != want {
			t.Errorf("with FTPHost: targetHost(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := c.DialContext(context.Background(), "udp", "10.0.0.1:21"); err == nil {
		t.Error("udp accepted")
	}
	c.Close()
	if _, err := c.DialContext(context.Background(), "tcp", "10.0.0.1:21"); !errors.Is(err, ErrClosed) {
		t.Errorf("dial after Close: %v", err)
	}
}

func TestNewClientAndServerValidate(t *testing.T) {
	ks := newStore(t, "n0011")
	for _, cfg := range []ClientConfig{
		{Connection: "C1", Keys: ks},
		{Connection: "", Nodes: []string{"h"}, Keys: ks},
		{Connection: "C1", Nodes: []string{"h"}},
		{Connection: "C1", Nodes: []string{"h:0"}, Keys: ks},
		{Connection: "C1", Nodes: []string{"h"}, Keys: ks, Port: 70000},
	} {
		if _, err := NewClient(cfg); err == nil {
			t.Errorf("client config %+v accepted", cfg)
		}
	}
	for _, cfg := range []ServerConfig{
		{Keys: ks},
		{Keys: ks, ArchiveFTP: "127.0.3.1"},
		{Keys: ks, ArchiveFTP: "127.0.3.1:0"},
		{ArchiveFTP: "127.0.3.1:21"},
		{Keys: ks, ArchiveFTP: "127.0.3.1:21", PassivePortMin: 5000, PassivePortMax: 4000},
		{Keys: ks, ArchiveFTP: "127.0.3.1:21", PassivePortMin: 20, PassivePortMax: 4000},
		{Keys: ks, ArchiveFTP: "127.0.3.1:30021", PassivePortMin: 30000, PassivePortMax: 30099},
	} {
		if _, err := NewServer(cfg); err == nil {
			t.Errorf("server config %+v accepted", cfg)
		}
	}
}

// A Read or Write blocked on a stalled target returns soon after Close, with
// an error, never a clean end of stream: the live peer's SSH layer answers
// the channel close. Keepalives are off, and the close grace is not reached.
func TestCloseWakesBlockedReadAndWrite(t *testing.T) {
	silent := silentServer(t, ipLeak)
	p := newPair(t)
	srv := startServer(t, listenOn(t, ipServer), p.server, silent.Addr().String(), nil)
	c, lb := newClient(t, p.client, []string{srv.Addr}, func(cfg *ClientConfig) {
		cfg.KeepaliveInterval = -1
		cfg.IdleTimeout = 0
	})
	blocked := map[string]func(net.Conn) error{
		"read": func(conn net.Conn) error {
			_, err := conn.Read(make([]byte, 10))
			return err
		},
		// 64 MiB is more than the channel window and the socket buffers
		// together: the Write blocks.
		"write": func(conn net.Conn) error {
			_, err := conn.Write(make([]byte, 64<<20))
			return err
		},
	}
	for name, op := range blocked {
		t.Run(name, func(t *testing.T) {
			conn, err := c.DialContext(context.Background(), "tcp", silent.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			res := make(chan error, 1)
			go func() { res <- op(conn) }()
			time.Sleep(300 * time.Millisecond)
			select {
			case err := <-res:
				t.Fatalf("%s returned before Close: %v", name, err)
			default:
			}
			start := time.Now()
			conn.Close()
			select {
			case err := <-res:
				if err == nil || errors.Is(err, io.EOF) || !errors.Is(err, net.ErrClosed) {
					t.Fatalf("%s after Close: %v, want net.ErrClosed", name, err)
				}
				t.Logf("%s returned %v after Close", name, time.Since(start))
			case <-time.After(closeGrace - time.Second):
				t.Fatalf("%s still blocked %v after Close", name, closeGrace-time.Second)
			}
		})
	}
	if n := lb.count("did not answer the close"); n != 0 {
		t.Fatalf("the SSH connection was closed under a live peer (%d times):\n%s", n, lb)
	}
	// The SSH connection still serves.
	conn, err := c.DialContext(context.Background(), "tcp", silent.Addr().String())
	if err != nil {
		t.Fatalf("dial after the closes: %v", err)
	}
	conn.Close()
}
