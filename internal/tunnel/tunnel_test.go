package tunnel

// Our client against our server: FTP to a real vsftpd through the tunnel,
// host key pinning, faults, failover, goroutine leaks.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"
	"golang.org/x/crypto/ssh"
)

// addServerNode gives the pair's connection C1 another server node with its
// own key store: the client key authorized there, its host key pinned.
func addServerNode(t testing.TB, p pair, node string) *KeyStore {
	t.Helper()
	ks := newStoreTB(t, node)
	cl, _ := p.client.ClientKeyLine("C1", "")
	if _, err := ks.Upload([]byte(cl)); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Activate("C1"); err != nil {
		t.Fatal(err)
	}
	hl, _ := ks.HostKeyLine("C1", "")
	if _, err := p.client.Upload([]byte(hl)); err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestFTPThroughOwnTunnel(t *testing.T) {
	fs := startFTP(t, ipFTP)
	p := newPair(t)
	// The Exasol layout: SSH server and archive FTP on the node's IP.
	srv := startServer(t, listenOn(t, ipFTP), p.server, fs.Addr(), nil)
	c, _ := newClient(t, p.client, []string{srv.Addr}, nil)

	f := dialFTP(t, c.DialContext, fs.Addr(), fs)
	defer f.Quit()
	ftpRoundTrip(t, f, fs, "big.bin", randomData(t, 16<<20+5))

	fp := dialFTP(t, c.DialContext, fs.Addr(), fs, ftp.DialWithDisabledEPSV(true))
	defer fp.Quit()
	ftpRoundTrip(t, fp, fs, "pasv.bin", randomData(t, 1<<20))

	// The data host jlaffaye derives over a bare channel (0.0.0.0) reaches
	// the archive FTP: the port is kept, the host substituted.
	_, ftpPort, _ := net.SplitHostPort(fs.Addr())
	conn, err := c.DialContext(context.Background(), "tcp", "0.0.0.0:"+ftpPort)
	if err != nil {
		t.Fatal(err)
	}
	banner, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(banner, "220") {
		t.Fatalf("banner %q %v", banner, err)
	}
	if ra := conn.RemoteAddr().(*net.TCPAddr); ra.IP.String() != ipFTP {
		t.Fatalf("RemoteAddr %v", ra)
	}
	conn.Close()

	// Parallel workers, each with its own FTP connection, share one SSH
	// connection.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := dialFTP(t, c.DialContext, fs.Addr(), fs)
			defer w.Quit()
			data := randomData(t, 2<<20+i)
			name := fmt.Sprintf("/%s/worker%d.bin", fs.Volume, i)
			if err := w.Stor(name, bytes.NewReader(data)); err != nil {
				errs <- err
				return
			}
			r, err := w.Retr(name)
			if err != nil {
				errs <- err
				return
			}
			got, err := io.ReadAll(r)
			if cerr := r.Close(); err == nil {
				err = cerr
			}
			if err == nil && md5hex(got) != md5hex(data) {
				err = fmt.Errorf("worker %d: md5 differs", i)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.Log.count("SSH connection accepted"); n != 1 {
		t.Fatalf("%d SSH connections for all workers, want 1", n)
	}
}

func TestHostKeyPinning(t *testing.T) {
	p := newPair(t)
	target := listenOn(t, ipFTP)
	defer target.Close()
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	srv := startServer(t, listenOn(t, ipServer), p.server, target.Addr().String(), nil)
	hostSigner, _ := p.server.HostKey("")
	wantFP := ssh.FingerprintSHA256(hostSigner.PublicKey())

	// Nothing pinned, pinned-only mode: refused, and the message names the
	// fingerprint.
	bare := newStoreTB(t, "n0011")
	cl, _ := bare.ClientKeyLine("C1", "")
	p.server.Upload([]byte(cl))
	p.server.Activate("C1")
	c, lb := newClient(t, bare, []string{srv.Addr}, func(cfg *ClientConfig) {
		cfg.FTPHost = ipFTP
		cfg.HostKeys = HostKeysPinned
	})
	_, err := c.DialContext(context.Background(), "tcp", target.Addr().String())
	var hk *HostKeyError
	if !errors.As(err, &hk) || hk.Pinned != 0 || hk.Fingerprint != wantFP || !strings.Contains(err.Error(), wantFP) {
		t.Fatalf("no pin: %v", err)
	}
	lb.waitFor(t, time.Second, "refused host key", wantFP)

	// Another key pinned (a changed host key): refused, fingerprint named.
	other := newStoreTB(t, "n0099")
	ol, _ := other.HostKeyLine("C1", "")
	if _, err := bare.Upload([]byte(strings.Replace(ol, "@n0099", "@n0021", 1))); err != nil {
		t.Fatal(err)
	}
	_, err = c.DialContext(context.Background(), "tcp", target.Addr().String())
	if !errors.As(err, &hk) || hk.Pinned != 1 || !strings.Contains(err.Error(), wantFP) || !strings.Contains(err.Error(), "changed or unknown") {
		t.Fatalf("wrong pin: %v", err)
	}
	// A key pinned for another connection does not count.
	hl, _ := p.server.HostKeyLine("C2", "")
	bare.Upload([]byte(hl))
	if _, err = c.DialContext(context.Background(), "tcp", target.Addr().String()); !errors.As(err, &hk) {
		t.Fatalf("pin of another connection accepted: %v", err)
	}
	// The right key pinned: works.
	hl, _ = p.server.HostKeyLine("C1", "")
	bare.Upload([]byte(hl))
	conn, err := c.DialContext(context.Background(), "tcp", target.Addr().String())
	if err != nil {
		t.Fatalf("pinned: %v", err)
	}
	conn.Close()
}

func TestRSAKeysForOldPeers(t *testing.T) {
	// Client and server both on RSA 3072; the server also has its default
	// ed25519 host key, the client pins only the RSA one.
	client := newStoreTB(t, "n0011")
	server := newStoreTB(t, "n0021")
	cl, err := client.ClientKeyLine("C1", KeyRSA)
	if err != nil {
		t.Fatal(err)
	}
	server.Upload([]byte(cl))
	server.Activate("C1")
	server.HostKey(KeyEd25519)
	hl, err := server.HostKeyLine("C1", KeyRSA)
	if err != nil {
		t.Fatal(err)
	}
	client.Upload([]byte(hl))
	target := listenOn(t, ipFTP)
	defer target.Close()
	srv := startServer(t, listenOn(t, ipServer), server, target.Addr().String(), nil)
	c, _ := newClient(t, client, []string{srv.Addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipFTP })
	conn, err := c.DialContext(context.Background(), "tcp", target.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
}

func TestServerPolicy(t *testing.T) {
	p := newPair(t)
	target := listenOn(t, ipFTP)
	defer target.Close()
	_, tport, _ := net.SplitHostPort(target.Addr().String())
	allowed := true
	var mu sync.Mutex
	srv := startServer(t, listenOn(t, ipServer), p.server, target.Addr().String(), func(cfg *ServerConfig) {
		cfg.PassivePortMin, cfg.PassivePortMax = 40000, 40010
		cfg.AllowConnection = func(c string) bool { mu.Lock(); defer mu.Unlock(); return allowed && c == "C1" }
	})
	c, _ := newClient(t, p.client, []string{srv.Addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipFTP })
	ctx := context.Background()
	conn, err := c.DialContext(ctx, "tcp", target.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	// Another host: the archive FTP host is reached all the same.
	conn, err = c.DialContext(ctx, "tcp", ipOther+":"+tport)
	if err != nil {
		t.Fatalf("forward asked for another host: %v", err)
	}
	conn.Close()
	srv.Log.waitFor(t, time.Second, "tunnel: forwarding", "target="+target.Addr().String(), "asked="+ipOther+":"+tport)
	// Unannounced ports are refused, in the passive range too while no
	// control connection is in TLS.
	for _, tg := range []string{ipFTP + ":39999", ipFTP + ":40005", ipOther + ":8563"} {
		if _, err := c.DialContext(ctx, "tcp", tg); err == nil || !strings.Contains(err.Error(), "refused by peer") {
			t.Errorf("dial %s: %v", tg, err)
		}
	}
	srv.Log.waitFor(t, time.Second, "refused forwarding", "target="+ipFTP+":39999")
	// Another user name is refused at authentication.
	if sc, err := ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{User: "x", Auth: []ssh.AuthMethod{ssh.PublicKeys(mustSigner(t, p.client))}, HostKeyCallback: ssh.InsecureIgnoreHostKey()}); err == nil {
		sc.Close()
		t.Fatal("user x accepted")
	}
	srv.Log.waitFor(t, time.Second, "refused public key", `user=x`, "is not the tunnel user")
	// Sessions are refused to our client as well.
	sc, err := ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{User: DefaultUser, Auth: []ssh.AuthMethod{ssh.PublicKeys(mustSigner(t, p.client))}, HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.NewSession(); err == nil {
		t.Error("session opened")
	}
	if _, err := sc.Listen("tcp", ipServer+":0"); err == nil {
		t.Error("remote forward accepted")
	}
	sc.Close()
	// A connection that is not allowed any more cannot log in.
	mu.Lock()
	allowed = false
	mu.Unlock()
	c2, _ := newClient(t, p.client, []string{srv.Addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipFTP })
	var re *RefusedError
	if _, err := c2.DialContext(ctx, "tcp", target.Addr().String()); !errors.As(err, &re) || re.Reason != RefusedNotServed {
		t.Fatalf("disallowed connection: %v", err)
	}
	// Its log line is summed up with the refusal of user x above: refused
	// logins are logged once per burst and source address.
}

func mustSigner(t testing.TB, ks *KeyStore) ssh.Signer {
	s, err := ks.ClientKey("C1", "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestServerDropsSilentPeer: TCP accepted, nothing sent.
func TestServerDropsSilentPeer(t *testing.T) {
	p := newPair(t)
	srv := startServer(t, listenOn(t, ipServer), p.server, ipFTP+":21", func(cfg *ServerConfig) {
		cfg.HandshakeTimeout = time.Second
	})
	start := time.Now()
	c, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, c) // the server's banner, then EOF
	d := time.Since(start)
	if err != nil || d < 900*time.Millisecond || d > 8*time.Second {
		t.Fatalf("silent peer dropped after %v (%v), want about 1s", d, err)
	}
	srv.Log.waitFor(t, time.Second, "no complete handshake within the deadline")
}

// TestClientGivesUpOnSilentPeer: a node that accepts TCP and says nothing.
func TestClientGivesUpOnSilentPeer(t *testing.T) {
	p := newPair(t)
	silent := silentServer(t, ipDead)
	c, _ := newClient(t, p.client, []string{silent.Addr().String()}, func(cfg *ClientConfig) { cfg.HandshakeTimeout = time.Second })
	start := time.Now()
	_, err := c.DialContext(context.Background(), "tcp", ipFTP+":21")
	d := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "handshake") || d < 900*time.Millisecond || d > 8*time.Second {
		t.Fatalf("after %v: %v", d, err)
	}
	// Parallel workers waiting for the same connect share its failure
	// instead of each trying the silent node in turn.
	start = time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.DialContext(context.Background(), "tcp", ipFTP+":21"); err == nil {
				t.Error("dial through a silent node succeeded")
			}
		}()
	}
	wg.Wait()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("6 parallel dials took %v; one handshake timeout is 1s", d)
	}
	// A caller's context ends the wait earlier.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = c.DialContext(ctx, "tcp", ipFTP+":21")
	if d := time.Since(start); err == nil || !errors.Is(err, context.DeadlineExceeded) || d > 2*time.Second {
		t.Fatalf("with a 200ms context: after %v: %v", d, err)
	}
}

func TestFailoverToNextNode(t *testing.T) {
	fs := startFTP(t, ipFTP)
	p := newPair(t)
	// Node 1: nothing listens. Node 2: accepts TCP, never speaks.
	dead := net.JoinHostPort(ipDead, strconv.Itoa(freePort(t, ipDead)))
	silent := silentServer(t, ipDead)
	// Nodes 3 and 4: our servers with their own host keys.
	srv3 := startServer(t, listenOn(t, ipServer), p.server, fs.Addr(), nil)
	srv4 := startServer(t, listenOn(t, ipServer2), addServerNode(t, p, "n0022"), fs.Addr(), nil)
	c, lb := newClient(t, p.client, []string{dead, silent.Addr().String(), srv3.Addr, srv4.Addr}, func(cfg *ClientConfig) {
		cfg.FTPHost = ipFTP
		cfg.HandshakeTimeout = time.Second
	})
	f := dialFTP(t, c.DialContext, fs.Addr(), fs)
	ftpRoundTrip(t, f, fs, "failover.bin", randomData(t, 1<<20))
	f.Quit()
	if c.Node() != srv3.Addr {
		t.Fatalf("connected to %q, want %s", c.Node(), srv3.Addr)
	}
	lb.waitFor(t, time.Second, "failed over", "index=2")

	// Node 3 goes down: the next dial reconnects to node 4.
	srv3.Close()
	deadline := time.Now().Add(5 * time.Second)
	for c.Node() == srv3.Addr && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	f = dialFTP(t, c.DialContext, fs.Addr(), fs)
	ftpRoundTrip(t, f, fs, "failover2.bin", randomData(t, 1<<20))
	f.Quit()
	if c.Node() != srv4.Addr {
		t.Fatalf("connected to %q, want %s", c.Node(), srv4.Addr)
	}
}

// freezeProxy forwards TCP connections to a backend. freeze stops the
// connections it holds from moving bytes while keeping them open, like a
// peer that vanished from the network; connections made later get through.
type freezeProxy struct {
	ln      net.Listener
	backend string
	done    chan struct{}
	mu      sync.Mutex
	conns   map[net.Conn]bool // → frozen
	wg      sync.WaitGroup
}

func startFreezeProxy(t testing.TB, backend string) *freezeProxy {
	p := &freezeProxy{ln: listenOn(t, ipProxy), backend: backend, done: make(chan struct{}), conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[b] = false, false
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(c, b)
			go p.pipe(b, c)
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *freezeProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for p.frozen(src) {
			select {
			case <-p.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (p *freezeProxy) frozen(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns[c]
}

// freeze stops every connection the proxy holds now.
func (p *freezeProxy) freeze() {
	p.mu.Lock()
	for c := range p.conns {
		p.conns[c] = true
	}
	p.mu.Unlock()
}

func (p *freezeProxy) close() {
	close(p.done)
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// retrPartly starts a RETR of name and reads n bytes of it.
func retrPartly(t *testing.T, f *ftp.ServerConn, name string, n int) *ftp.Response {
	t.Helper()
	r, err := f.Retr(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	return r
}

// finishRetr reads the rest of r and closes it, returning the first error
// and how long that took.
func finishRetr(r *ftp.Response) (error, time.Duration) {
	start := time.Now()
	_, err := io.Copy(io.Discard, r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return err, time.Since(start)
}

func TestServerKilledMidTransfer(t *testing.T) {
	fs := startFTP(t, ipFTP)
	p := newPair(t)
	ln := listenOn(t, ipServer)
	addr := ln.Addr().String()
	s1, err := NewServer(ServerConfig{Keys: p.server, ArchiveFTP: fs.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	go s1.Serve(context.Background(), ln)
	c, lb := newClient(t, p.client, []string{addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipFTP })
	data := randomData(t, 64<<20)
	f := dialFTP(t, c.DialContext, fs.Addr(), fs)
	if err := f.Stor("/"+fs.Volume+"/large.bin", bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	r := retrPartly(t, f, "/"+fs.Volume+"/large.bin", 1<<20)
	s1.Close() // the SSH server dies mid-RETR
	err, d := finishRetr(r)
	if err == nil || d > 5*time.Second {
		t.Fatalf("RETR after the server died: err %v after %v", err, d)
	}
	t.Logf("RETR failed after %v: %v", d, err)
	f.Quit()

	// STOR when the server dies: fails cleanly too, and leaves no complete
	// file under the name.
	ln2, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, ln2, p.server, fs.Addr(), nil)
	f = dialFTP(t, c.DialContext, fs.Addr(), fs)
	pr, pw := io.Pipe()
	go func() {
		pw.Write(data[:4<<20])
		s2.Close()
		pw.Write(data[4<<20:])
		pw.Close()
	}()
	start := time.Now()
	err = f.Stor("/"+fs.Volume+"/partial.bin", pr)
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("STOR after the server died: %v after %v", err, time.Since(start))
	}
	pr.CloseWithError(errors.New("test done"))
	f.Quit()

	// A restarted server: the same client reconnects and works.
	ln3, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	startServer(t, ln3, p.server, fs.Addr(), nil)
	f = dialFTP(t, c.DialContext, fs.Addr(), fs)
	defer f.Quit()
	ftpRoundTrip(t, f, fs, "after-restart.bin", data[:3<<20])
	if lb.count("SSH connection lost") < 1 {
		t.Errorf("connection loss not logged:\n%s", lb.String())
	}
}

func TestFrozenPeerDetected(t *testing.T) {
	fs := startFTP(t, ipFTP)
	p := newPair(t)
	srv := startServer(t, listenOn(t, ipServer), p.server, fs.Addr(), nil)
	proxy := startFreezeProxy(t, srv.Addr)
	data := randomData(t, 48<<20)
	if err := os.WriteFile(filepath.Join(fs.Dir, fs.Volume, "frozen.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Bounds are generous: CI runs other packages at the same time. What
	// matters is that the transfer fails instead of hanging.
	for _, tc := range []struct {
		name                        string
		keepalive, keepaliveTimeout time.Duration
		idle                        time.Duration
		wantLog                     []string
	}{
		{"keepalive", 300 * time.Millisecond, 3 * time.Second, time.Hour, []string{"keepalive unanswered"}},
		// Without keepalives, the frozen peer never answers the watchdog's
		// close: after closeGrace the SSH connection goes.
		{"watchdog", -1, 0, 3 * time.Second, []string{"idle watchdog closed", "did not answer the close"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, lb := newClient(t, p.client, []string{proxy.ln.Addr().String()}, func(cfg *ClientConfig) {
				cfg.FTPHost = ipFTP
				cfg.KeepaliveInterval = tc.keepalive
				cfg.KeepaliveTimeout = tc.keepaliveTimeout
				cfg.IdleTimeout = tc.idle
			})
			f := dialFTP(t, c.DialContext, fs.Addr(), fs)
			r := retrPartly(t, f, "/"+fs.Volume+"/frozen.bin", 1<<20)
			proxy.freeze()
			err, d := finishRetr(r)
			if err == nil || d > 20*time.Second {
				t.Fatalf("RETR through a frozen peer: err %v after %v", err, d)
			}
			t.Logf("detected after %v: %v", d, err)
			for _, want := range tc.wantLog {
				lb.waitFor(t, time.Second, want)
			}
			f.Quit()
			// The next use reconnects (through a fresh proxied connection).
			f = dialFTP(t, c.DialContext, fs.Addr(), fs)
			defer f.Quit()
			ftpRoundTrip(t, f, fs, "after-freeze.bin", data[:1<<20])
		})
	}
}

// echoServer answers every connection with what it reads.
func echoServer(t testing.TB, host string) net.Listener {
	ln := listenOn(t, host)
	serveConns(t, ln, func(c net.Conn) { io.Copy(c, c) })
	return ln
}

func TestNoGoroutineLeak(t *testing.T) {
	echo := echoServer(t, ipLeak)
	p := newPair(t)
	// Warm up lazily started runtime goroutines.
	runtime.GC()
	before := runtime.NumGoroutine()
	for cycle := 0; cycle < 10; cycle++ {
		ln := listenOn(t, ipServer)
		s, err := NewServer(ServerConfig{Keys: p.server, ArchiveFTP: echo.Addr().String()})
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(context.Background(), ln) }()
		for i := 0; i < 5; i++ {
			c, err := NewClient(ClientConfig{Connection: "C1", Nodes: []string{ln.Addr().String()}, Keys: p.client, FTPHost: ipLeak,
				KeepaliveInterval: 20 * time.Millisecond, IdleTimeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			var conns []net.Conn
			for j := 0; j < 3; j++ {
				conn, err := c.DialContext(context.Background(), "tcp", echo.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				msg := []byte(fmt.Sprintf("cycle %d client %d conn %d", cycle, i, j))
				conn.Write(msg)
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("echo: %q %v", got, err)
				}
				conns = append(conns, conn)
			}
			conns[0].Close() // one closed by the user, the others by Client.Close
			// A refused dial and a dial cancelled by its context leave
			// nothing behind either.
			c.DialContext(context.Background(), "tcp", ipOther+":1")
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			c.DialContext(ctx, "tcp", echo.Addr().String())
			time.Sleep(30 * time.Millisecond) // let a keepalive or two pass
			c.Close()
		}
		if cycle%2 == 0 {
			s.Close()
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.Shutdown(ctx); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			cancel()
		}
		if err := <-served; err != nil {
			t.Fatal(err)
		}
	}
	waitGoroutines(t, before, "50 tunnels")
}

func TestShutdownWaitsForTunnels(t *testing.T) {
	echo := echoServer(t, ipLeak)
	p := newPair(t)
	ln := listenOn(t, ipServer)
	s, err := NewServer(ServerConfig{Keys: p.server, ArchiveFTP: echo.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background(), ln) }()
	busy, _ := newClient(t, p.client, []string{ln.Addr().String()}, func(cfg *ClientConfig) { cfg.FTPHost = ipLeak })
	idle, _ := newClient(t, p.client, []string{ln.Addr().String()}, func(cfg *ClientConfig) { cfg.FTPHost = ipLeak })
	conn, err := busy.DialContext(context.Background(), "tcp", echo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c2, err := idle.DialContext(context.Background(), "tcp", echo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(context.Background()) }()
	// New connections are refused at once; the idle SSH connection is
	// closed, the busy one keeps working until its tunnel closes.
	deadline := time.Now().Add(5 * time.Second)
	for idle.Node() != "" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if idle.Node() != "" {
		t.Error("idle SSH connection not closed")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("listener still accepting during shutdown")
	}
	conn.Write([]byte("still here"))
	got := make([]byte, 10)
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "still here" {
		t.Fatalf("busy tunnel during shutdown: %q %v", got, err)
	}
	select {
	case err := <-done:
		t.Fatalf("shutdown returned %v with a tunnel open", err)
	default:
	}
	conn.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not finish after the last tunnel closed")
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// TestServerConnectionCap: MaxConns caps authenticated connections; one
// more is closed after its login, with a log line.
func TestServerConnectionCap(t *testing.T) {
	echo := echoServer(t, ipLeak)
	p := newPair(t)
	srv := startServer(t, listenOn(t, ipServer), p.server, echo.Addr().String(), func(cfg *ServerConfig) {
		cfg.MaxConns = 2
	})
	for i := 0; i < 2; i++ {
		c, _ := newClient(t, p.client, []string{srv.Addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipLeak })
		conn, err := c.DialContext(context.Background(), "tcp", echo.Addr().String())
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer conn.Close()
	}
	c, _ := newClient(t, p.client, []string{srv.Addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipLeak })
	if conn, err := c.DialContext(context.Background(), "tcp", echo.Addr().String()); err == nil {
		conn.Close()
		t.Fatal("third connection served")
	}
	srv.Log.waitFor(t, time.Second, "too many connections", "max=2")
	if h := srv.Health(); h.Conns != 2 {
		t.Fatalf("health: %+v, want 2 connections", h)
	}
}
