package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Defaults of the client role; a zero ClientConfig field means its default.
const (
	// DefaultPort is the TCP port of the embedded SSH server and the port
	// the client dials when a node is given without one.
	DefaultPort = 2022
	// DefaultUser is the SSH user name the client presents. The embedded
	// server accepts any user name: the key alone selects the connection.
	DefaultUser = "backupsync"
	// DefaultDialTimeout bounds the TCP connect to one node.
	DefaultDialTimeout = 10 * time.Second
	// DefaultHandshakeTimeout bounds the SSH handshake, authentication
	// included, on both roles.
	DefaultHandshakeTimeout = 15 * time.Second
	// DefaultKeepaliveInterval is how often the client sends a
	// keepalive@openssh.com request on an idle or busy connection.
	DefaultKeepaliveInterval = 15 * time.Second
	// DefaultKeepaliveTimeout is how long the client waits for the answer
	// to one keepalive before it declares the peer dead.
	DefaultKeepaliveTimeout = 30 * time.Second
	// DefaultIdleTimeout is how long a Read or Write on a tunnelled
	// connection may wait without a byte moving before the watchdog closes
	// the channel.
	DefaultIdleTimeout = 2 * time.Minute
)

// ErrClosed is returned by DialContext after Close.
var ErrClosed = errors.New("tunnel: client closed")

// defaultCiphers is the cipher preference of both roles, chosen by
// measurement (see the package doc).
var defaultCiphers = []string{
	"aes128-gcm@openssh.com",
	"aes256-gcm@openssh.com",
	"chacha20-poly1305@openssh.com",
	"aes128-ctr", "aes192-ctr", "aes256-ctr",
}

// ClientConfig configures the client role of one connection.
type ClientConfig struct {
	// Connection is the connection name; it selects this node's client key
	// and the host keys pinned for the peer.
	Connection string
	// Nodes are the peer's SSH endpoints in failover order ("host" or
	// "host:port"; REMOTE_NODES). The client uses the first that accepts it.
	Nodes []string
	// Port is used for nodes given without a port; default DefaultPort.
	Port int
	// User is the SSH user name; default DefaultUser.
	User string
	// Keys holds the client key (created on first need, ed25519 unless an
	// RSA key exists already) and the pinned host keys. Required.
	Keys *KeyStore
	// HostKeys is the host key policy; "" means HostKeysAcceptNew.
	HostKeys HostKeyPolicy
	// FTPHost is the host of the peer's archive FTP as its SSH server sees
	// it. Empty means the host of the node the client is connected to (each
	// Exasol node serves its archive FTP on its own IP). See DialContext.
	FTPHost string
	// DialTimeout bounds the TCP connect to one node; default
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// HandshakeTimeout bounds the SSH handshake with one node; default
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// KeepaliveInterval and KeepaliveTimeout: see the defaults. A negative
	// interval disables keepalives.
	KeepaliveInterval time.Duration
	KeepaliveTimeout  time.Duration
	// IdleTimeout is the watchdog limit of tunnelled connections; default
	// DefaultIdleTimeout; negative disables the watchdog.
	IdleTimeout time.Duration
	// Ciphers overrides the measured cipher preference.
	Ciphers []string
	// Logger receives refusals, failovers and reconnects; nil discards.
	Logger *slog.Logger
}

// Client is the client role of one connection: it keeps one SSH connection
// to one of the peer's nodes, shared by every tunnelled connection (SSH
// channels multiplex), and reconnects (again in Nodes order) when that
// connection dies. It is safe for concurrent use.
type Client struct {
	cfg    ClientConfig
	nodes  []nodeAddr
	log    *slog.Logger
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	sem    chan struct{} // held while connecting

	mu      sync.Mutex
	cur     *link
	closed  bool
	fails   uint64 // connect attempts that failed so far
	failErr error  // the last one's error
	wg      sync.WaitGroup
}

type nodeAddr struct{ host, addr string }

// link is one SSH connection to one node.
type link struct {
	client *ssh.Client
	tc     *transportConn
	node   nodeAddr
	done   chan struct{} // closed when the connection is gone
	// features are what the server's hello offers (FeatureFarEnd).
	features []string

	mu    sync.Mutex
	conns map[*chanConn]struct{}
	dead  bool
}

