package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"backupsync/internal/farend"
)

// Defaults of the server role; a zero ServerConfig field means its default.
const (
	// DefaultMaxConns caps the authenticated SSH connections the server
	// holds at once; one more is closed after its authentication, with a
	// log line. Connections not yet authenticated have their own caps
	// (DefaultMaxPreAuth, DefaultMaxPreAuthPerSource).
	DefaultMaxConns = 64
	// ExasolDatabasePort is Exasol's database port: never forwarded,
	// whatever the FTP server announces.
	ExasolDatabasePort = 8563
)

// Permission extensions the server records for an authenticated connection.
const (
	// ExtConnection holds the connection name whose authorized key matched.
	ExtConnection = "backupsync-connection"
	// ExtFingerprint holds the SHA256 fingerprint of that key.
	ExtFingerprint = "backupsync-key-fingerprint"
)

// ServerConfig configures the embedded, forwarding-only SSH server.
type ServerConfig struct {
	// Keys holds this node's host keys (an ed25519 one is created on first
	// need) and the client keys authorized per connection. Required.
	Keys *KeyStore
	// ArchiveFTP is this node's archive FTP, "IP:PORT" (settings
	// ssh_server.archive_ftp). Every forwarded connection goes to its
	// host, whatever host the client asked for: to its port, or to a data
	// port it announced (see the package doc). Required.
	ArchiveFTP string
	// User is the only SSH user name accepted; default DefaultUser (the
	// daemon passes settings ssh_client.user when set).
	User string
	// PassivePortMin and PassivePortMax are the FTP server's passive port
	// range (settings ssh_server.passive_ports), the data ports allowed on
	// an SSH connection whose control connection turned to TLS, where no
	// announcement can be read. Zero: none, and FTPS data connections are
	// refused.
	PassivePortMin, PassivePortMax int
	// ReservedPorts are never forwarded, whatever is announced: the
	// node's other services (control plane, metrics). ExasolDatabasePort
	// and the server's own listening ports are always reserved.
	ReservedPorts []int
	// ExpectWindow is how long an announced data port may be opened;
	// default DefaultExpectWindow.
	ExpectWindow time.Duration
	// HandshakeTimeout bounds the SSH handshake and authentication of an
	// incoming connection; default DefaultPreAuthTimeout.
	HandshakeTimeout time.Duration
	// DialTimeout bounds the connect to the archive FTP; default
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// MaxConns caps authenticated connections; default DefaultMaxConns.
	MaxConns int
	// MaxPreAuth and MaxPreAuthPerSource cap the connections not yet
	// authenticated, in total and per source address; when one more
	// arrives the oldest (of the server, or of that address) is dropped.
	// Defaults DefaultMaxPreAuth and DefaultMaxPreAuthPerSource.
	MaxPreAuth, MaxPreAuthPerSource int
	// MaxChannelsPerConn, MaxChannelsPerName and MaxForwards cap the open
	// forwarded connections per SSH connection, per connection name and in
	// total; defaults DefaultMaxChannelsPerConn, DefaultMaxChannelsPerName
	// and DefaultMaxForwards.
	MaxChannelsPerConn, MaxChannelsPerName, MaxForwards int
	// AllowConnection, if set, is asked at authentication whether the
	// connection whose key matched may use the server now (for example:
	// configured with SSH = server and activated). nil allows all.
	AllowConnection func(connection string) bool
	// Ciphers overrides the measured cipher preference.
	Ciphers []string
	// NoFarEnd turns the far-end path off: the hello offers no
	// FeatureFarEnd and far-end channels are refused, as by an older
	// server.
	NoFarEnd bool
	// FarEnd tunes the far end (farend.HostConfig; its ArchiveFTP and
	// Logger are the server's). Zero fields take farend's defaults.
	FarEnd farend.HostConfig
	// Logger receives accepted connections and every refusal; nil
	// discards. Key material is never logged, only fingerprints.
	Logger *slog.Logger
}

