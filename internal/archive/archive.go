// Package archive is one Exasol archive volume over FTP: it lists one
// database node's backup tree, reads files, publishes files safely
// (write to a temporary name, verify, rename), and deletes. It is the only
// package that knows FTP reply codes: callers see classified errors
// (IsTransient, ErrVolumeFull, ...) instead.
//
// A Volume probes its server once when opened (FEAT, and test commands on a
// scratch file in the volume root) and every later choice follows the
// probe: MLSD or LIST for listings, APPE or REST+STOR to resume a temporary
// file, rename or a journaled direct upload to publish.
//
// Temporary files are named TempName(path): the final name plus the suffix
// ".backupsync-part" in the same directory (not a leading dot: some servers
// hide dotfiles from LIST). Listings include them; IsTemp recognises them.
//
// Connections: a Volume keeps a pool of at most Options.MaxConns logged-in
// connections (a jlaffaye ServerConn carries one transfer at a time). Every
// network read and write is bounded by Options.OpTimeout of inactivity,
// connecting and logging in by Options.ConnectTimeout, and idle connections
// are closed after Options.IdleTimeout. A connection that failed below the
// FTP reply level is discarded, never reused.
//
// FTPS: Endpoint.TLS selects explicit TLS (AUTH TLS, PROT P) on the control
// and the data connections, also through an Options.Dial function (the
// Volume wraps data connections itself; jlaffaye alone would not with a dial
// function). Data connections always go to the endpoint's host, whatever
// host a PASV reply names.
package archive

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Endpoint says where an archive volume is served.
type Endpoint struct {
	Host     string
	Port     int
	User     string
	Password string
	TLS      bool   // explicit FTPS (ftps:// URLs)
	Root     string // absolute path of the volume after login, e.g. "/v0003"
}

// String renders the endpoint as a URL with the password masked:
// "ftp://user:***@host:port/v0003". It is safe for logs and errors.
func (e Endpoint) String() string {
	scheme := "ftp"
	if e.TLS {
		scheme = "ftps"
	}
	var b strings.Builder
	b.WriteString(scheme + "://")
	if e.User != "" {
		b.WriteString(url.PathEscape(e.User))
		if e.Password != "" {
			b.WriteString(":***")
		}
		b.WriteString("@")
	}
	b.WriteString(e.Addr())
	b.WriteString(e.Root)
	return b.String()
}

// ParseURL parses an archive volume URL "ftp://user:password@host[:port]/volume"
// (or ftps:// for explicit TLS) after any %s substitution. A URL without a
// port gets defaultPort. User and password may be percent-encoded; as in
// the legacy configuration they may also hold '@', '/' or ';' unencoded (the
// last '@' ends the user information). Errors never contain the password.
func ParseURL(raw string, defaultPort int) (Endpoint, error) {
	var ep Endpoint
	rest, ok := strings.CutPrefix(raw, "ftp://")
	if !ok {
		rest, ok = strings.CutPrefix(raw, "ftps://")
		ep.TLS = true
	}
	if !ok {
		return ep, errors.New("archive URL: scheme must be ftp:// or ftps://")
	}
	if strings.ContainsAny(raw, "\x00\r\n") {
		return ep, errors.New("archive URL: contains a control character")
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		info := rest[:at]
		rest = rest[at+1:]
		user, pass, _ := strings.Cut(info, ":")
		ep.User = unescape(user)
		ep.Password = unescape(pass)
	}
	hostport, p, _ := strings.Cut(rest, "/")
	ep.Root = path.Clean("/" + p)
	host, port := hostport, ""
	if h, pt, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, pt
	}
	if host == "" {
		return ep, errors.New("archive URL: no host")
	}
	ep.Host = host
	ep.Port = defaultPort
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n <= 0 || n > 65535 {
			return ep, fmt.Errorf("archive URL %s: bad port %q", maskedHost(ep), port)
		}
		ep.Port = n
	}
	if ep.Port <= 0 || ep.Port > 65535 {
		return ep, fmt.Errorf("archive URL %s: no port and no valid default port", maskedHost(ep))
	}
	if ep.User == "" {
		return ep, fmt.Errorf("archive URL %s: no user", maskedHost(ep))
	}
	return ep, nil
}