// NewClient validates cfg and returns a client that connects on first use.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := validName(cfg.Connection); err != nil {
		return nil, fmt.Errorf("tunnel: client: connection name: %w", err)
	}
	if cfg.Keys == nil {
		return nil, errors.New("tunnel: client: no key store")
	}
	if len(cfg.Nodes) == 0 {
		return nil, fmt.Errorf("tunnel: client %q: no remote nodes", cfg.Connection)
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, fmt.Errorf("tunnel: client %q: port %d out of range", cfg.Connection, cfg.Port)
	}
	if cfg.User == "" {
		cfg.User = DefaultUser
	}
	policy, err := ParseHostKeyPolicy(string(cfg.HostKeys))
	if err != nil {
		return nil, fmt.Errorf("tunnel: client %q: %w", cfg.Connection, err)
	}
	cfg.HostKeys = policy
	setDefault(&cfg.DialTimeout, DefaultDialTimeout)
	setDefault(&cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&cfg.KeepaliveInterval, DefaultKeepaliveInterval)
	setDefault(&cfg.KeepaliveTimeout, DefaultKeepaliveTimeout)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	if cfg.Ciphers == nil {
		cfg.Ciphers = defaultCiphers
	}
	var nodes []nodeAddr
	for _, n := range cfg.Nodes {
		na, err := parseNode(n, cfg.Port)
		if err != nil {
			return nil, fmt.Errorf("tunnel: client %q: %w", cfg.Connection, err)
		}
		nodes = append(nodes, na)
	}
	c := &Client{cfg: cfg, nodes: nodes, log: cfg.Logger, sem: make(chan struct{}, 1)}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("connection", cfg.Connection)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func parseNode(n string, port int) (nodeAddr, error) {
	if n == "" {
		return nodeAddr{}, errors.New("empty node address")
	}
	if host, p, err := net.SplitHostPort(n); err == nil {
		if pn, err := strconv.Atoi(p); err != nil || pn < 1 || pn > 65535 {
			return nodeAddr{}, fmt.Errorf("node %q: bad port", n)
		}
		if host == "" {
			return nodeAddr{}, fmt.Errorf("node %q: empty host", n)
		}
		return nodeAddr{host: host, addr: n}, nil
	}
	host := n
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return nodeAddr{host: host, addr: net.JoinHostPort(host, strconv.Itoa(port))}, nil
}

// Node returns the address of the node the client is connected to, or ""
// when it is not connected.
func (c *Client) Node() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return ""
	}
	return c.cur.node.addr
}

// Close closes the SSH connection and every connection tunnelled through
// it, and waits for the client's goroutines. DialContext fails afterwards.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	l := c.cur
	c.cur = nil
	c.mu.Unlock()
	c.cancel()
	if l != nil {
		l.client.Close()
	}
	c.wg.Wait()
	return nil
}

