package linkemu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

const (
	// chunk is the most one read takes from a source: the unit of pacing
	// (half a millisecond at 1 Gbit/s).
	chunk = 64 << 10
	// burstTime is how much of the link's time the default Burst holds.
	burstTime = 4 * time.Millisecond
	// minBurst is the smallest token bucket: one Ethernet frame.
	minBurst = 1500
	// queueSlack is what the default Queue adds to the bytes on the wire at
	// full rate: room for a receiver that reads a little late.
	queueSlack = 4 << 20
	// queueUnlimited is the default Queue when Rate is unlimited.
	queueUnlimited = 16 << 20
	// defaultDialTimeout bounds each dial of a target.
	defaultDialTimeout = 5 * time.Second
)

// Config describes one emulated link. The zero value relays at once, at any
// rate.
type Config struct {
	// RTT is the round-trip time: every byte is delivered RTT/2 after it
	// entered the link, in each direction.
	RTT time.Duration
	// Rate is each direction's rate in bytes per second, shared by every
	// connection of the Link; 0 is unlimited. ParseRate reads "1gbit".
	Rate int64
	// Burst is the depth in bytes of each direction's token bucket: how far
	// an idle direction may send ahead of Rate. Over any stretch of time T a
	// direction delivers at most Burst + Rate × T bytes. 0 means what the
	// link carries in 4 ms, at least 64 KiB: the bucket must absorb the
	// relay's own scheduling delays, or a reader that wakes late would lose
	// the link's time (one stream then carried 78% of 1 Gbit/s on a busy
	// 2-core box, with a bucket of 64 KiB). At least 1500.
	Burst int
	// Queue bounds what one connection's direction holds read and not yet
	// delivered (see the package doc). 0 means Rate × RTT/2 + 4 MiB, or
	// 16 MiB when Rate is 0; at least 64 KiB.
	Queue int
	// DialTimeout bounds each dial of a target; 0 means 5 s.
	DialTimeout time.Duration
	// Logger receives failed dials and accepts (Warn) and how each relayed
	// connection ended (Debug); nil discards them.
	Logger *slog.Logger
}

// Stats counts what a Link did; Link.Stats returns a snapshot.
type Stats struct {
	Accepted   int64 // connections accepted
	Active     int64 // relayed connections open now (dialled, not yet ended)
	DialErrors int64 // accepted connections closed because the target could not be dialled
	// Up and Down are the bytes delivered client → target and target →
	// client.
	Up, Down int64
	// QueuedUp and QueuedDown are the bytes read and not yet delivered now,
	// summed over the connections.
	QueuedUp, QueuedDown int64
}

// Link is one emulated link: its Listen addresses share its two token
// buckets. Its methods are safe for concurrent use.
type Link struct {
	cfg      Config
	oneWay   time.Duration
	burst    int
	chunk    int
	log      *slog.Logger
	up, down *rate.Limiter

	ctx    context.Context // cancelled by Close: ends every relay and dial
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners []net.Listener
	wg        sync.WaitGroup // accept loops and relays

	accepted, active, dialErrors atomic.Int64
	delivered, queued            [2]atomic.Int64 // indexed by dirUp, dirDown
}

const (
	dirUp   = 0 // client → target
	dirDown = 1 // target → client
)

// New returns a Link with cfg, listening nowhere yet: see Listen.
func New(cfg Config) (*Link, error) {
	if cfg.RTT < 0 {
		return nil, fmt.Errorf("linkemu: RTT %v is negative", cfg.RTT)
	}
	if cfg.Rate < 0 {
		return nil, fmt.Errorf("linkemu: rate %d B/s is negative (0 means unlimited)", cfg.Rate)
	}
	if cfg.Burst == 0 {
		cfg.Burst = max(chunk, int(cfg.Rate*int64(burstTime)/int64(time.Second)))
	}
	if cfg.Burst < minBurst {
		return nil, fmt.Errorf("linkemu: burst %d bytes is below one packet (%d)", cfg.Burst, minBurst)
	}
	if cfg.Queue < 0 {
		return nil, fmt.Errorf("linkemu: queue %d bytes is negative (0 means the default)", cfg.Queue)
	}
	oneWay := cfg.RTT / 2
	if cfg.Queue == 0 {
		if cfg.Rate == 0 {
			cfg.Queue = queueUnlimited
		} else {
			cfg.Queue = int(float64(cfg.Rate)*oneWay.Seconds()) + queueSlack
		}
	}
	cfg.Queue = max(cfg.Queue, chunk)
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	l := &Link{cfg: cfg, oneWay: oneWay, burst: cfg.Burst, chunk: min(chunk, cfg.Burst), log: cfg.Logger}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	lim := rate.Inf
	if cfg.Rate > 0 {
		lim = rate.Limit(cfg.Rate)
	}
	l.up = rate.NewLimiter(lim, cfg.Burst)
	l.down = rate.NewLimiter(lim, cfg.Burst)
	l.ctx, l.cancel = context.WithCancel(context.Background())
	return l, nil
}