// Server is the embedded SSH server of the server role: public-key
// authentication against the keys authorized per connection, and nothing
// but direct-tcpip channels to this node's archive FTP host.
type Server struct {
	cfg     ServerConfig
	ssh     *ssh.ServerConfig
	ftpHost string
	ftpPort int
	log     *slog.Logger

	refusals *burstLog // refusals and drops, once per burst
	reserved map[int]struct{}
	farEnd   *farend.Host // nil: not offered

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	ownPorts  map[int]struct{} // ports the server listens on
	peers     map[*peer]struct{}
	wg        sync.WaitGroup
	health    serveHealth
	seq       uint64         // accept order of peers
	preAuth   int            // peers not yet authenticated
	perSource map[string]int // of them, per source address
	authed    int            // authenticated peers
	perName   map[string]int // open forwards per connection name
	forwards  int            // open forwards
}

// peer is one accepted TCP connection.
type peer struct {
	nc     *transportConn
	remote string
	source string // remote IP
	seq    uint64
	exp    *expectations
	// Guarded by Server.mu:
	preAuth bool // counted in Server.preAuth
	dropped bool // dropped before authentication to make room
	authed  bool // counted in Server.authed
	name    string
	farEnd  *farend.Peer // set at authentication when the far end is offered
	// farCtx ends the far end's requests when the SSH connection ends.
	farCtx    context.Context
	farCancel context.CancelFunc

	mu       sync.Mutex
	targets  map[net.Conn]struct{} // open connections to the archive FTP
	channels int
	closed   bool
}

// NewServer validates cfg and loads (or creates) the host keys.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Keys == nil {
		return nil, errors.New("tunnel: server: no key store")
	}
	host, portStr, err := net.SplitHostPort(cfg.ArchiveFTP)
	if err != nil || host == "" {
		return nil, fmt.Errorf("tunnel: server: archive FTP %q is not IP:PORT", cfg.ArchiveFTP)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("tunnel: server: archive FTP %q: bad port", cfg.ArchiveFTP)
	}
	if cfg.PassivePortMin != 0 || cfg.PassivePortMax != 0 {
		if cfg.PassivePortMin < 1024 || cfg.PassivePortMax > 65535 || cfg.PassivePortMin > cfg.PassivePortMax {
			return nil, fmt.Errorf("tunnel: server: passive ports %d-%d: want a range within 1024-65535", cfg.PassivePortMin, cfg.PassivePortMax)
		}
		if port >= cfg.PassivePortMin && port <= cfg.PassivePortMax {
			return nil, fmt.Errorf("tunnel: server: passive ports %d-%d include the archive FTP port %d", cfg.PassivePortMin, cfg.PassivePortMax, port)
		}
	}
	if cfg.User == "" {
		cfg.User = DefaultUser
	}
	setDefault(&cfg.HandshakeTimeout, DefaultPreAuthTimeout)
	setDefault(&cfg.DialTimeout, DefaultDialTimeout)
	setDefault(&cfg.ExpectWindow, DefaultExpectWindow)
	for _, v := range []struct {
		p   *int
		def int
	}{
		{&cfg.MaxConns, DefaultMaxConns},
		{&cfg.MaxPreAuth, DefaultMaxPreAuth},
		{&cfg.MaxPreAuthPerSource, DefaultMaxPreAuthPerSource},
		{&cfg.MaxChannelsPerConn, DefaultMaxChannelsPerConn},
		{&cfg.MaxChannelsPerName, DefaultMaxChannelsPerName},
		{&cfg.MaxForwards, DefaultMaxForwards},
	} {
		if *v.p <= 0 {
			*v.p = v.def
		}
	}
	if cfg.Ciphers == nil {
		cfg.Ciphers = defaultCiphers
	}
	s := &Server{
		cfg:       cfg,
		ftpHost:   host,
		ftpPort:   port,
		log:       cfg.Logger,
		reserved:  map[int]struct{}{ExasolDatabasePort: {}},
		listeners: map[net.Listener]struct{}{},
		ownPorts:  map[int]struct{}{},
		peers:     map[*peer]struct{}{},
		perSource: map[string]int{},
		perName:   map[string]int{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.refusals = newBurstLog(s.log, refusalBurst)
	if !cfg.NoFarEnd {
		fc := cfg.FarEnd
		fc.ArchiveFTP, fc.Logger = cfg.ArchiveFTP, s.log
		if s.farEnd, err = farend.NewHost(fc); err != nil {
			return nil, fmt.Errorf("tunnel: server: %w", err)
		}
	}
	for _, r := range cfg.ReservedPorts {
		if r != port {
			s.reserved[r] = struct{}{}
		}
	}
	signers, err := cfg.Keys.hostSigners()
	if err != nil {
		return nil, err
	}
	sc := &ssh.ServerConfig{
		PublicKeyCallback: s.publicKey,
		// Known but refused keys are refused here, with the reason (trust.go).
		VerifiedPublicKeyCallback: s.verifiedKey,
		AuthLogCallback:           s.authLog,
		ServerVersion:             "SSH-2.0-backupsync",
		MaxAuthTries:              6,
	}
	sc.Ciphers = cfg.Ciphers
	for _, k := range signers {
		sc.AddHostKey(k)
	}
	s.ssh = sc
	return s, nil
}

func (s *Server) publicKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	if meta.User() != s.cfg.User {
		return nil, fmt.Errorf("user %q is not the tunnel user %q (settings ssh_client.user)", meta.User(), s.cfg.User)
	}
	return s.checkKey(meta, key)
}