// DialContext opens a TCP connection to addr from the peer's side, through
// the SSH connection (connecting or reconnecting first if needed). network
// must be "tcp", "tcp4" or "tcp6". Its signature is the one of
// net.Dialer.DialContext; for jlaffaye/ftp wrap it as
// ftp.DialWithDialFunc(func(n, a string) (net.Conn, error) { return c.DialContext(ctx, n, a) }).
//
// The host of addr is rewritten to the peer's archive FTP host (FTPHost, or
// the connected node's host) when it is empty, unspecified (0.0.0.0 or ::,
// what jlaffaye/ftp derives for data connections over a channel) or one of
// Nodes (so a REMOTE_URL formatted with REMOTE_NODES[i] follows a failover);
// any other host is kept and the peer decides. The port is always kept.
//
// The returned connection's RemoteAddr is a *net.TCPAddr of the target;
// Close never fails (io.EOF after the peer closed is success); deadlines are
// not supported (ErrDeadlineUnsupported): instead a Read or Write that waits
// IdleTimeout without a byte moving closes the connection with an error
// wrapping ErrIdle. If the SSH connection dies, every connection through it
// fails (a Read with an error wrapping ErrConnectionLost, never a bare
// io.EOF); the next DialContext reconnects.
//
// Connecting is bounded by ctx, DialTimeout and HandshakeTimeout per node;
// opening the channel by ctx and HandshakeTimeout. A connection that does
// not answer a channel open in time is taken as dead: it is dropped and the
// dial is retried once on a fresh connection. A refusal by the peer (target
// not permitted, FTP unreachable) is returned at once.
func (c *Client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("tunnel %q: dial %s: network %q not supported", c.cfg.Connection, addr, network)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("tunnel %q: dial %s: %w", c.cfg.Connection, addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("tunnel %q: dial %s: bad port", c.cfg.Connection, addr)
	}
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		l, err := c.link(ctx)
		if err != nil {
			return nil, err
		}
		target := net.JoinHostPort(c.targetHost(l, host), portStr)
		// The peer answers a channel open at once; no answer within the
		// handshake timeout means the SSH connection is dead.
		octx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
		conn, err := l.dial(octx, target)
		timedOut := err != nil && octx.Err() != nil && ctx.Err() == nil
		cancel()
		if timedOut {
			err = fmt.Errorf("no answer to the channel open within %v", c.cfg.HandshakeTimeout)
		}
		if err == nil {
			if cc := c.wrap(l, conn, target); cc != nil {
				return cc, nil
			}
			err = errors.New("SSH connection closed")
		}
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			// The peer answered: it refused the target (not permitted, or
			// its FTP is down). Reconnecting would not help.
			return nil, fmt.Errorf("tunnel %q: dial %s via %s: refused by peer: %s", c.cfg.Connection, target, l.node.addr, oce.Message)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("tunnel %q: dial %s via %s: %w", c.cfg.Connection, target, l.node.addr, ctx.Err())
		}
		// The SSH connection is broken: drop it and try once more.
		lastErr = fmt.Errorf("tunnel %q: dial %s via %s: %w", c.cfg.Connection, target, l.node.addr, err)
		c.log.Warn("tunnel: SSH connection broken, reconnecting", "node", l.node.addr, "err", err)
		l.client.Close()
		c.mu.Lock()
		if c.cur == l {
			c.cur = nil
		}
		c.mu.Unlock()
	}
	return nil, lastErr
}

func (c *Client) targetHost(l *link, host string) string {
	ip := net.ParseIP(host)
	rewrite := host == "" || (ip != nil && ip.IsUnspecified())
	for _, n := range c.nodes {
		if n.host == host {
			rewrite = true
		}
	}
	if !rewrite {
		return host
	}
	if c.cfg.FTPHost != "" {
		return c.cfg.FTPHost
	}
	return l.node.host
}

// wrap returns conn as a *chanConn registered with l, or nil (and conn
// closed) when l died meanwhile.
func (c *Client) wrap(l *link, conn net.Conn, target string) *chanConn {
	host, portStr, _ := net.SplitHostPort(target)
	port, _ := strconv.Atoi(portStr)
	ip := net.ParseIP(host)
	if ip == nil {
		ip = net.IPv4zero
	}
	raddr := &net.TCPAddr{IP: ip, Port: port}
	idle := c.cfg.IdleTimeout
	if idle < 0 {
		idle = 0
	}
	cc := newChanConn(conn, raddr, idle, connHooks{
		lost:    l.tc.lost,
		onClose: l.remove,
		onIdle: func(*chanConn) {
			c.log.Warn("tunnel: idle watchdog closed a tunnelled connection", "node", l.node.addr, "target", target, "idle", idle)
		},
		kill: func() {
			c.log.Warn("tunnel: the peer did not answer the close of a stalled connection; closing the SSH connection",
				"node", l.node.addr, "target", target, "grace", closeGrace)
			l.client.Close()
		},
	})
	if !l.add(cc) {
		cc.Close()
		return nil
	}
	return cc
}

// dial opens a direct-tcpip channel, giving up when ctx ends.
func (l *link) dial(ctx context.Context, target string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		conn, err := l.client.Dial("tcp", target)
		ch <- result{conn, err}
	}()
	select {
	case r := <-ch:
		return r.conn, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func (l *link) add(cc *chanConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		return false
	}
	l.conns[cc] = struct{}{}
	return true
}

