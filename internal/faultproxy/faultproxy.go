// Package faultproxy is a TCP proxy for tests that sits between a client and a
// real server (FTP or SSH) and makes failures repeatable: it forwards
// transparently until a Fault says to cut a connection after N bytes, stall
// it, or — on an FTP control connection — answer a command with a chosen
// reply instead of forwarding it.
//
// In FTP mode the proxy understands the control connection: it rewrites the
// PASV (227) and EPSV (229) replies so that data connections go through the
// proxy too, and it knows which transfer command (RETR, STOR, APPE, LIST,
// MLSD, NLST) each data connection serves, so a fault can target "the data of
// a STOR". Data connections are always dialled on the target's host, whatever
// address a PASV reply names, so a proxy only ever reaches its target's host.
// FTP mode cannot see inside TLS: use TCP mode for FTPS or SSH.
//
// A proxy listens on a loopback address chosen by the test and only dials the
// target address it was given.
package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mode selects how the proxy treats connections.
type Mode int

const (
	// TCP forwards bytes only (SSH, FTPS, anything).
	TCP Mode = iota
	// FTP additionally parses the control connection (see the package doc).
	FTP
)

// Conn selects which connections a Fault applies to.
type Conn int

const (
	AnyConn Conn = iota // every connection
	Control             // connections accepted on Addr (in TCP mode: all of them)
	Data                // FTP data connections opened through a rewritten PASV/EPSV
)

// Direction is the direction of the bytes a Fault counts.
type Direction int

const (
	Upstream   Direction = iota // client → server
	Downstream                  // server → client
)

// Action is what a Fault does when it fires.
type Action int

const (
	// Cut closes both sides of the connection (a FIN to each peer).
	Cut Action = iota
	// Reset closes both sides with a TCP RST.
	Reset
	// Stall stops forwarding in Dir until Release or Close; the connection
	// stays open.
	Stall
	// Reply (FTP control connections only) answers the command named by
	// Fault.Command with "Code Text" instead of forwarding it.
	Reply
	// Replace (FTP data connections, Downstream) sends Payload to the client
	// instead of what the server sends, then closes the data connection.
	Replace
)

// Fault describes one injected failure. The zero value cuts every
// connection before its first byte.
type Fault struct {
	Conn Conn
	// Command restricts the fault to an FTP command. For Data faults it is
	// the transfer command the data connection serves ("STOR" matches STOR
	// only; "" matches any). For Control faults with Cut, Reset, Stall or
	// Reply it fires when the client sends that command, before it is
	// forwarded (After is then ignored). Case-insensitive.
	Command string
	Dir     Direction
	// After is the number of bytes forwarded in Dir before the fault acts.
	After  int64
	Action Action
	// Code and Text form the reply of a Reply fault (e.g. 552, "Disk full").
	Code int
	Text string
	// Payload is what a Replace fault sends instead of the server's data.
	Payload []byte
	// Times limits how often the fault fires; 0 means every time it matches.
	Times int
}

// Rule is a Fault added to a Proxy.
type Rule struct {
	p     *Proxy
	f     Fault
	fired int
}

// Fired reports how often the rule has fired.
func (r *Rule) Fired() int {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	return r.fired
}

// Remove removes the rule; connections it already acts on are unaffected.
func (r *Rule) Remove() {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	for i, x := range r.p.rules {
		if x == r {
			r.p.rules = append(r.p.rules[:i], r.p.rules[i+1:]...)
			return
		}
	}
}

// Proxy is a running fault-injecting proxy. Its methods are safe for
// concurrent use.
type Proxy struct {
	mode   Mode
	target string
	host   string // target host
	ln     net.Listener

	mu       sync.Mutex
	rules    []*Rule
	release  chan struct{} // closed by Release and Close
	closed   bool
	closing  chan struct{}
	conns    map[io.Closer]struct{}
	accepted int
	wg       sync.WaitGroup
}

// New starts a proxy listening on listenHost (a loopback address; port
// chosen by the kernel) that forwards to target ("host:port").
func New(mode Mode, listenHost, target string) (*Proxy, error) {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: target %q: %w", target, err)
	}
	if ip := net.ParseIP(listenHost); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("faultproxy: listen host %q is not a loopback address", listenHost)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("faultproxy: target %q is not a loopback address", target)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(listenHost, "0"))
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{mode: mode, target: target, host: host, ln: ln,
		release: make(chan struct{}), closing: make(chan struct{}), conns: map[io.Closer]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Start is New for tests: it fails t on error and registers Close with
// t.Cleanup.
func Start(t testing.TB, mode Mode, listenHost, target string) *Proxy {
	t.Helper()
	p, err := New(mode, listenHost, target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's "host:port"; clients connect here instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Host is the proxy's listening address.
func (p *Proxy) Host() string { return p.ln.Addr().(*net.TCPAddr).IP.String() }

// Port is the proxy's listening port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Accepted reports how many client connections (control connections in FTP
// mode) the proxy has accepted.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Add adds a fault; it applies to connections and commands from now on.
func (p *Proxy) Add(f Fault) *Rule {
	f.Command = strings.ToUpper(f.Command)
	r := &Rule{p: p, f: f}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, r)
	return r
}

// Clear removes every rule and releases stalled connections.
func (p *Proxy) Clear() {
	p.mu.Lock()
	p.rules = nil
	p.mu.Unlock()
	p.Release()
}

// Release lets every stalled connection go on forwarding.
func (p *Proxy) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		close(p.release)
		p.release = make(chan struct{})
	}
}