func (s *Server) authLog(meta ssh.ConnMetadata, method string, err error) {
	remote := meta.RemoteAddr().String()
	// Once per burst and source address: a stranger's guesses must not
	// flood the log.
	host, _, _ := net.SplitHostPort(remote)
	kind := "auth:" + host + ":" + method
	switch {
	case err == nil:
		// Logged once the connection is established.
	case method == "none":
		// Every client starts by asking which methods exist.
	case method == "publickey":
		s.refusals.warn(kind, "tunnel: refused public key", "remote", remote, "user", clean(meta.User(), 64), "reason", err.Error())
	case method == "password" || method == "keyboard-interactive":
		s.refusals.warn(kind, "tunnel: refused "+method+" authentication: only public keys are accepted", "remote", remote, "user", clean(meta.User(), 64))
	default:
		s.refusals.warn(kind, "tunnel: refused authentication method", "method", clean(method, 64), "remote", remote, "user", clean(meta.User(), 64))
	}
}

// Serve accepts SSH connections on ln until ctx ends or Close or Shutdown
// is called; then it returns nil (ln is closed). Accept errors other than
// a closed listener (EMFILE, ENFILE, ECONNABORTED, timeouts) never end it:
// it waits 5 ms, doubling to 1 s, and accepts again, and Health reports
// them. It returns an error only when ln was closed by someone else; ln
// is closed then too, and Serve may be called again with a new listener
// (Health counts that as a restart). Serve may be called for several
// listeners.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	if ta, ok := ln.Addr().(*net.TCPAddr); ok {
		s.ownPorts[ta.Port] = struct{}{}
	}
	if s.health.failed {
		s.health.failed = false
		s.health.restarts++
	}
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	s.log.Info("tunnel: SSH server listening", "addr", ln.Addr().String(), "archive_ftp", s.cfg.ArchiveFTP)
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				err = fmt.Errorf("tunnel: SSH server on %s: accept: %w", ln.Addr(), err)
				s.mu.Lock()
				delete(s.listeners, ln)
				s.health.failed = true
				s.health.lastErr, s.health.lastErrAt = err, time.Now()
				s.mu.Unlock()
				ln.Close()
				return err
			}
			// Out of file descriptors, an aborted connection, a timeout:
			// wait and accept again, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.mu.Lock()
			s.health.acceptErrors++
			s.health.lastErr, s.health.lastErrAt = err, time.Now()
			s.mu.Unlock()
			s.refusals.warn("accept", "tunnel: accept failed; retrying", "addr", ln.Addr().String(), "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			continue
		}
		backoff = 0
		p := &peer{nc: newTransportConn(nc), remote: nc.RemoteAddr().String(), targets: map[net.Conn]struct{}{},
			exp: newExpectations(s.cfg.ExpectWindow)}
		p.source = p.remote
		if h, _, err := net.SplitHostPort(p.remote); err == nil {
			p.source = h
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		s.admitPreAuth(p)
		s.peers[p] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(p)
	}
}

