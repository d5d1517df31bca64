package tunnel

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ErrIdle is wrapped by the error of a Read or Write on a tunnelled
// connection that the idle watchdog closed.
var ErrIdle = errors.New("tunnel: no bytes moved within the idle timeout")

// ErrDeadlineUnsupported is returned by SetDeadline, SetReadDeadline and
// SetWriteDeadline on a tunnelled connection for any non-zero time: SSH
// channels have no deadlines. Use the idle watchdog (ClientConfig.IdleTimeout)
// instead; with jlaffaye/ftp this means: do not use DialWithShutTimeout.
var ErrDeadlineUnsupported = errors.New("tunnel: deadlines are not supported on SSH channels; the idle watchdog bounds stalls")

// writeChunk bounds one write to the channel so the watchdog sees progress
// during a large Write.
const writeChunk = 64 << 10

// closeWriter is the half-close of an SSH channel.
type closeWriter interface{ CloseWrite() error }

// chanConn is a net.Conn over one direct-tcpip channel. It reports the real
// target as RemoteAddr (always a *net.TCPAddr, as jlaffaye/ftp requires),
// treats io.EOF from Close as success, and closes itself when a Read or
// Write has been waiting for idle without a byte moving.
type chanConn struct {
	net.Conn // the channel, as returned by ssh.Client.Dial
	raddr    *net.TCPAddr
	idle     time.Duration

	pending atomic.Int32 // Reads and Writes in progress
	last    atomic.Int64 // UnixNano of the last progress or operation start
	idled   atomic.Bool
	closed  atomic.Bool

	mu      sync.Mutex
	timer   *time.Timer
	onClose func(*chanConn) // unregisters from the owning SSH connection
	onIdle  func(*chanConn) // logs the watchdog's action
}

func newChanConn(c net.Conn, raddr *net.TCPAddr, idle time.Duration, onClose, onIdle func(*chanConn)) *chanConn {
	cc := &chanConn{Conn: c, raddr: raddr, idle: idle, onClose: onClose, onIdle: onIdle}
	cc.last.Store(time.Now().UnixNano())
	if idle > 0 {
		cc.mu.Lock()
		cc.timer = time.AfterFunc(idle, cc.check)
		cc.mu.Unlock()
	}
	return cc
}

// check is the watchdog: it runs on the timer, closes the channel when an
// operation has waited idle without progress, and re-arms itself otherwise.
func (c *chanConn) check() {
	if c.closed.Load() {
		return
	}
	since := time.Since(time.Unix(0, c.last.Load()))
	if c.pending.Load() > 0 && since >= c.idle {
		c.idled.Store(true)
		if c.onIdle != nil {
			c.onIdle(c)
		}
		c.Close()
		return
	}
	next := c.idle
	if c.pending.Load() > 0 {
		next = c.idle - since
	}
	c.mu.Lock()
	if c.timer != nil && !c.closed.Load() {
		c.timer.Reset(next)
	}
	c.mu.Unlock()
}

func (c *chanConn) begin() { c.pending.Add(1); c.last.Store(time.Now().UnixNano()) }
func (c *chanConn) end()   { c.last.Store(time.Now().UnixNano()); c.pending.Add(-1) }

func (c *chanConn) opErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if c.idled.Load() {
		return &net.OpError{Op: op, Net: "tcp", Addr: c.raddr, Err: fmt.Errorf("%w (%v)", ErrIdle, c.idle)}
	}
	return err
}

// Read reads from the channel; io.EOF means the far side closed.
func (c *chanConn) Read(p []byte) (int, error) {
	c.begin()
	n, err := c.Conn.Read(p)
	c.end()
	if err == io.EOF && c.idled.Load() {
		err = c.opErr("read", errors.New("closed"))
	}
	return n, c.opErr("read", err)
}

// Write writes p in chunks so the watchdog sees progress.
func (c *chanConn) Write(p []byte) (int, error) {
	c.begin()
	defer c.end()
	total := 0
	for len(p) > 0 {
		chunk := p
		if len(chunk) > writeChunk {
			chunk = chunk[:writeChunk]
		}
		n, err := c.Conn.Write(chunk)
		total += n
		c.last.Store(time.Now().UnixNano())
		if err != nil {
			if c.idled.Load() {
				return total, c.opErr("write", err)
			}
			return total, err
		}
		p = p[n:]
	}
	return total, nil
}

// CloseWrite sends EOF to the far side; reading goes on.
func (c *chanConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		if err := cw.CloseWrite(); err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

// Close sends EOF and closes the channel. It always returns nil: io.EOF
// (the far side closed first) is success, a second Close is a no-op, and
// after the SSH connection died there is nothing left to close.
func (c *chanConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	if cw, ok := c.Conn.(closeWriter); ok && !c.idled.Load() {
		_ = cw.CloseWrite()
	}
	_ = c.Conn.Close()
	if c.onClose != nil {
		c.onClose(c)
	}
	return nil
}

// RemoteAddr returns the FTP target the channel leads to. Its IP is the
// unspecified address when the target was given as a host name.
func (c *chanConn) RemoteAddr() net.Addr { return c.raddr }

// SetDeadline accepts only the zero time (no deadline); see
// ErrDeadlineUnsupported.
func (c *chanConn) SetDeadline(t time.Time) error { return deadline(t) }

// SetReadDeadline: see SetDeadline.
func (c *chanConn) SetReadDeadline(t time.Time) error { return deadline(t) }

// SetWriteDeadline: see SetDeadline.
func (c *chanConn) SetWriteDeadline(t time.Time) error { return deadline(t) }

func deadline(t time.Time) error {
	if t.IsZero() {
		return nil
	}
	return ErrDeadlineUnsupported
}