// Start is New and Listen for tests: it listens on listenHost (a loopback
// IP) at a port the kernel picks, forwards to target, fails t on error and
// closes the Link when t ends. It returns the Link and the address clients
// dial instead of target.
func Start(t testing.TB, cfg Config, listenHost, target string) (*Link, string) {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	addr, err := l.Listen(net.JoinHostPort(listenHost, "0"), target)
	if err != nil {
		t.Fatal(err)
	}
	return l, addr
}

// Config returns the Link's configuration with its defaults filled in.
func (l *Link) Config() Config { return l.cfg }

// Listen accepts connections on listenAddr ("127.0.0.x:port"; port 0 lets
// the kernel pick) and relays each through the link to target
// ("127.0.0.y:port"). Both must be loopback IP literals. It returns the
// address it listens on.
func (l *Link) Listen(listenAddr, target string) (string, error) {
	if err := checkLoopback(listenAddr); err != nil {
		return "", fmt.Errorf("linkemu: listen address: %w", err)
	}
	if err := checkLoopback(target); err != nil {
		return "", fmt.Errorf("linkemu: target: %w", err)
	}
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return "", fmt.Errorf("linkemu: listen on %s: %w", listenAddr, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		ln.Close()
		return "", errors.New("linkemu: listen on a closed link")
	}
	l.listeners = append(l.listeners, ln)
	l.wg.Add(1)
	go l.acceptLoop(ln, target)
	return ln.Addr().String(), nil
}

// Close stops accepting, closes every relayed connection, and returns once
// every goroutine of the Link has ended. Closing twice is harmless.
func (l *Link) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.wg.Wait()
		return nil
	}
	l.closed = true
	l.cancel()
	var errs []error
	for _, ln := range l.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("linkemu: close listener %s: %w", ln.Addr(), err))
		}
	}
	l.mu.Unlock()
	l.wg.Wait()
	return errors.Join(errs...)
}

// Stats returns what the Link has done so far.
func (l *Link) Stats() Stats {
	return Stats{
		Accepted:   l.accepted.Load(),
		Active:     l.active.Load(),
		DialErrors: l.dialErrors.Load(),
		Up:         l.delivered[dirUp].Load(),
		Down:       l.delivered[dirDown].Load(),
		QueuedUp:   l.queued[dirUp].Load(),
		QueuedDown: l.queued[dirDown].Load(),
	}
}

func (l *Link) acceptLoop(ln net.Listener, target string) {
	defer l.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.ctx.Err() != nil {
				return
			}
			// Out of descriptors and the like: wait, as net/http does.
			l.log.Warn("linkemu: accept failed, retrying", "listen", ln.Addr().String(), "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-l.ctx.Done():
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		l.accepted.Add(1)
		l.wg.Add(1)
		go l.relay(c.(*net.TCPConn), target)
	}
}

// dial connects to target, which Listen checked, within DialTimeout or
// until Close; its Control refuses any address that is not loopback.
func (l *Link) dial(target string) (*net.TCPConn, error) {
	d := net.Dialer{
		Timeout: l.cfg.DialTimeout,
		Control: func(network, address string, _ syscall.RawConn) error {
			return checkLoopback(address)
		},
	}
	c, err := d.DialContext(l.ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// checkLoopback accepts "host:port" where host is a loopback IP literal.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w (want a loopback IP and a port, like 127.0.0.1:2022)", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return fmt.Errorf("%q: %q is not an IP address (name a loopback IP like 127.0.0.1 or ::1)", addr, host)
	}
	if !ip.IsLoopback() {
		return fmt.Errorf("%q: %s is not a loopback address: the link emulator only relays between loopback addresses (127.0.0.0/8, ::1)", addr, host)
	}
	return nil
}