// admitPreAuth counts p as not yet authenticated, dropping the oldest such
// connection of its source address, or of all, when a cap is reached: a
// flood of connections that never log in cannot keep a client out, it only
// shortens its own connections' lives. s.mu is held.
func (s *Server) admitPreAuth(p *peer) {
	s.seq++
	p.seq = s.seq
	for _, perSource := range []bool{true, false} {
		limit, n := s.cfg.MaxPreAuth, s.preAuth
		if perSource {
			limit, n = s.cfg.MaxPreAuthPerSource, s.perSource[p.source]
		}
		if n < limit {
			continue
		}
		var oldest *peer
		for q := range s.peers {
			if q.preAuth && (!perSource || q.source == p.source) && (oldest == nil || q.seq < oldest.seq) {
				oldest = q
			}
		}
		if oldest == nil {
			continue
		}
		s.leavePreAuth(oldest)
		oldest.dropped = true
		oldest.nc.abort()
		if perSource {
			s.refusals.warn("preauth-source", "tunnel: dropped the oldest unauthenticated connection of a source address to make room",
				"remote", oldest.remote, "max_per_source", s.cfg.MaxPreAuthPerSource)
		} else {
			s.refusals.warn("preauth", "tunnel: dropped the oldest unauthenticated connection to make room",
				"remote", oldest.remote, "max", s.cfg.MaxPreAuth)
		}
	}
	p.preAuth = true
	s.preAuth++
	s.perSource[p.source]++
}

// leavePreAuth stops counting p as unauthenticated. s.mu is held.
func (s *Server) leavePreAuth(p *peer) {
	if !p.preAuth {
		return
	}
	p.preAuth = false
	s.preAuth--
	if s.perSource[p.source]--; s.perSource[p.source] <= 0 {
		delete(s.perSource, p.source)
	}
}

// ServerHealth is the state of the server's accept loops and its load.
type ServerHealth struct {
	// Listening: at least one Serve is accepting.
	Listening bool
	// Restarts counts the Serve calls that followed a Serve that ended
	// with an error.
	Restarts int
	// AcceptErrors counts accept errors survived (EMFILE, ENFILE, …).
	AcceptErrors uint64
	// LastErr is the last accept error (nil if none) and LastErrAt when.
	LastErr   error
	LastErrAt time.Time
	// Conns, PreAuth and Forwards are the authenticated SSH connections,
	// those not yet authenticated, and the open forwarded connections.
	Conns, PreAuth, Forwards int
}

type serveHealth struct {
	failed       bool // the last Serve to end ended with an error
	restarts     int
	acceptErrors uint64
	lastErr      error
	lastErrAt    time.Time
}

// Health reports the state of the server's accept loops and its load, for
// STATUS.
func (s *Server) Health() ServerHealth {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ServerHealth{
		Listening:    len(s.listeners) > 0 && !s.closing,
		Restarts:     s.health.restarts,
		AcceptErrors: s.health.acceptErrors,
		LastErr:      s.health.lastErr,
		LastErrAt:    s.health.lastErrAt,
		Conns:        s.authed,
		PreAuth:      s.preAuth,
		Forwards:     s.forwards,
	}
}

// Close stops accepting, closes every connection at once and waits until
// all of the server's goroutines have ended.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	for p := range s.peers {
		p.nc.abort()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.refusals.close()
	return nil
}

