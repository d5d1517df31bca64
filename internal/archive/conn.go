package archive

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jlaffaye/ftp"

	"backupsync/internal/watchdog"
)

// conn is one logged-in FTP connection of a Volume's pool. It is used by one
// goroutine at a time (it is checked out of the pool).
type conn struct {
	v    *Volume
	sc   *ftp.ServerConn
	ctrl *ioConn // control connection (below TLS when FTPS)

	mu      sync.Mutex
	data    []*ioConn     // data connections opened and not yet closed
	capture *bytes.Buffer // when set, bytes read on data connections are copied here
	capErr  error
	replies []byte // control replies of the login or listing in progress
	killed  bool

	// tap, over FTPS only, receives the control connection above TLS
	// (jlaffaye's debug output): what is read, what is written and the
	// listings' data, in order. A capture turns it on.
	tap atomic.Bool

	lastUsed time.Time
	stopVol  func() bool // unregisters the volume-close watcher
}

// errCaptureTooLarge is returned when one directory listing exceeds
// maxListingBytes.
var errCaptureTooLarge = errors.New("directory listing larger than 64 MiB")

const maxListingBytes = 64 << 20

// dial opens, logs in and changes to the volume root.
func (v *Volume) dial(ctx context.Context) (*conn, error) {
	c := &conn{v: v}
	ctx, cancel := context.WithTimeout(ctx, v.opt.ConnectTimeout)
	defer cancel()
	first := true
	var mu sync.Mutex
	dialFunc := func(network, addr string) (net.Conn, error) {
		mu.Lock()
		isControl := first
		first = false
		mu.Unlock()
		if !isControl {
			// Data connections always go to the endpoint's host: a
			// PASV reply cannot send us elsewhere, and through a tunnel
			// (where jlaffaye derives 0.0.0.0) the port is all we need.
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			addr = net.JoinHostPort(v.ep.Host, port)
		}
		// The control connection is bounded by the connect context; a
		// data connection by the connect timeout alone.
		base := ctx
		if !isControl {
			base = context.Background()
		}
		dctx, dcancel := context.WithTimeout(base, v.opt.ConnectTimeout)
		defer dcancel()
		var raw net.Conn
		var err error
		if v.opt.Dial != nil {
			raw, err = v.opt.Dial(dctx, network, addr)
		} else {
			// A data connection lives for one transfer, bounded by the
			// operation timeout: TCP keepalive would only cost four
			// setsockopt calls per file.
			d := net.Dialer{}
			if !isControl {
				d.KeepAlive = -1
			}
			raw, err = d.DialContext(dctx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		io := &ioConn{Conn: raw, timeout: v.opt.OpTimeout, addr: addr}
		c.mu.Lock()
		killed := c.killed
		if isControl {
			c.ctrl = io
		} else {
			io.owner = c
			c.data = append(c.data, io)
		}
		c.mu.Unlock()
		if killed {
			raw.Close()
			return nil, net.ErrClosed
		}
		if isControl {
			return io, nil
		}
		if v.ep.TLS {
			// Listings are captured above TLS, in plain text.
			io.owner = nil
			return &tlsData{Conn: tls.Client(io, v.tlsConfig()), owner: c, raw: io}, nil
		}
		return io, nil
	}
	opts := []ftp.DialOption{
		ftp.DialWithDialFunc(dialFunc),
		ftp.DialWithDisabledMLSD(v.noMLSD.Load()),
	}
	if v.ep.TLS {
		opts = append(opts, ftp.DialWithExplicitTLS(v.tlsConfig()), ftp.DialWithDebugOutput(replyTap{c}))
	}
	// The connect timeout covers dial, greeting, TLS, login and CWD: a
	// watchdog closes the control connection when it passes.
	stop := context.AfterFunc(ctx, func() { c.kill() })
	sc, err := ftp.Dial(v.ep.Addr(), opts...)
	if err == nil {
		c.sc = sc
		c.captureReplies()
		err = asLoginError(sc.Login(v.ep.User, v.ep.Password), v.ep.User)
		feat := c.stopCaptureReplies()
		if err == nil {
			v.featOnce.Do(func() { v.features = parseFEAT(feat) })
			err = asRootError(sc.ChangeDir(v.ep.Root))
		}
	}
	stop()
	if err != nil {
		c.kill()
		if ctx.Err() != nil && !isReply(err) {
			err = errors.Join(errors.New("connect timeout"), err)
		}
		return nil, err
	}
	c.lastUsed = time.Now()
	c.stopVol = context.AfterFunc(v.ctx, c.kill)
	return c, nil
}

// loginError is the server's refusal of a login: the user is named (never
// the password) so that the admin knows which URL's credentials to fix.
type loginError struct {
	user string
	err  error
}

func (e *loginError) Error() string {
	return fmt.Sprintf("login as %q refused (%s)", e.user, describe(e.err))
}
func (e *loginError) Unwrap() error        { return e.err }
func (e *loginError) Is(target error) bool { return target == ErrLoginRefused }

// asLoginError marks a login the server refused with a 530 or 532 reply; a
// network failure during login stays what it is.
func asLoginError(err error, user string) error {
	if c := replyCode(err); c == 530 || c == 532 {
		return &loginError{user: user, err: err}
	}
	return err
}

// rootError marks a failure to enter the volume root.
type rootError struct{ err error }

func (e *rootError) Error() string { return "cannot enter volume root: " + e.err.Error() }
func (e *rootError) Unwrap() error { return e.err }

// asRootError marks a server's refusal (not a network failure) to enter
// or list the volume root.
func asRootError(err error) error {
	if err != nil && isReply(err) && !isNetwork(err) && !serverFault(err) {
		return &rootError{err}
	}
	return err
}

// kill closes every network connection of c at once; any blocked call fails.
func (c *conn) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.killed = true
	if c.ctrl != nil {
		c.ctrl.Conn.Close()
	}
	for _, d := range c.data {
		d.Conn.Close()
	}
}

// close logs out politely (bounded by a short timeout) and closes c.
func (c *conn) close() {
	if c.stopVol != nil {
		c.stopVol()
	}
	if c.sc != nil && c.ctrl != nil {
		c.ctrl.setTimeout(2 * time.Second)
		_ = c.sc.Quit() // may report io.EOF when the server closed first
	}
	c.kill()
}

// watch makes ctx's cancellation kill c; call the returned func when the
// operation ends.
func (c *conn) watch(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, c.kill)
}