func (l *link) remove(cc *chanConn) {
	l.mu.Lock()
	delete(l.conns, cc)
	l.mu.Unlock()
}

// closeAll marks the link dead and closes every connection through it.
func (l *link) closeAll() {
	l.mu.Lock()
	l.dead = true
	conns := make([]*chanConn, 0, len(l.conns))
	for cc := range l.conns {
		conns = append(conns, cc)
	}
	l.mu.Unlock()
	for _, cc := range conns {
		cc.Close()
	}
}

// link returns the live SSH connection, connecting first if there is none.
func (c *Client) link(ctx context.Context) (*link, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if c.cur != nil {
			l := c.cur
			c.mu.Unlock()
			return l, nil
		}
		fails := c.fails
		c.mu.Unlock()
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("tunnel %q: waiting for connect: %w", c.cfg.Connection, ctx.Err())
		}
		c.mu.Lock()
		if c.cur != nil || c.closed {
			c.mu.Unlock()
			<-c.sem
			continue
		}
		if c.fails != fails {
			// An attempt made while we waited failed: share its result
			// rather than try every node again for each waiting worker.
			err := c.failErr
			c.mu.Unlock()
			<-c.sem
			return nil, err
		}
		c.mu.Unlock()
		l, err := c.connect(ctx)
		if err != nil {
			if ctx.Err() == nil { // not our caller's own deadline
				c.mu.Lock()
				c.fails++
				c.failErr = err
				c.mu.Unlock()
			}
			<-c.sem
			return nil, err
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			<-c.sem
			l.client.Close()
			return nil, ErrClosed
		}
		c.cur = l
		c.wg.Add(2)
		c.mu.Unlock()
		<-c.sem
		go c.watch(l)
		go c.keepalive(l)
		return l, nil
	}
}

// watch waits for the link's end, then forgets it and closes what went
// through it.
func (c *Client) watch(l *link) {
	defer c.wg.Done()
	err := l.client.Wait()
	close(l.done)
	c.mu.Lock()
	if c.cur == l {
		c.cur = nil
	}
	closed := c.closed
	c.mu.Unlock()
	l.closeAll()
	if !closed {
		c.log.Warn("tunnel: SSH connection lost", "node", l.node.addr, "err", err)
	}
}

// keepalive pings the peer every KeepaliveInterval and closes the
// connection when an answer takes longer than KeepaliveTimeout.
func (c *Client) keepalive(l *link) {
	defer c.wg.Done()
	if c.cfg.KeepaliveInterval < 0 {
		return
	}
	t := time.NewTicker(c.cfg.KeepaliveInterval)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
		}
		timer := time.AfterFunc(c.cfg.KeepaliveTimeout, func() {
			c.log.Warn("tunnel: keepalive unanswered, closing SSH connection", "node", l.node.addr, "timeout", c.cfg.KeepaliveTimeout)
			l.client.Close()
		})
		_, _, err := l.client.SendRequest("keepalive@openssh.com", true, nil)
		timer.Stop()
		if err != nil {
			return
		}
	}
}