// Shutdown stops accepting, closes the connections that have no open
// tunnel at once and the others as their last tunnel closes. When ctx ends
// first it closes everything as Close does and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		for p := range s.peers {
			p.mu.Lock()
			if p.channels == 0 {
				p.nc.abort()
			}
			p.mu.Unlock()
		}
		s.mu.Unlock()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			s.Close()
			<-done
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *Server) handle(p *peer) {
	defer s.wg.Done()
	defer func() {
		p.nc.Close()
		s.mu.Lock()
		delete(s.peers, p)
		s.mu.Unlock()
	}()
	defer func() {
		s.mu.Lock()
		s.leavePreAuth(p)
		if p.authed {
			p.authed = false
			s.authed--
		}
		s.mu.Unlock()
	}()
	p.nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(p.nc, s.ssh)
	if err != nil {
		s.mu.Lock()
		dropped := p.dropped
		s.mu.Unlock()
		var ne net.Error
		var ae *ssh.ServerAuthError
		switch {
		case dropped:
			// Logged (once per burst) where it was dropped.
		case errors.As(err, &ne) && ne.Timeout():
			s.refusals.warn("deadline", "tunnel: dropped connection: no complete handshake within the deadline", "remote", p.remote, "timeout", s.cfg.HandshakeTimeout)
		case errors.As(err, &ae):
			s.log.Warn("tunnel: refused connection: authentication failed (only authorized public keys are accepted)", "remote", p.remote, "attempts", len(ae.Errors))
		default:
			s.refusals.warn("handshake", "tunnel: handshake failed", "remote", p.remote, "err", err)
		}
		return
	}
	p.nc.SetDeadline(time.Time{})
	conn := sc.Permissions.Extensions[ExtConnection]
	s.mu.Lock()
	s.leavePreAuth(p)
	full := s.authed >= s.cfg.MaxConns
	if !full && !p.dropped {
		p.authed = true
		p.name = conn
		s.authed++
	}
	s.mu.Unlock()
	if full || !p.authed {
		if full {
			s.refusals.warn("conns", "tunnel: refused connection: too many connections", "remote", p.remote, "connection", conn, "max", s.cfg.MaxConns)
		}
		sc.Close()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); ssh.DiscardRequests(reqs) }()
		for nch := range chans {
			nch.Reject(ssh.ResourceShortage, "too many connections")
		}
		wg.Wait()
		return
	}
	log := s.log.With("remote", p.remote, "connection", conn)
	log.Info("tunnel: SSH connection accepted", "user", sc.User(), "key", sc.Permissions.Extensions[ExtFingerprint])
	if s.farEnd != nil {
		p.farEnd = s.farEnd.NewPeer(log, func() { p.nc.abort() })
		p.farCtx, p.farCancel = context.WithCancel(context.Background())
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.globalRequests(reqs, conn, log)
	}()
	for nch := range chans {
		s.channel(nch, p, log, &wg)
	}
	sc.Close()
	p.closeTargets()
	wg.Wait()
	log.Info("tunnel: SSH connection closed")
}

func (s *Server) globalRequests(reqs <-chan *ssh.Request, conn string, log *slog.Logger) {
	for req := range reqs {
		switch req.Type {
		case "keepalive@openssh.com":
			req.Reply(true, nil)
			continue
		case helloRequest:
			s.hello(req, conn, log) // hello.go
			continue
		case "no-more-sessions@openssh.com":
			// Harmless: no sessions are offered anyway.
		case "tcpip-forward", "cancel-tcpip-forward", "streamlocal-forward@openssh.com", "cancel-streamlocal-forward@openssh.com":
			log.Warn("tunnel: refused remote forwarding request", "request", req.Type)
		default:
			log.Warn("tunnel: refused global request", "request", req.Type)
		}
		if req.WantReply {
			req.Reply(false, nil)
		}
	}
}

// directTCPIP is the payload of a direct-tcpip channel open (RFC 4254 7.2).
type directTCPIP struct {
	Host     string
	Port     uint32
	OrigHost string
	OrigPort uint32
}

func (s *Server) channel(nch ssh.NewChannel, p *peer, log *slog.Logger, wg *sync.WaitGroup) {
	switch t := nch.ChannelType(); t {
	case "direct-tcpip":
		var m directTCPIP
		if err := ssh.Unmarshal(nch.ExtraData(), &m); err != nil {
			s.refusals.warn("malformed:"+p.remote, "tunnel: refused malformed direct-tcpip request", "remote", p.remote, "connection", p.name)
			nch.Reject(ssh.ConnectionFailed, "malformed direct-tcpip request")
			return
		}
		// The client names the address it dialled (which behind NAT or a
		// relay is not the FTP host's own): the host is not checked, every
		// forward goes to the archive FTP host.
		asked := net.JoinHostPort(m.Host, strconv.FormatUint(uint64(m.Port), 10))
		target := net.JoinHostPort(s.ftpHost, strconv.FormatUint(uint64(m.Port), 10))
		if reason := s.refuseTarget(p, m.Port); reason != "" {
			s.refusals.warn("target:"+p.remote+":"+reason, "tunnel: refused forwarding", "remote", p.remote, "connection", p.name,
				"target", asked, "reason", reason)
			nch.Reject(ssh.Prohibited, "forwarding to port "+strconv.FormatUint(uint64(m.Port), 10)+" is not permitted: "+reason)
			return
		}
		if reason := s.openChannel(p); reason != "" {
			s.refusals.warn("limit:"+p.name+":"+reason, "tunnel: refused forwarding: "+reason, "remote", p.remote, "connection", p.name)
			nch.Reject(ssh.ResourceShortage, reason)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.closeChannel(p)
			s.forward(nch, asked, target, int(m.Port) == s.ftpPort, p, log, wg)
		}()
	case farend.ChannelType:
		s.farEndChannel(nch, p, log, wg) // farend.go
	case "session":
		s.refusals.warn("session:"+p.remote, "tunnel: refused session channel (no shell, exec, subsystem, sftp or agent forwarding)", "remote", p.remote, "connection", p.name)
		nch.Reject(ssh.Prohibited, "only port forwarding to the archive FTP is permitted")
	default:
		s.refusals.warn("channel:"+p.remote, "tunnel: refused channel", "type", t, "remote", p.remote, "connection", p.name)
		nch.Reject(ssh.UnknownChannelType, "only port forwarding to the archive FTP is permitted")
	}
}