// captureDataOnly captures what data connections read (a listing).
func (c *conn) captureDataOnly() {
	c.mu.Lock()
	c.capture = new(bytes.Buffer)
	c.capErr = nil
	c.mu.Unlock()
}

// captureReplies starts keeping what the control connection reads (the
// replies of a login, for FEAT, or of a listing), the last maxReplyBytes;
// stopCaptureReplies returns it. Over FTPS they are taken above TLS from
// the tap, mixed with the commands (PASS left out) and a listing's data.
func (c *conn) captureReplies() {
	c.mu.Lock()
	c.replies = nil
	c.mu.Unlock()
	if c.v.ep.TLS {
		c.tap.Store(true)
		return
	}
	if c.ctrl != nil {
		c.ctrl.replyOwner.Store(c)
	}
}

func (c *conn) stopCaptureReplies() []byte {
	c.tap.Store(false)
	if c.ctrl != nil {
		c.ctrl.replyOwner.Store(nil)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.replies
	c.replies = nil // the caller owns b; the next capture starts afresh
	return b
}

// maxReplyBytes bounds the replies kept of one login or listing: the last
// maxReplyBytes to twice that, since the final reply is what counts (and
// over FTPS a listing's data passes through too).
const maxReplyBytes = 16 << 10

func (c *conn) recordReply(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.replies = append(c.replies, p...)
	if len(c.replies) > 2*maxReplyBytes {
		c.replies = c.replies[:copy(c.replies, c.replies[len(c.replies)-maxReplyBytes:])]
	}
}

// replyTap is jlaffaye's debug output of an FTPS control connection; it
// keeps what passes only while replies are captured, and never the PASS
// command (jlaffaye writes each command whole, in one Write).
type replyTap struct{ c *conn }

func (t replyTap) Write(p []byte) (int, error) {
	if t.c.tap.Load() && !bytes.HasPrefix(p, []byte("PASS ")) {
		t.c.recordReply(p)
	}
	return len(p), nil
}

func (c *conn) record(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.capture == nil {
		return
	}
	if c.capture.Len()+len(p) > maxListingBytes {
		c.capErr = errCaptureTooLarge
		return
	}
	c.capture.Write(p)
}

func (c *conn) dropData(d *ioConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.data {
		if x == d {
			c.data = append(c.data[:i], c.data[i+1:]...)
			return
		}
	}
}

// ioConn bounds every Read and Write by an inactivity timeout: with a
// deadline where the connection supports one, else with a watchdog that
// closes it (SSH channels have no deadlines). It also copies what it reads
// to its conn when asked: a data connection's bytes (a listing), a control
// connection's replies.
type ioConn struct {
	net.Conn
	timeout time.Duration
	addr    string // the address dialled
	owner   *conn  // data connections: the conn to record into
	// replyOwner: the control connection's conn while it keeps replies.
	replyOwner atomic.Pointer[conn]
	noDL       atomic.Bool
	watch      atomic.Pointer[watchdog.Watchdog] // once noDL
	closed     atomic.Bool
}

// RemoteAddr is always a *net.TCPAddr: jlaffaye assumes one, and a tunnel's
// connection may report something else.
func (c *ioConn) RemoteAddr() net.Addr {
	a := c.Conn.RemoteAddr()
	if _, ok := a.(*net.TCPAddr); ok {
		return a
	}
	host, port, _ := net.SplitHostPort(c.addr)
	n, _ := strconv.Atoi(port)
	ip := net.ParseIP(host)
	if ip == nil {
		ip = net.IPv4zero
	}
	return &net.TCPAddr{IP: ip, Port: n}
}

func (c *ioConn) setTimeout(d time.Duration) { c.timeout = d }

// guard bounds the operation about to start: it sets the deadline with
// set, or, where the connection has none, begins an operation on the
// watchdog it returns (nil otherwise), which the caller ends.
func (c *ioConn) guard(set func(time.Time) error) *watchdog.Watchdog {
	if c.timeout <= 0 {
		return nil
	}
	if !c.noDL.Load() {
		if err := set(time.Now().Add(c.timeout)); err == nil {
			return nil
		}
		c.noDL.Store(true)
	}
	w := c.watch.Load()
	if w == nil {
		w = watchdog.New(c.timeout, func() { c.Conn.Close() })
		if !c.watch.CompareAndSwap(nil, w) {
			w.Stop()
			w = c.watch.Load()
		}
	}
	w.Begin()
	return w
}

func (c *ioConn) fix(err error) error {
	if err != nil && c.watch.Load().Expired() {
		return os.ErrDeadlineExceeded
	}
	return err
}

func (c *ioConn) Read(p []byte) (int, error) {
	w := c.guard(c.Conn.SetReadDeadline)
	n, err := c.Conn.Read(p)
	w.End()
	if n > 0 {
		if c.owner != nil {
			c.owner.record(p[:n])
		} else if o := c.replyOwner.Load(); o != nil {
			o.recordReply(p[:n])
		}
	}
	return n, c.fix(err)
}

func (c *ioConn) Write(p []byte) (int, error) {
	w := c.guard(c.Conn.SetWriteDeadline)
	n, err := c.Conn.Write(p)
	w.End()
	return n, c.fix(err)
}

func (c *ioConn) Close() error {
	c.watch.Load().Stop()
	if c.owner != nil && !c.closed.Swap(true) {
		c.owner.dropData(c)
	}
	return c.Conn.Close()
}

// tlsData is a TLS data connection. It keeps Handshake visible to jlaffaye
// (which handshakes explicitly before an empty upload).
type tlsData struct {
	*tls.Conn
	owner *conn
	raw   *ioConn
}

func (t *tlsData) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if n > 0 {
		t.owner.record(p[:n])
	}
	return n, err
}