// connect tries the nodes in order and returns the first SSH connection
// that authenticates both ways.
func (c *Client) connect(ctx context.Context) (*link, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()

	signers, err := c.cfg.Keys.clientSigners(c.cfg.Connection)
	if err != nil {
		return nil, err
	}
	pinned, err := c.cfg.Keys.PinnedHostKeys(c.cfg.Connection)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i, n := range c.nodes {
		l, err := c.connectNode(ctx, n, signers, pinned)
		if err == nil {
			if i > 0 {
				c.log.Warn("tunnel: failed over", "node", n.addr, "index", i)
			}
			c.log.Info("tunnel: SSH connection up", "node", n.addr)
			return l, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
		if i+1 < len(c.nodes) {
			c.log.Warn("tunnel: node unusable, trying the next", "node", n.addr, "err", err)
		} else {
			c.log.Warn("tunnel: node unusable", "node", n.addr, "err", err)
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, fmt.Errorf("tunnel %q: no node usable: %w", c.cfg.Connection, errors.Join(errs...))
}

func (c *Client) connectNode(ctx context.Context, n nodeAddr, signers []ssh.Signer, pinned []KeyLine) (*link, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("tunnel %q: node %s: "+format, append([]any{c.cfg.Connection, n.addr}, args...)...)
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(dctx, "tcp", n.addr)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, &RefusedError{Connection: c.cfg.Connection, Node: n.addr, Reason: RefusedNotRunning, Err: err}
		}
		return nil, fail("connect: %w", err)
	}
	nc := newTransportConn(raw)
	hk := newHostKeyCheck(c.cfg.Connection, n.addr, c.cfg.HostKeys, c.cfg.Keys.PinFile(c.cfg.Connection), pinned)
	var bannerMu sync.Mutex
	var banners []string
	cfg := &ssh.ClientConfig{
		User:              c.cfg.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signers...)},
		HostKeyAlgorithms: hk.algorithms(),
		HostKeyCallback: func(host string, addr net.Addr, key ssh.PublicKey) error {
			err := hk.callback(host, addr, key)
			if err != nil {
				c.log.Warn("tunnel: refused host key", "node", n.addr, "fingerprint", ssh.FingerprintSHA256(key), "type", key.Type(),
					"pinned", hk.err.PinnedFingerprint, "pins", len(pinned))
			}
			return err
		},
		BannerCallback: func(msg string) error {
			bannerMu.Lock()
			defer bannerMu.Unlock()
			if len(banners) < 16 {
				banners = append(banners, msg)
			}
			return nil
		},
		Timeout:       c.cfg.HandshakeTimeout,
		ClientVersion: "SSH-2.0-backupsync",
	}
	cfg.Ciphers = c.cfg.Ciphers
	nc.SetDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	sc, chans, reqs, err := ssh.NewClientConn(nc, n.addr, cfg)
	stopped := stop()
	if err != nil {
		nc.Close()
		if hk.err != nil {
			return nil, hk.err
		}
		if !stopped || ctx.Err() != nil {
			return nil, fail("handshake: %w", ctx.Err())
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fail("handshake: no answer within %v: %w", c.cfg.HandshakeTimeout, err)
		}
		bannerMu.Lock()
		refused := bannerRefusal(c.cfg.Connection, n.addr, banners, err)
		bannerMu.Unlock()
		if refused != nil {
			c.log.Warn("tunnel: the remote refused this node's key", "node", n.addr, "reason", string(refused.Reason), "remote", refused.Detail)
			return nil, refused
		}
		return nil, fail("handshake: %w", err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	if hk.firstUse != nil {
		kl, pinnedNow, err := c.cfg.Keys.PinFirstUse(c.cfg.Connection, n.addr, hk.firstUse)
		if err != nil {
			client.Close()
			return nil, err
		}
		if pinnedNow {
			c.log.Info(fmt.Sprintf("pinned host key %s of %s for %s on first use", kl.Fingerprint(), n.addr, c.cfg.Connection),
				"node", n.addr, "fingerprint", kl.Fingerprint(), "type", kl.Key.Type())
		}
	}
	remoteNode, features, err := sayHello(client, c.cfg.Connection, n.addr, c.cfg.HandshakeTimeout)
	if err != nil {
		client.Close()
		var re *RefusedError
		if errors.As(err, &re) {
			c.log.Warn("tunnel: connection names differ between the clusters", "node", n.addr, "remote_connection", re.Remote)
			return nil, err
		}
		return nil, fail("%w", err)
	}
	if remoteNode != "" {
		c.log.Debug("tunnel: remote node", "node", n.addr, "name", remoteNode)
	}
	nc.SetDeadline(time.Time{})
	return &link{
		client:   client,
		tc:       nc,
		node:     n,
		done:     make(chan struct{}),
		conns:    map[*chanConn]struct{}{},
		features: features,
	}, nil
}

func hostKeyAlgorithms(k ssh.PublicKey) []string {
	if k.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return []string{k.Type()}
}

func appendUnique(s []string, v ...string) []string {
	for _, x := range v {
		found := false
		for _, y := range s {
			if x == y {
				found = true
			}
		}
		if !found {
			s = append(s, x)
		}
	}
	return s
}
