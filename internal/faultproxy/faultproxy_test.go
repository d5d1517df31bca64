package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"backupsync/internal/ftptest"

	"github.com/jlaffaye/ftp"
)

// This package's tests use 127.0.5.x.

// echoServer answers every connection by echoing what it reads; it records
// how many bytes each connection delivered.
type echoServer struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	got  []int64
	done chan struct{}
}

func startEcho(t *testing.T, host string) *echoServer {
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln, done: make(chan struct{})}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer c.Close()
				n, _ := io.Copy(c, c)
				e.mu.Lock()
				e.got = append(e.got, n)
				e.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); e.wg.Wait() })
	return e
}

func (e *echoServer) received() []int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]int64(nil), e.got...)
}

func TestNewRejectsNonLoopback(t *testing.T) {
	if _, err := New(TCP, "127.0.5.1", "192.0.2.1:21"); err == nil {
		t.Error("accepted a non-loopback target")
	}
	if _, err := New(TCP, "0.0.0.0", "127.0.5.1:21"); err == nil {
		t.Error("accepted a non-loopback listen address")
	}
}

func TestTCPTransparentAndCut(t *testing.T) {
	e := startEcho(t, "127.0.5.1")
	p := Start(t, TCP, "127.0.5.2", e.ln.Addr().String())

	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("x"), 100000)
	go func() { c.Write(msg); c.(*net.TCPConn).CloseWrite() }()
	back, err := io.ReadAll(c)
	c.Close()
	if err != nil || !bytes.Equal(back, msg) {
		t.Fatalf("transparent echo: got %d bytes, err %v", len(back), err)
	}

	r := p.Add(Fault{Dir: Upstream, After: 1000, Action: Cut, Times: 1})
	c, err = net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	go func() { c.Write(msg) }()
	back, _ = io.ReadAll(c)
	c.Close()
	if len(back) > 1000 {
		t.Errorf("cut after 1000 bytes upstream, but %d came back", len(back))
	}
	if r.Fired() != 1 {
		t.Errorf("rule fired %d times, want 1", r.Fired())
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(e.received()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := e.received(); len(got) != 2 || got[1] != 1000 {
		t.Errorf("server received %v bytes per connection, want [100000 1000]", got)
	}
}

func TestTCPStallAndRelease(t *testing.T) {
	e := startEcho(t, "127.0.5.1")
	p := Start(t, TCP, "127.0.5.3", e.ln.Addr().String())
	p.Add(Fault{Dir: Downstream, After: 3, Action: Stall})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	buf := make([]byte, 5)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf[:3]); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(buf[3:]); n != 0 || err == nil {
		t.Fatalf("stalled connection delivered %d bytes (err %v)", n, err)
	}
	p.Release()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf[3:]); err != nil || string(buf) != "hello" {
		t.Fatalf("after release: %q, %v", buf, err)
	}
}

func TestResetAction(t *testing.T) {
	e := startEcho(t, "127.0.5.1")
	p := Start(t, TCP, "127.0.5.4", e.ln.Addr().String())
	p.Add(Fault{Dir: Upstream, After: 1, Action: Reset})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("xy"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(c) // the echo of the first byte may come first
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("want a reset, got %v", err)
	}
}

func ftpThrough(t *testing.T, p *Proxy, s *ftptest.Server, opts ...ftp.DialOption) *ftp.ServerConn {
	t.Helper()
	c, err := ftp.Dial(p.Addr(), append([]ftp.DialOption{ftp.DialWithTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Quit() })
	if err := c.Login(s.User, s.Password); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFTP(t *testing.T) {
	kinds := append([]string{ftptest.KindEmbedded}, ftptest.RealKinds()...)
	for i, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			s := ftptest.Start(t, kind, "127.0.5."+string(rune('1'+i))+"0")
			p := Start(t, FTP, "127.0.5."+string(rune('1'+i))+"1", s.Addr())
			for _, epsv := range []bool{true, false} {
				c := ftpThrough(t, p, s, ftp.DialWithDisabledEPSV(!epsv))
				testFTPFaults(t, p, s, c, epsv)
				p.Clear()
			}
		})
	}
}