// refuseTarget returns why port of the archive FTP host may not be reached
// by p, or "" if it may (see the package doc): the FTP port; a data port
// the FTP server announced on a control connection of p within the
// expectation window, once; when a control connection of p is in TLS, a
// port of the passive range. The server's own ports, ExasolDatabasePort
// and ReservedPorts never.
func (s *Server) refuseTarget(p *peer, port uint32) string {
	if int(port) == s.ftpPort {
		return ""
	}
	s.mu.Lock()
	_, own := s.ownPorts[int(port)]
	s.mu.Unlock()
	if _, reserved := s.reserved[int(port)]; own || reserved || port < 1 || port > 65535 {
		return "reserved port (the node's own services)"
	}
	if p.exp.take(int(port)) {
		return ""
	}
	if p.exp.inTLS() {
		if s.cfg.PassivePortMax == 0 {
			return "an FTPS data port cannot be checked: set ssh_server.passive_ports to the archive FTP's passive port range"
		}
		if int(port) >= s.cfg.PassivePortMin && int(port) <= s.cfg.PassivePortMax {
			return ""
		}
		return fmt.Sprintf("not in the passive port range %d-%d (ssh_server.passive_ports)", s.cfg.PassivePortMin, s.cfg.PassivePortMax)
	}
	return fmt.Sprintf("neither the archive FTP port %d nor a data port it announced on this SSH connection", s.ftpPort)
}

// openChannel counts a forward of p against the caps, or returns which
// cap refuses it.
func (s *Server) openChannel(p *peer) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return "connection closing"
	case p.channels >= s.cfg.MaxChannelsPerConn:
		return fmt.Sprintf("too many forwarded connections on this SSH connection (%d)", s.cfg.MaxChannelsPerConn)
	case s.perName[p.name] >= s.cfg.MaxChannelsPerName:
		return fmt.Sprintf("too many forwarded connections of connection %s (%d)", p.name, s.cfg.MaxChannelsPerName)
	case s.forwards >= s.cfg.MaxForwards:
		return fmt.Sprintf("too many forwarded connections on this node (%d)", s.cfg.MaxForwards)
	}
	p.channels++
	s.perName[p.name]++
	s.forwards++
	return ""
}

func (s *Server) closeChannel(p *peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p.mu.Lock()
	p.channels--
	p.mu.Unlock()
	if s.perName[p.name]--; s.perName[p.name] <= 0 {
		delete(s.perName, p.name)
	}
	s.forwards--
}

// forward connects to target on the archive FTP host and copies both ways;
// control (a connection to the FTP port) is tracked for the data ports it
// announces.
func (s *Server) forward(nch ssh.NewChannel, asked, target string, control bool, p *peer, log *slog.Logger, wg *sync.WaitGroup) {
	// No TCP keepalive towards the archive FTP: it runs on this node, and
	// the SSH side has its own; one forward per file saves four setsockopt.
	d := net.Dialer{Timeout: s.cfg.DialTimeout, KeepAlive: -1}
	tc, err := d.Dial("tcp", target)
	if err != nil {
		s.refusals.warn("unreachable", "tunnel: archive FTP unreachable", "target", target, "err", err)
		nch.Reject(ssh.ConnectionFailed, "archive FTP "+target+" unreachable")
		return
	}
	if !p.addTarget(tc) {
		tc.Close()
		nch.Reject(ssh.ConnectionFailed, "connection closing")
		return
	}
	defer p.removeTarget(tc)
	ch, reqs, err := nch.Accept()
	if err != nil {
		tc.Close()
		return
	}
	log.Debug("tunnel: forwarding", "target", target, "asked", asked)
	wg.Add(1)
	go func() {
		defer wg.Done()
		ssh.DiscardRequests(reqs)
	}()
	var up, down func([]byte)
	if control {
		tr := newFTPTrack(p.exp)
		defer tr.close()
		up, down = tr.client, tr.server
	}
	proxy(ch, tc, p.nc.lost, up, down)
}

