package tunnel

// Floods: channel opens from a paired peer, idle connections before login,
// accept errors; the server keeps serving, in bounded memory.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshDial logs in to srv with the client key of connection conn.
func sshDial(t testing.TB, addr string, ks *KeyStore, conn string) *ssh.Client {
	t.Helper()
	signer, err := ks.ClientKey(conn, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: DefaultUser, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// echoOnce checks that conn echoes.
func echoOnce(conn net.Conn, msg string) error {
	if _, err := io.WriteString(conn, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// peakSampler records the peak heap in use and goroutine count until stop.
type peakSampler struct {
	heap       atomic.Uint64
	goroutines atomic.Int64
	stop, done chan struct{}
}

func samplePeaks() *peakSampler {
	s := &peakSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > s.heap.Load() {
				s.heap.Store(ms.HeapInuse)
			}
			if n := int64(runtime.NumGoroutine()); n > s.goroutines.Load() {
				s.goroutines.Store(n)
			}
			select {
			case <-s.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return s
}

func (s *peakSampler) finish() (heap uint64, goroutines int) {
	close(s.stop)
	<-s.done
	return s.heap.Load(), int(s.goroutines.Load())
}

// TestChannelFloodFromAPairedPeer: a paired client opens 5,000 channels to
// the archive FTP over one SSH connection and holds every one it gets. The
// server holds MaxChannelsPerConn of them, refuses the rest at once with
// one log line (and summaries), keeps heap and goroutines bounded, and a
// new paired client still gets a working forward.
func TestChannelFloodFromAPairedPeer(t *testing.T) {
	const opens, workers = 5000, 50
	echo := echoServer(t, ipLeak)
	p := newPair(t)
	srv := startServer(t, listenOn(t, ipServer), p.server, echo.Addr().String(), nil)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	baseG := runtime.NumGoroutine()

	flood := sshDial(t, srv.Addr, p.client, "C1")
	peaks := samplePeaks()
	start := time.Now()
	var (
		mu       sync.Mutex
		held     []net.Conn
		refused  int
		otherErr error
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= opens {
				c, err := flood.Dial("tcp", echo.Addr().String())
				mu.Lock()
				var oce *ssh.OpenChannelError
				switch {
				case err == nil:
					held = append(held, c)
				case errors.As(err, &oce) && oce.Reason == ssh.ResourceShortage:
					refused++
				default:
					otherErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	floodTime := time.Since(start)
	if otherErr != nil {
		t.Fatalf("flood: %v", otherErr)
	}
	if len(held) != DefaultMaxChannelsPerConn || refused != opens-DefaultMaxChannelsPerConn {
		t.Fatalf("%d channels held, %d refused; want %d and %d", len(held), refused, DefaultMaxChannelsPerConn, opens-DefaultMaxChannelsPerConn)
	}
	if h := srv.Health(); h.Forwards != DefaultMaxChannelsPerConn || h.Conns != 1 {
		t.Fatalf("health during the flood: %+v", h)
	}
	// The held channels still work.
	if err := echoOnce(held[len(held)-1], "held"); err != nil {
		t.Fatalf("a held channel: %v", err)
	}

	// A new paired client, while the flood holds its channels.
	start = time.Now()
	c, _ := newClient(t, p.client, []string{srv.Addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipLeak })
	conn, err := c.DialContext(context.Background(), "tcp", echo.Addr().String())
	if err != nil {
		t.Fatalf("a new client during the flood: %v", err)
	}
	if err := echoOnce(conn, "new client"); err != nil {
		t.Fatalf("a new client during the flood: %v", err)
	}
	serveNew := time.Since(start)
	heap, goroutines := peaks.finish()
	conn.Close()
	c.Close()

	const heapBound = 128 << 20
	goroutineBound := baseG + 8*DefaultMaxChannelsPerConn + 200
	t.Logf("flood: %d channel opens over one SSH connection in %v: %d held, %d refused; peak heap in use %.1f MiB (%.1f MiB before), peak goroutines %d (%d before); a new client's forward served in %v",
		opens, floodTime.Round(time.Millisecond), len(held), refused, float64(heap)/(1<<20), float64(base.HeapInuse)/(1<<20), goroutines, baseG, serveNew.Round(time.Millisecond))
	if heap > heapBound || goroutines > goroutineBound {
		t.Errorf("peak heap %d bytes (bound %d), goroutines %d (bound %d)", heap, heapBound, goroutines, goroutineBound)
	}
	first := 0
	for _, line := range strings.Split(srv.Log.String(), "\n") {
		if strings.Contains(line, "too many forwarded connections on this SSH connection") && !strings.Contains(line, "more like this") {
			first++
		}
	}
	if first != 1 {
		t.Errorf("%d first refusal lines for one burst, want 1:\n%s", first, srv.Log.String())
	}
	for _, h := range held {
		h.Close()
	}
	flood.Close()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Health().Forwards != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if h := srv.Health(); h.Forwards != 0 {
		t.Fatalf("forwards left after the flood closed: %+v", h)
	}
}

// TestForwardCapsPerNameAndTotal: small caps, two connection names: one
// SSH connection is capped by MaxChannelsPerConn, a second of the same name
// by MaxChannelsPerName, another name's by MaxForwards; a closed forward
// makes room again.
func TestForwardCapsPerNameAndTotal(t *testing.T) {
	echo := echoServer(t, ipLeak)
	p := newPair(t)
	line, _ := p.client.ClientKeyLine("C2", "")
	if _, err := p.server.Upload([]byte(line)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.server.Activate("C2"); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, listenOn(t, ipServer), p.server, echo.Addr().String(), func(cfg *ServerConfig) {
		cfg.MaxChannelsPerConn, cfg.MaxChannelsPerName, cfg.MaxForwards = 4, 6, 8
	})
	fill := func(c *ssh.Client, n int) []net.Conn {
		t.Helper()
		var held []net.Conn
		for i := 0; ; i++ {
			conn, err := c.Dial("tcp", echo.Addr().String())
			if err != nil {
				if i != n {
					t.Fatalf("%d forwards before a refusal (%v), want %d", i, err, n)
				}
				return held
			}
			held = append(held, conn)
		}
	}
	a, b, other := sshDial(t, srv.Addr, p.client, "C1"), sshDial(t, srv.Addr, p.client, "C1"), sshDial(t, srv.Addr, p.client, "C2")
	defer a.Close()
	defer b.Close()
	defer other.Close()
	ha := fill(a, 4)
	fill(b, 2)
	fill(other, 2)
	for _, want := range []string{"on this SSH connection (4)", "of connection C1 (6)", "on this node (8)"} {
		srv.Log.waitFor(t, time.Second, "refused forwarding: too many forwarded connections "+want)
	}
	ha[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for srv.Health().Forwards != 7 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	fill(other, 1)
}

// TestIdlePreAuthConnectionsKeepNoClientOut: 120 TCP connections that
// never send a byte, from 15 source addresses, one of them the client's
// own; a paired client still logs in and forwards at once. The server
// holds at most MaxPreAuth of them, MaxPreAuthPerSource per address, and
// drops the oldest to make room.
func TestIdlePreAuthConnectionsKeepNoClientOut(t *testing.T) {
	echo := echoServer(t, ipLeak)
	p := newPair(t)
	srv := startServer(t, listenOn(t, ipServer), p.server, echo.Addr().String(), nil)
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for i := range 120 {
		src := fmt.Sprintf("127.0.3.%d", 100+i%15)
		if i%15 == 0 {
			src = "127.0.0.1" // the client's own address, below
		}
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		idle = append(idle, c)
		// The server's banner: it holds the connection.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, make([]byte, 8)); err != nil {
			t.Fatalf("idle connection %d: no banner: %v", i, err)
		}
	}
	h := srv.Health()
	if h.PreAuth != DefaultMaxPreAuth {
		t.Fatalf("health with 120 idle connections: %+v, want %d held", h, DefaultMaxPreAuth)
	}
	start := time.Now()
	c, _ := newClient(t, p.client, []string{srv.Addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipLeak })
	conn, err := c.DialContext(context.Background(), "tcp", echo.Addr().String())
	if err != nil {
		t.Fatalf("paired client among idle connections: %v\nserver log:\n%s", err, srv.Log.String())
	}
	defer conn.Close()
	if err := echoOnce(conn, "in"); err != nil {
		t.Fatal(err)
	}
	served := time.Since(start)
	// Which idle connections are still held: the newest, at most 8 per
	// address.
	open := 0
	perSource := map[string]int{}
	held := func(c net.Conn, wait time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(wait))
		_, err := io.Copy(io.Discard, c) // the server's key exchange, then EOF if dropped
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}
	for _, c := range idle {
		if held(c, 20*time.Millisecond) {
			open++
			perSource[c.LocalAddr().(*net.TCPAddr).IP.String()]++
		}
	}
	t.Logf("pre-auth: 120 idle connections from 15 addresses: %d held (at most %d, %d per address); a paired client logged in and forwarded in %v",
		open, DefaultMaxPreAuth, DefaultMaxPreAuthPerSource, served.Round(time.Millisecond))
	if open > DefaultMaxPreAuth {
		t.Errorf("%d idle connections held, cap %d", open, DefaultMaxPreAuth)
	}
	for src, n := range perSource {
		if n > DefaultMaxPreAuthPerSource {
			t.Errorf("%d idle connections held from %s, cap %d", n, src, DefaultMaxPreAuthPerSource)
		}
	}
	for i, c := range idle[:15] { // the oldest went first
		if held(c, time.Second) {
			t.Errorf("idle connection %d (among the oldest) still held", i)
		}
	}
	srv.Log.waitFor(t, time.Second, "dropped the oldest unauthenticated connection")
	if n := srv.Log.count("dropped the oldest unauthenticated connection to make room"); n > 2 {
		t.Errorf("%d drop lines for one burst, want the first (and a summary)", n)
	}
}

// TestPreAuthDeadline: a connection that sends nothing is dropped after
// HandshakeTimeout.
func TestPreAuthDeadline(t *testing.T) {
	p := newPair(t)
	srv := startServer(t, listenOn(t, ipServer), p.server, ipLeak+":21", func(cfg *ServerConfig) { cfg.HandshakeTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("silent connection not dropped: %v", err)
	}
	srv.Log.waitFor(t, time.Second, "no complete handshake within the deadline")
	if h := srv.Health(); h.PreAuth != 0 {
		t.Fatalf("health %+v", h)
	}
	s, err := NewServer(ServerConfig{Keys: p.server, ArchiveFTP: ipLeak + ":21"})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.HandshakeTimeout != DefaultPreAuthTimeout || DefaultPreAuthTimeout > 10*time.Second {
		t.Fatalf("default pre-auth deadline %v", s.cfg.HandshakeTimeout)
	}
}

// flakyListener fails its first Accepts with EMFILE, as a process out of
// file descriptors does.
type flakyListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptLoopSurvivesEMFILE: accept errors (EMFILE) make Serve wait and
// retry, logged once per burst; a closed listener ends it with an error,
// and a Serve on a new listener counts as a restart.
func TestAcceptLoopSurvivesEMFILE(t *testing.T) {
	echo := echoServer(t, ipLeak)
	p := newPair(t)
	ln := &flakyListener{Listener: listenOn(t, ipServer)}
	ln.fails.Store(6)
	lb := &logBuf{}
	s, err := NewServer(ServerConfig{Keys: p.server, ArchiveFTP: echo.Addr().String(), Logger: lb.logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background(), ln) }()
	c, _ := newClient(t, p.client, []string{ln.Addr().String()}, func(cfg *ClientConfig) { cfg.FTPHost = ipLeak })
	conn, err := c.DialContext(context.Background(), "tcp", echo.Addr().String())
	if err != nil {
		t.Fatalf("after EMFILE: %v", err)
	}
	conn.Close()
	h := s.Health()
	if !h.Listening || h.AcceptErrors != 6 || h.LastErr == nil || !errors.Is(h.LastErr, syscall.EMFILE) {
		t.Fatalf("health %+v", h)
	}
	if n := lb.count("accept failed; retrying"); n != 1 {
		t.Fatalf("%d log lines for 6 accept errors, want 1 (then a summary):\n%s", n, lb.String())
	}
	// Closed under the server: Serve ends with an error; serving again
	// counts as a restart.
	ln.Listener.Close()
	select {
	case err := <-served:
		if err == nil {
			t.Fatal("Serve returned nil for a listener closed under it")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if h := s.Health(); h.Listening {
		t.Fatalf("health after the listener died: %+v", h)
	}
	ln2 := listenOn(t, ipServer)
	go func() { served <- s.Serve(context.Background(), ln2) }()
	deadline := time.Now().Add(5 * time.Second)
	for !s.Health().Listening && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if h := s.Health(); !h.Listening || h.Restarts != 1 {
		t.Fatalf("health after a new Serve: %+v", h)
	}
	s.Close()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

func TestBurstLog(t *testing.T) {
	lb := &logBuf{}
	b := newBurstLog(lb.logger(), 100*time.Millisecond)
	for range 5 {
		b.warn("k", "refused", "n", 1)
	}
	b.warn("other", "other refused")
	if n := lb.count("refused"); n != 2 {
		t.Fatalf("%d lines, want the first of each kind:\n%s", n, lb.String())
	}
	lb.waitFor(t, 5*time.Second, "refused (more like this)", "more=4")
	// Quiet for a period: the next one is logged at once.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		n := len(b.kinds)
		b.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := lb.count("refused")
	b.warn("k", "refused", "n", 2)
	if lb.count("refused") != before+1 {
		t.Fatalf("a refusal after a quiet period not logged:\n%s", lb.String())
	}
	b.warn("k", "refused", "n", 3)
	b.close()
	if !strings.Contains(lb.String(), "more=1") {
		t.Fatalf("close did not log the pending count:\n%s", lb.String())
	}
}

// TestMeasureStalledForwards measures the worst case of the memory bound,
// not a test (TUNNEL_MEASURE=1): one SSH connection fills every forward it
// may hold with data the target never reads; each forward's channel window
// fills up.
func TestMeasureStalledForwards(t *testing.T) {
	if os.Getenv("TUNNEL_MEASURE") == "" {
		t.Skip("set TUNNEL_MEASURE=1 to measure the stalled forwards' memory")
	}
	silent := silentServer(t, ipLeak)
	p := newPair(t)
	srv := startServer(t, listenOn(t, ipServer), p.server, silent.Addr().String(), nil)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	c := sshDial(t, srv.Addr, p.client, "C1")
	defer c.Close()
	peaks := samplePeaks()
	buf := make([]byte, 1<<20)
	for range DefaultMaxChannelsPerConn {
		conn, err := c.Dial("tcp", silent.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				if _, err := conn.Write(buf); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(5 * time.Second) // every window fills within this on loopback
	heap, g := peaks.finish()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("%d stalled forwards: peak heap in use %.0f MiB (%.1f MiB before), %.2f MiB a forward; after a GC %.0f MiB, %.2f MiB a forward; peak goroutines %d",
		DefaultMaxChannelsPerConn, float64(heap)/(1<<20), float64(base)/(1<<20), float64(heap-base)/(1<<20)/DefaultMaxChannelsPerConn,
		float64(ms.HeapInuse)/(1<<20), float64(ms.HeapInuse-base)/(1<<20)/DefaultMaxChannelsPerConn, g)
}