func (t *tlsData) Close() error {
	err := t.Conn.Close()
	t.owner.dropData(t.raw)
	return err
}

func (v *Volume) tlsConfig() *tls.Config {
	if v.opt.TLSConfig != nil {
		return v.opt.TLSConfig
	}
	return &tls.Config{ServerName: v.ep.Host, ClientSessionCache: v.tlsCache, MinVersion: tls.VersionTLS12}
}

// pool hands out connections, at most MaxConns at once.
type pool struct {
	sem  chan struct{}
	mu   sync.Mutex
	idle []*conn
}

// get returns a ready connection: an idle one (checked with NOOP when it has
// been idle for a while) or a new one.
func (v *Volume) get(ctx context.Context) (*conn, error) {
	c, _, err := v.getConn(ctx, false)
	return c, err
}

// getConn is get; fresh skips the idle connections, and reused reports
// whether c was taken from them.
func (v *Volume) getConn(ctx context.Context, fresh bool) (c *conn, reused bool, err error) {
	// Checked first: select picks at random among ready cases, and a free
	// slot must not let an operation dial after Close.
	if v.ctx.Err() != nil {
		return nil, false, errClosed
	}
	select {
	case v.pool.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	case <-v.ctx.Done():
		return nil, false, errClosed
	}
	for !fresh {
		v.pool.mu.Lock()
		var c *conn
		if n := len(v.pool.idle); n > 0 {
			c = v.pool.idle[n-1]
			v.pool.idle = v.pool.idle[:n-1]
		}
		v.pool.mu.Unlock()
		if c == nil {
			break
		}
		if time.Since(c.lastUsed) < staleCheckAfter {
			return c, true, nil
		}
		stop := c.watch(ctx)
		err := c.sc.NoOp()
		stop()
		if err == nil {
			return c, true, nil
		}
		c.close()
	}
	c, err = v.dial(ctx)
	if err != nil {
		<-v.pool.sem
		return nil, false, err
	}
	return c, false, nil
}