// proxyBuffer is the copy buffer of each direction of a forwarded
// connection: 256 KiB rather than io.Copy's 32 KiB means fewer, larger reads
// from the FTP server's socket. Measured on RETR of 128 MiB from vsftpd
// through the tunnel (best of four, interleaved, loaded machine): 200 MiB/s
// against 98–188 MiB/s with 32 KiB.
const proxyBuffer = 256 << 10

// proxyBuffers recycles the copy buffers: every FTP data connection (one
// per file) is a forwarded connection, and allocating 512 KiB for each
// kept the garbage collector busy when thousands of small files went
// through.
var proxyBuffers = sync.Pool{New: func() any { b := make([]byte, proxyBuffer); return &b }}

// smallProxyBuffer is what each direction of a forwarded connection reads
// into until a read fills it: an idle connection (a control connection, a
// channel of a flood) holds 2 × 4 KiB rather than 2 × 256 KiB.
const smallProxyBuffer = 4 << 10

var smallProxyBuffers = sync.Pool{New: func() any { b := make([]byte, smallProxyBuffer); return &b }}

// copyPooled copies src to dst until EOF (then nil) or an error, using only
// Read and Write: into a small buffer until a read fills it, then into one
// of proxyBuffers. tap, if not nil, sees every chunk read before it is
// written.
func copyPooled(dst io.Writer, src io.Reader, tap func([]byte)) (int64, error) {
	small := smallProxyBuffers.Get().(*[]byte)
	defer smallProxyBuffers.Put(small)
	buf := *small
	var big *[]byte
	defer func() {
		if big != nil {
			proxyBuffers.Put(big)
		}
	}()
	var written int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if tap != nil {
				tap(buf[:n])
			}
			w, werr := dst.Write(buf[:n])
			written += int64(w)
			if werr != nil {
				return written, werr
			}
			if w != n {
				return written, io.ErrShortWrite
			}
			if n == len(buf) && big == nil {
				big = proxyBuffers.Get().(*[]byte)
				buf = *big
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

// proxy copies both ways, passing half-closes on, until both directions
// end; an error in either direction closes both. When the SSH connection
// broke (lost), the archive FTP connection is reset rather than half-closed,
// so the FTP server aborts a STOR instead of completing a truncated file.
// up and down, if not nil, see the bytes from the client and from the
// archive FTP before they are passed on.
func proxy(ch ssh.Channel, tc net.Conn, lost func() bool, up, down func([]byte)) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := copyPooled(tc, ch, up)
		if err == nil && lost() {
			err = ErrConnectionLost
		}
		if err != nil {
			if t, ok := tc.(*net.TCPConn); ok {
				t.SetLinger(0)
			}
			tc.Close()
			ch.Close()
			return
		}
		if cw, ok := tc.(closeWriter); ok {
			cw.CloseWrite()
		}
	}()
	_, err := copyPooled(ch, tc, down)
	if err != nil {
		// The client may have closed its end right after its last bytes
		// while the target still wrote (a TLS server sends its session
		// tickets when it first reads): what the upward copy already
		// received must still reach the target whole, so it gets a bounded
		// time to finish before the target is closed under it.
		finished := make(chan struct{})
		go func() { wg.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-time.After(upwardGrace):
		}
		tc.Close()
		ch.Close()
	} else {
		ch.CloseWrite()
	}
	wg.Wait()
	ch.Close()
	tc.Close()
}

// upwardGrace bounds how long a forward whose client stopped reading may
// still deliver the client's last bytes to the target.
const upwardGrace = 10 * time.Second

func (p *peer) addTarget(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.targets[c] = struct{}{}
	return true
}

func (p *peer) removeTarget(c net.Conn) {
	p.mu.Lock()
	delete(p.targets, c)
	p.mu.Unlock()
}

// closeTargets closes every archive FTP connection of p; p takes no new
// ones.
func (p *peer) closeTargets() {
	if p.farCancel != nil {
		p.farCancel()
	}
	p.mu.Lock()
	p.closed = true
	for c := range p.targets {
		c.Close()
	}
	p.mu.Unlock()
}
