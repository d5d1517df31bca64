package tunnel

// Test harness: real peers (OpenSSH sshd and ssh, vsftpd via ftptest) on the
// package's own loopback addresses 127.0.3.x, log capture, FTP helpers.
//
// Addresses: 127.0.3.1 vsftpd and our server in the Exasol layout (FTP and
// SSH on the node's IP), 127.0.3.2 our server elsewhere, 127.0.3.3 OpenSSH
// sshd, 127.0.3.4 local ends of ssh -L/-D, 127.0.3.5 dead or silent nodes,
// 127.0.3.6 a second server node, 127.0.3.7 fault proxies, 127.0.3.8 hosts
// that must stay unreachable, 127.0.3.9 leak-test targets.

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"backupsync/internal/freeport"
	"backupsync/internal/ftptest"
	"backupsync/internal/proctree"
	"backupsync/internal/sshtest"

	"github.com/jlaffaye/ftp"
)

const (
	ipFTP     = "127.0.3.1"
	ipServer  = "127.0.3.2"
	ipSSHD    = "127.0.3.3"
	ipLocal   = "127.0.3.4"
	ipDead    = "127.0.3.5"
	ipServer2 = "127.0.3.6"
	ipProxy   = "127.0.3.7"
	ipOther   = "127.0.3.8"
	ipLeak    = "127.0.3.9"
)

// needBinary skips the test when a binary is missing, or fails it under CI.
var needBinary = sshtest.Need

// logBuf captures a component's log for assertions.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// count returns how many lines contain every one of subs.
func (l *logBuf) count(subs ...string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			n++
		}
	}
	return n
}

// waitFor waits until a line contains every one of subs.
func (l *logBuf) waitFor(t testing.TB, timeout time.Duration, subs ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l.count(subs...) > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no log line with %q within %v; log:\n%s", subs, timeout, l.String())
}