func maskedHost(ep Endpoint) string {
	if ep.Port == 0 {
		return ep.Host
	}
	return ep.Addr()
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// DialFunc opens a network connection to addr ("host:port"); the SSH tunnel
// supplies one. It must honour ctx. A Volume calls it for control
// connections with Endpoint.Addr() and for data connections with the
// endpoint's host and the port of the server's PASV/EPSV reply. Connections
// without deadline support (SSH channels) are guarded by watchdog timers.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Journal is told about direct uploads to a final name (used only where the
// server cannot rename): Begin before the upload starts, End once the file is
// verified complete or has been removed. A path begun and never ended may
// be partial and must be repaired (removed or finished) after a crash.
type Journal interface {
	Begin(path string) error
	End(path string) error
}

// Options tune a Volume. Zero values take the defaults noted.
type Options struct {
	Dial     DialFunc // nil: plain TCP
	MaxConns int      // connections at once (default 4)
	// ListConns bounds the directories ListNode lists at once (default 2,
	// at most MaxConns): each connection is a login, which costs the server
	// more than a listing.
	ListConns      int
	ConnectTimeout time.Duration // dial + greeting + login + CWD (default 15s)
	OpTimeout      time.Duration // longest wait for any network read or write (default 60s)
	IdleTimeout    time.Duration // idle pooled connections are closed after this (default 30s)
	TLSConfig      *tls.Config   // FTPS; nil verifies the server against Endpoint.Host
	Journal        Journal       // direct uploads where rename is missing; may be nil
	// ReadOnly opens a source: the probe writes no scratch file (a backup
	// tool must not write into the volume it backs up), and Publish,
	// Delete and RemoveDir refuse.
	ReadOnly bool
	// Known, when set, is what an earlier probe of this endpoint found: Open
	// then only checks that the volume root lists, and writes nothing.
	Known *Capabilities
}

// ErrReadOnly is a write to a volume opened with Options.ReadOnly.
var ErrReadOnly = errors.New("volume opened read-only")

func (o *Options) defaults() {
	if o.MaxConns <= 0 {
		o.MaxConns = 4
	}
	if o.ListConns <= 0 {
		o.ListConns = defaultListConns
	}
	o.ListConns = min(o.ListConns, o.MaxConns)
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 15 * time.Second
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 60 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 30 * time.Second
	}
}

// AppendMethod is how the server extends a partial temporary file.
type AppendMethod int

const (
	AppendNone     AppendMethod = iota // no working append: restart uploads
	AppendAPPE                         // APPE appends correctly
	AppendRestStor                     // REST <size> + STOR writes at the end correctly
)

// String names the method: "none", "APPE" or "REST+STOR".
func (m AppendMethod) String() string {
	return [...]string{"none", "APPE", "REST+STOR"}[m]
}

// Capabilities is what the probe found on the server.
type Capabilities struct {
	Features       []string     // FEAT lines (informational)
	MLSD           bool         // listings use MLSD: exact modification times
	Size           bool         // SIZE reports file sizes
	MDTM           bool         // MDTM advertised
	MFMT           bool         // MFMT advertised
	Rest           bool         // RETR from an offset (REST STREAM) works
	Writable       bool         // a scratch file could be stored in the volume root
	Append         AppendMethod // how a temporary file is resumed
	Rename         bool         // RNFR/RNTO works
	RenameReplaces bool         // RNTO onto an existing file replaces it
}

// CanResume reports whether Publish can continue a temporary file.
func (c Capabilities) CanResume() bool { return c.Rename && c.Append != AppendNone }

// String summarises the capabilities on one line, for logs.
func (c Capabilities) String() string {
	return fmt.Sprintf("mlsd=%v size=%v mdtm=%v mfmt=%v rest=%v writable=%v append=%v rename=%v rename-replaces=%v",
		c.MLSD, c.Size, c.MDTM, c.MFMT, c.Rest, c.Writable, c.Append, c.Rename, c.RenameReplaces)
}

// Volume is an open archive volume. Its methods are safe for concurrent use.
type Volume struct {
	ep       Endpoint
	opt      Options
	caps     Capabilities
	tlsCache tls.ClientSessionCache

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	pool   pool
	noMLSD atomic.Bool

	featOnce sync.Once
	features []string

	dirMu sync.Mutex
	dirs  map[string]bool // directories known to exist (volume-relative)
}

var errClosed = errors.New("volume closed")

// Open connects to the endpoint, logs in, enters the volume root and probes
// the server once. It fails when the volume root cannot be entered.
func Open(ctx context.Context, ep Endpoint, opt Options) (*Volume, error) {
	opt.defaults()
	if ep.Root == "" {
		ep.Root = "/"
	}
	ep.Root = path.Clean("/" + ep.Root)
	if strings.ContainsAny(ep.Root, "\x00\r\n") {
		return nil, &Error{Op: "open", Endpoint: ep.String(), Err: errors.New("bad volume root")}
	}
	v := &Volume{ep: ep, opt: opt, dirs: map[string]bool{}, tlsCache: tls.NewLRUClientSessionCache(16)}
	v.ctx, v.cancel = context.WithCancel(context.Background())
	v.pool.sem = make(chan struct{}, opt.MaxConns)
	c, err := v.get(ctx)
	if err != nil {
		v.cancel()
		return nil, v.wrap("open", "", err)
	}
	var caps Capabilities
	if opt.Known != nil {
		caps, err = v.recheck(ctx, c, *opt.Known)
	} else {
		caps, err = v.probe(ctx, c)
	}
	if err != nil {
		v.put(c, true)
		v.cancel()
		return nil, v.wrap("probe", "", err)
	}
	v.caps = caps
	if !caps.MLSD && c.sc.IsTimePreciseInList() {
		// Advertised but broken: later connections list with LIST.
		v.noMLSD.Store(true)
		v.put(c, true)
	} else {
		v.put(c, false)
	}
	v.wg.Add(1)
	go v.janitor()
	return v, nil
}

// Endpoint returns the volume's endpoint (String masks the password).
func (v *Volume) Endpoint() Endpoint { return v.ep }

// String is the endpoint with the password masked.
func (v *Volume) String() string { return v.ep.String() }

// Capabilities returns what the probe found.
func (v *Volume) Capabilities() Capabilities { return v.caps }

// Close cuts every connection (operations in progress fail), logs out of
// the idle ones and waits for the volume's goroutines. It is idempotent and
// always returns nil.
func (v *Volume) Close() error {
	v.cancel()
	v.wg.Wait()
	v.pool.mu.Lock()
	idle := v.pool.idle
	v.pool.idle = nil
	v.pool.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
	return nil
}

// abs maps a volume-relative path to the server path.
func (v *Volume) abs(rel string) string {
	if rel == "" || rel == "." {
		return v.ep.Root
	}
	return path.Join(v.ep.Root, rel)
}

// withConn runs f on a pooled connection, killing it if ctx ends, and
// returns it to the pool (or discards it when f broke it). When f fails on
// a reused connection with a network error (the server may have dropped the
// idle session) and retry (if not nil) says f may run again, it runs once
// more on a fresh connection.
func (v *Volume) withConn(ctx context.Context, f func(c *conn) error, retry func() bool) error {
	fresh := false
	for {
		c, reused, err := v.getConn(ctx, fresh)
		if err != nil {
			return err
		}
		stop := c.watch(ctx)
		err = f(c)
		stopped := stop()
		broken := !stopped || !connUsable(err)
		v.put(c, broken)
		if ctx.Err() != nil && err != nil {
			return errors.Join(ctx.Err(), err)
		}
		if err != nil && broken && reused && retry != nil && retry() && !fresh && isNetwork(err) {
			fresh = true
			continue
		}
		return err
	}
}

// always is a retry predicate for idempotent operations.
func always() bool { return true }

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