// staleCheckAfter is how long a connection may sit idle before get checks
// it with NOOP (servers close idle sessions).
const staleCheckAfter = 5 * time.Second

// put returns c to the pool, or closes it when broken or the volume is
// closed.
func (v *Volume) put(c *conn, broken bool) {
	defer func() { <-v.pool.sem }()
	if broken || v.ctx.Err() != nil {
		c.close()
		return
	}
	c.lastUsed = time.Now()
	v.pool.mu.Lock()
	v.pool.idle = append(v.pool.idle, c)
	v.pool.mu.Unlock()
}

// janitor closes connections idle for longer than IdleTimeout.
func (v *Volume) janitor() {
	defer v.wg.Done()
	t := time.NewTicker(v.opt.IdleTimeout / 2)
	defer t.Stop()
	for {
		select {
		case <-v.ctx.Done():
			return
		case <-t.C:
		}
		var old []*conn
		v.pool.mu.Lock()
		keep := v.pool.idle[:0]
		for _, c := range v.pool.idle {
			if time.Since(c.lastUsed) > v.opt.IdleTimeout {
				old = append(old, c)
			} else {
				keep = append(keep, c)
			}
		}
		v.pool.idle = keep
		v.pool.mu.Unlock()
		for _, c := range old {
			c.close()
		}
	}
}

// parseFEAT extracts the feature lines of a FEAT reply from the control
// connection's transcript of the login.
func parseFEAT(transcript []byte) []string {
	var feats []string
	in := false
	for _, line := range bytes.Split(transcript, []byte("\n")) {
		s := string(bytes.TrimRight(line, "\r"))
		switch {
		case len(s) >= 4 && s[:3] == "211" && s[3] == '-':
			in = true
		case in && len(s) >= 4 && s[:3] == "211" && s[3] == ' ':
			in = false
		case in && len(s) > 1 && s[0] == ' ':
			feats = append(feats, trimSpace(s))
		}
	}
	return feats
}

func trimSpace(s string) string { return string(bytes.TrimSpace([]byte(s))) }

// Addr returns "host:port".
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }
