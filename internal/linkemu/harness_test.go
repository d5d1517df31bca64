package linkemu

// Test harness: small TCP servers on the package's own loopback addresses.
// 127.0.29.1: links; 127.0.29.2: their targets.

import (
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	ipLink   = "127.0.29.1"
	ipTarget = "127.0.29.2"
)

// server accepts on a loopback address and runs handle on each connection
// in a goroutine of its own. close stops accepting, closes every accepted
// connection and waits for the handlers; it also runs when the test ends.
type server struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  bool
	wg    sync.WaitGroup
	once  sync.Once
}

func startServer(t testing.TB, handle func(*net.TCPConn)) *server {
	t.Helper()
	return startServerWith(t, net.ListenConfig{}, handle)
}

func startServerWith(t testing.TB, lc net.ListenConfig, handle func(*net.TCPConn)) *server {
	t.Helper()
	ln, err := lc.Listen(t.Context(), "tcp4", ipTarget+":0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.done {
				s.mu.Unlock()
				c.Close()
				continue
			}
			s.conns = append(s.conns, c)
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				defer c.Close()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

func (s *server) close() {
	s.once.Do(func() {
		s.ln.Close()
		s.mu.Lock()
		s.done = true
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

// echo copies what it reads back until EOF, then writes "|done" and
// half-closes.
func echo(c *net.TCPConn) {
	if _, err := io.Copy(c, c); err != nil {
		return
	}
	c.Write([]byte("|done"))
	c.CloseWrite()
	io.Copy(io.Discard, c)
}

// sink reads until EOF and answers the number of bytes it read (8 bytes,
// big-endian).
func sink(c *net.TCPConn) {
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return
	}
	c.Write(binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// source reads an 8-byte size and sends that many bytes.
func source(c *net.TCPConn) {
	var b [8]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return
	}
	buf := make([]byte, 64<<10)
	for left := int64(binary.BigEndian.Uint64(b[:])); left > 0; left -= int64(len(buf)) {
		if _, err := c.Write(buf[:min(left, int64(len(buf)))]); err != nil {
			return
		}
	}
	c.CloseWrite()
	io.Copy(io.Discard, c)
}

func dial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second)) // a broken relay fails the test, not the run
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// upload sends n bytes on c, half-closes it and returns the count a sink
// answered.
func upload(c *net.TCPConn, n int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for left := n; left > 0; left -= int64(len(buf)) {
		if _, err := c.Write(buf[:min(left, int64(len(buf)))]); err != nil {
			return 0, err
		}
	}
	if err := c.CloseWrite(); err != nil {
		return 0, err
	}
	var b [8]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return 0, err
	}
	return int64(binary.BigEndian.Uint64(b[:])), nil
}

// smallRcvBuf sets a listener's receive buffer (inherited by accepted
// connections) to 64 KiB, so that little hides in the kernel.
var smallRcvBuf = net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10) })
	if err != nil {
		return err
	}
	return serr
}}

// waitGoroutines fails t unless the number of goroutines falls back to
// before within ten seconds, showing every goroutine's stack.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	n := runtime.NumGoroutine()
	for n > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > before {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%d goroutines before, %d after Close:\n%s", before, n, buf)
	}
}

// waitFor waits until cond holds, failing t after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