// CloseConns cuts every open connection but keeps accepting new ones.
func (p *Proxy) CloseConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// Close stops the proxy, cuts every connection and waits until all of its
// goroutines have ended. It is idempotent.
func (p *Proxy) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.closing)
		p.ln.Close()
		for c := range p.conns {
			c.Close()
		}
		close(p.release)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track registers c to be closed by Close; it reports false (and closes c)
// when the proxy is already closed.
func (p *Proxy) track(c io.Closer) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c io.Closer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// claim finds the first rule matching and counts it as fired.
func (p *Proxy) claim(match func(f *Fault) bool) (Fault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		if r.f.Times > 0 && r.fired >= r.f.Times {
			continue
		}
		if match(&r.f) {
			r.fired++
			return r.f, true
		}
	}
	return Fault{}, false
}

func (p *Proxy) releaseCh() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.release
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepted++
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

// pair is one proxied connection: the client side and the server side.
type pair struct {
	p        *Proxy
	kind     Conn
	client   net.Conn
	server   net.Conn
	once     sync.Once
	done     chan struct{}
	clientMu sync.Mutex // serialises writes to client on FTP control conns
	command  func() string
}

func (p *Proxy) newPair(kind Conn, client net.Conn, server net.Conn, command func() string) (*pair, bool) {
	pr := &pair{p: p, kind: kind, client: client, server: server, done: make(chan struct{}), command: command}
	if !p.track(pr) {
		return nil, false
	}
	return pr, true
}

// Close closes both sides.
func (pr *pair) Close() error {
	pr.once.Do(func() {
		close(pr.done)
		pr.client.Close()
		pr.server.Close()
	})
	return nil
}

func (pr *pair) reset() {
	for _, c := range []net.Conn{pr.client, pr.server} {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	pr.Close()
}

// act performs a byte-level action; it reports whether forwarding may go on.
func (pr *pair) act(f Fault) bool {
	switch f.Action {
	case Stall:
		select {
		case <-pr.p.releaseCh():
			select {
			case <-pr.p.closing:
				return false
			default:
				return true
			}
		case <-pr.done:
			return false
		}
	case Reset:
		pr.reset()
		return false
	default:
		pr.Close()
		return false
	}
}

func (p *Proxy) serve(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	if p.mode == FTP {
		p.serveFTP(client, server)
		return
	}
	pr, ok := p.newPair(Control, client, server, nil)
	if !ok {
		return
	}
	defer p.untrack(pr)
	pr.pipe()
}

// pipe forwards both directions with byte-level faults until both end.
func (pr *pair) pipe() {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pr.pump(pr.server, pr.client, Upstream) }()
	go func() { defer wg.Done(); pr.pump(pr.client, pr.server, Downstream) }()
	wg.Wait()
	pr.Close()
}

func (pr *pair) matcher(dir Direction) func(f *Fault) bool {
	return func(f *Fault) bool {
		if f.Action == Reply || f.Dir != dir {
			return false
		}
		if f.Action == Replace && (pr.kind != Data || dir != Downstream) {
			return false
		}
		switch f.Conn {
		case Control:
			if pr.kind != Control || f.Command != "" {
				return false
			}
		case Data:
			if pr.kind != Data {
				return false
			}
		default:
			if pr.kind == Control && f.Command != "" {
				return false
			}
		}
		if pr.kind == Data && f.Command != "" && (pr.command == nil || pr.command() != f.Command) {
			return false
		}
		return true
	}
}

// meter forwards one direction of a pair and applies the first matching
// byte-level fault, chosen when the first bytes pass (for data connections
// the transfer command is known by then) or at once for control connections.
type meter struct {
	pr       *pair
	dir      Direction
	dst, src net.Conn
	fault    Fault
	have     bool
	decided  bool
	n        int64
}

func (m *meter) decide() bool {
	if m.decided {
		return true
	}
	m.decided = true
	m.fault, m.have = m.pr.p.claim(m.pr.matcher(m.dir))
	return m.check()
}

// check acts once the fault's byte count is reached; false means stop.
func (m *meter) check() bool {
	if m.have && m.n >= m.fault.After {
		m.have = false
		return m.pr.actAt(m.fault, m.dst, m.src)
	}
	return true
}

// write forwards b, acting at the fault's byte count; false means stop.
func (m *meter) write(b []byte) bool {
	if !m.decide() {
		return false
	}
	for len(b) > 0 {
		k := len(b)
		if m.have && int64(k) > m.fault.After-m.n {
			k = int(m.fault.After - m.n)
		}
		if k > 0 {
			if _, err := m.dst.Write(b[:k]); err != nil {
				m.pr.Close()
				return false
			}
			m.n += int64(k)
			b = b[k:]
		}
		if !m.check() {
			return false
		}
	}
	return true
}

// pump copies src to dst through a meter. At the end of src it half-closes
// dst so the peer sees the end of data; on an error it closes the pair.
func (pr *pair) pump(dst, src net.Conn, dir Direction) {
	m := &meter{pr: pr, dir: dir, dst: dst, src: src}
	if pr.kind == Control && !m.decide() {
		return
	}
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 && !m.write(buf[:k]) {
			return
		}
		if err != nil {
			pr.eof(dst, err)
			return
		}
	}
}

func (pr *pair) eof(dst net.Conn, err error) {
	if errors.Is(err, io.EOF) {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
			return
		}
	}
	pr.Close()
}

// actAt performs f on the direction src → dst; false means stop forwarding.
func (pr *pair) actAt(f Fault, dst, src net.Conn) bool {
	if f.Action == Replace {
		// The client gets the payload and an end of data; the server's
		// data is read to its end and dropped, so that it completes the
		// transfer normally on the control connection.
		_, _ = dst.Write(f.Payload)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, src)
		return false
	}
	return pr.act(f)
}