func freePort(t testing.TB, host string) int {
	t.Helper()
	p, err := freeport.On(host)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// listenOn listens on host at a free port.
func listenOn(t testing.TB, host string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp4", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveConns accepts connections on ln until the test ends and runs handle on
// each in a goroutine of its own. At the end it closes ln and every accepted
// connection, and waits for the handlers.
func serveConns(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	var (
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				c.Close()
			}
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// silentServer accepts connections and neither reads nor writes until the
// test ends: a node that never greets, or a stalled FTP server behind a live
// SSH peer.
func silentServer(t testing.TB, host string) net.Listener {
	return ftptest.StartSilent(t, host)
}

// startFTP starts a vsftpd for the test.
func startFTP(t testing.TB, host string) *ftptest.Server {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("vsftpd tests need root (CI=true)")
		}
		t.Skip("vsftpd tests need root")
	}
	return ftptest.Start(t, ftptest.KindVsftpd, host)
}

// ourServer runs a Server on ln until the test ends.
type ourServer struct {
	*Server
	Addr string
	Log  *logBuf
	Keys *KeyStore
	done chan error
}

func startServer(t testing.TB, ln net.Listener, keys *KeyStore, archiveFTP string, mod func(*ServerConfig)) *ourServer {
	t.Helper()
	lb := &logBuf{}
	cfg := ServerConfig{Keys: keys, ArchiveFTP: archiveFTP, Logger: lb.logger()}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := &ourServer{Server: s, Addr: ln.Addr().String(), Log: lb, Keys: keys, done: make(chan error, 1)}
	go func() { srv.done <- s.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-srv.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv
}

// pair is a client node's and a server node's key stores with the client key
// authorized and the host key pinned, for connection "C1".
type pair struct {
	client, server *KeyStore
}

func newPair(t testing.TB) pair {
	t.Helper()
	p := pair{newStoreTB(t, "n0011"), newStoreTB(t, "n0021")}
	cl, err := p.client.ClientKeyLine("C1", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.server.Upload([]byte(cl)); err != nil {
		t.Fatal(err)
	}
	if n, err := p.server.Activate("C1"); err != nil || n != 1 {
		t.Fatalf("activate: %d %v", n, err)
	}
	hl, err := p.server.HostKeyLine("C1", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.client.Upload([]byte(hl)); err != nil {
		t.Fatal(err)
	}
	return p
}

func newStoreTB(t testing.TB, node string) *KeyStore {
	t.Helper()
	ks, err := NewKeyStore(t.TempDir(), node)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// newClient returns a Client with test-sized timeouts, closed at the end.
func newClient(t testing.TB, keys *KeyStore, nodes []string, mod func(*ClientConfig)) (*Client, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	cfg := ClientConfig{
		Connection:        "C1",
		Nodes:             nodes,
		Keys:              keys,
		DialTimeout:       3 * time.Second,
		HandshakeTimeout:  3 * time.Second,
		KeepaliveInterval: 500 * time.Millisecond,
		KeepaliveTimeout:  10 * time.Second, // generous: CI runs packages in parallel
		IdleTimeout:       30 * time.Second,
		Logger:            lb.logger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, lb
}

// dialFTP logs in to the FTP server at addr through dial.
func dialFTP(t testing.TB, dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string, srv *ftptest.Server, opts ...ftp.DialOption) *ftp.ServerConn {
	t.Helper()
	ctx := context.Background()
	opts = append([]ftp.DialOption{ftp.DialWithDialFunc(func(n, a string) (net.Conn, error) { return dial(ctx, n, a) })}, opts...)
	c, err := ftp.Dial(addr, opts...)
	if err != nil {
		t.Fatalf("ftp dial %s: %v", addr, err)
	}
	if err := c.Login(srv.User, srv.Password); err != nil {
		c.Quit()
		t.Fatalf("ftp login: %v", err)
	}
	return c
}

func randomData(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// ftpRoundTrip stores data under name, lists it, reads it back and checks
// md5 and the file on disk.
func ftpRoundTrip(t testing.TB, c *ftp.ServerConn, srv *ftptest.Server, name string, data []byte) {
	t.Helper()
	path := "/" + srv.Volume + "/" + name
	if err := c.Stor(path, bytes.NewReader(data)); err != nil {
		t.Fatalf("STOR %s: %v", path, err)
	}
	entries, err := c.List("/" + srv.Volume)
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	found := false
	for _, e := range entries {
		if e.Name == name && e.Size == uint64(len(data)) {
			found = true
		}
	}
	if !found {
		t.Fatalf("LIST does not show %s with %d bytes: %+v", name, len(data), entries)
	}
	r, err := c.Retr(path)
	if err != nil {
		t.Fatalf("RETR %s: %v", path, err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("RETR read: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("RETR close: %v", err)
	}
	if md5hex(got) != md5hex(data) {
		t.Fatalf("RETR md5 %s, want %s (%d of %d bytes)", md5hex(got), md5hex(data), len(got), len(data))
	}
	onDisk, err := os.ReadFile(filepath.Join(srv.Dir, srv.Volume, name))
	if err != nil || md5hex(onDisk) != md5hex(data) {
		t.Fatalf("file on the FTP server: md5 %s err %v, want %s", md5hex(onDisk), err, md5hex(data))
	}
}

// sshdProc is OpenSSH's sshd (internal/sshtest) with its log captured.
type sshdProc struct {
	*sshtest.SSHD
	Log *logBuf
}

// startSSHD starts sshd on host at a free port with authorizedKeys as its
// only authorized keys file and a fresh ed25519 host key.
func startSSHD(t testing.TB, host, authorizedKeys string) *sshdProc {
	t.Helper()
	l := &logBuf{}
	return &sshdProc{SSHD: sshtest.Start(t, host, authorizedKeys, l), Log: l}
}

func (s *sshdProc) start(t testing.TB) { s.SSHD.Start(t) }
func (s *sshdProc) stop()              { s.SSHD.Stop() }

var descendants = proctree.Descendants

// sshCmd runs OpenSSH's ssh (or sftp) with a clean configuration.
type sshArgs struct {
	identity   string // private key file
	knownHosts string // known_hosts file
	user       string
}

func (a sshArgs) common(port string) []string {
	return []string{
		"-F", "/dev/null",
		"-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityFile=" + a.identity,
		"-o", "UserKnownHostsFile=" + a.knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "ConnectTimeout=5",
		"-o", "User=" + a.user,
		"-o", "Port=" + port,
	}
}

// socksDial connects to host:port through the SOCKS5 proxy at proxy
// (OpenSSH's ssh -D).
func socksDial(proxy, host string, port int) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fail := func(err error) (net.Conn, error) { c.Close(); return nil, err }
	if _, err := c.Write([]byte{5, 1, 0}); err != nil {
		return fail(err)
	}
	b := make([]byte, 2)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 5 || b[1] != 0 {
		return fail(fmt.Errorf("socks greeting: %v %v", b, err))
	}
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return fail(errors.New("socks: IPv4 only"))
	}
	req := append([]byte{5, 1, 0, 1}, ip...)
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	if _, err := c.Write(req); err != nil {
		return fail(err)
	}
	rep := make([]byte, 10)
	if _, err := io.ReadFull(c, rep); err != nil {
		return fail(fmt.Errorf("socks connect to %s:%d refused: %w", host, port, err))
	}
	if rep[1] != 0 {
		return fail(fmt.Errorf("socks connect to %s:%d: reply %d", host, port, rep[1]))
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// waitTCP waits until addr accepts a connection.
func waitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not accepting: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGoroutines fails t unless the number of goroutines falls back to
// before within five seconds; the failure names what ended (after) and
// shows every goroutine's stack.
func waitGoroutines(t *testing.T, before int, after string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	n := runtime.NumGoroutine()
	for n > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	if n > before {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%d goroutines before, %d after %s:\n%s", before, n, after, buf)
	}
}