func testFTPFaults(t *testing.T, p *Proxy, s *ftptest.Server, c *ftp.ServerConn, epsv bool) {
	payload := bytes.Repeat([]byte("0123456789"), 10000)
	vol := "/" + s.Volume + "/"

	// Transparent: data connections go through the proxy.
	up := p.Add(Fault{Conn: Data, Dir: Upstream, Action: Stall, After: 1 << 40})
	down := p.Add(Fault{Conn: Data, Dir: Downstream, Action: Stall, After: 1 << 40})
	if err := c.Stor(vol+"f", bytes.NewReader(payload)); err != nil {
		t.Fatalf("epsv=%v STOR: %v", epsv, err)
	}
	r, err := c.Retr(vol + "f")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("RETR through proxy: %d bytes, %v", len(got), err)
	}
	if up.Fired() < 1 || down.Fired() < 1 {
		t.Errorf("data connections did not go through the proxy (%d up, %d down)", up.Fired(), down.Fired())
	}
	up.Remove()
	down.Remove()

	// Reply instead of forwarding.
	rule := p.Add(Fault{Command: "stor", Action: Reply, Code: 552, Text: "Disk full", Times: 1})
	err = c.Stor(vol+"g", bytes.NewReader(payload))
	if err == nil || !strings.Contains(err.Error(), "552") {
		t.Errorf("STOR with 552 injected: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, s.Volume, "g")); err == nil {
		t.Errorf("STOR answered by the proxy reached the server")
	}
	if rule.Fired() != 1 {
		t.Errorf("Reply fired %d", rule.Fired())
	}
	if err := c.NoOp(); err != nil {
		t.Fatalf("control connection unusable after injected reply: %v", err)
	}
	if err := c.Rename(vol+"f", vol+"f2"); err != nil {
		t.Fatalf("RNFR after Times:1 reply: %v", err)
	}

	// Cut a RETR's data after 1000 bytes.
	p.Add(Fault{Conn: Data, Command: "RETR", Dir: Downstream, After: 1000, Action: Cut, Times: 1})
	r, err = c.Retr(vol + "f2")
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(r)
	r.Close() // the server may report 426; either way the transfer is short
	if len(got) != 1000 {
		t.Errorf("cut RETR delivered %d bytes, want 1000", len(got))
	}
	if err := c.NoOp(); err != nil {
		// Some servers close the control connection after a broken
		// transfer; reconnect for the next step.
		c = ftpThrough(t, p, s)
	}

	// Cut a STOR's data after 5000 bytes: the server holds a short file.
	p.Add(Fault{Conn: Data, Command: "STOR", Dir: Upstream, After: 5000, Action: Cut, Times: 1})
	_ = c.Stor(vol+"h", bytes.NewReader(payload))
	if err := c.NoOp(); err != nil {
		c = ftpThrough(t, p, s)
	}
	if fi, err := os.Stat(filepath.Join(s.Dir, s.Volume, "h")); err == nil && fi.Size() >= int64(len(payload)) {
		t.Errorf("cut STOR stored %d bytes", fi.Size())
	}

	// Replace a listing.
	// (jlaffaye lists with MLSD where the server has it.)
	p.Add(Fault{Conn: Data, Command: "LIST", Dir: Downstream, Action: Replace, Times: 1,
		Payload: []byte("-rw-r--r--    1 0        0               6 Nov 25 11:54 injected\r\n")})
	p.Add(Fault{Conn: Data, Command: "MLSD", Dir: Downstream, Action: Replace, Times: 1,
		Payload: []byte("type=file;size=6;modify=20261125115400; injected\r\n")})
	entries, err := c.List(vol)
	if err != nil {
		t.Fatalf("LIST with replaced data: %v", err)
	}
	if len(entries) != 1 || entries[0].Name != "injected" {
		t.Errorf("replaced LIST gave %d entries (%v)", len(entries), entries)
	}

	// Stall a command until released.
	p.Add(Fault{Conn: Control, Command: "NOOP", Action: Stall, Times: 1})
	done := make(chan error, 1)
	go func() { done <- c.NoOp() }()
	select {
	case err := <-done:
		t.Fatalf("stalled NOOP returned %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	p.Release()
	if err := <-done; err != nil {
		t.Errorf("NOOP after release: %v", err)
	}
	for _, n := range []string{"f2", "h"} {
		_ = c.Delete(vol + n)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	e := startEcho(t, "127.0.5.1")
	p, err := New(TCP, "127.0.5.5", e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p.Add(Fault{Dir: Downstream, Action: Stall})
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("x"))
	done := make(chan struct{})
	go func() { p.Close(); p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a stalled connection")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("connection survived Close")
	}
}
