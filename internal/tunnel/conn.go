package tunnel

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"backupsync/internal/watchdog"
)

// ErrIdle is wrapped by the error of a Read or Write on a tunnelled
// connection that the idle watchdog closed.
var ErrIdle = errors.New("tunnel: no bytes moved within the idle timeout")

// ErrConnectionLost is wrapped by the error of a Read on a tunnelled
// connection whose SSH connection broke: x/crypto/ssh reports that as a
// plain io.EOF on every channel, which would make a truncated transfer look
// complete.
var ErrConnectionLost = errors.New("tunnel: SSH connection lost")

// ErrDeadlineUnsupported is returned by SetDeadline, SetReadDeadline and
// SetWriteDeadline on a tunnelled connection for any non-zero time: SSH
// channels have no deadlines. Use the idle watchdog (ClientConfig.IdleTimeout)
// instead; with jlaffaye/ftp this means: do not use DialWithShutTimeout.
var ErrDeadlineUnsupported = errors.New("tunnel: deadlines are not supported on SSH channels; the idle watchdog bounds stalls")

// writeChunk bounds one write to the channel so the watchdog sees progress
// during a large Write.
const writeChunk = 64 << 10

// closeGrace is how long a Read or Write may stay blocked after Close before
// the whole SSH connection is closed under it: a peer whose SSH layer does
// not answer a channel close within it is frozen.
const closeGrace = 5 * time.Second

// closeWriter is the half-close of an SSH channel.
type closeWriter interface{ CloseWrite() error }

// chanConn is a net.Conn over one direct-tcpip channel. It reports the real
// target as RemoteAddr (always a *net.TCPAddr, as jlaffaye/ftp requires),
// treats io.EOF from Close as success, and closes itself when a Read or
// Write has been waiting for idle without a byte moving.
//
// Read and Write call the channel directly. Closing an x/crypto/ssh channel
// does not wake a Read or Write blocked on it by itself: the peer's answer
// to the close does (its SSH layer answers at once, whatever the forwarded
// connection behind it is doing), or the end of the SSH connection, which
// keepalives bound when the peer is frozen. A Read or Write that returns
// after Close reports the close (or the watchdog, or the lost connection),
// never a clean io.EOF, so a cut transfer cannot look complete. Where the
// peer does not answer within closeGrace (frozen, with keepalives off),
// hooks.kill ends the SSH connection, which wakes them too.
type chanConn struct {
	ch    net.Conn // the channel, as returned by ssh.Client.Dial
	raddr *net.TCPAddr
	idle  time.Duration

	pending atomic.Int32 // Reads and Writes in progress
	watch   *watchdog.Watchdog
	closed  atomic.Bool

	wsem chan struct{} // one Write (or CloseWrite) at a time
	connHooks
}

// connHooks tie a chanConn to its SSH connection; each may be nil.
type connHooks struct {
	lost    func() bool     // reports whether the SSH transport failed
	onClose func(*chanConn) // unregisters from the owning SSH connection
	onIdle  func(*chanConn) // logs the watchdog's action
	kill    func()          // ends the SSH connection whose peer froze
}

var _ net.Conn = (*chanConn)(nil)

func newChanConn(c net.Conn, raddr *net.TCPAddr, idle time.Duration, h connHooks) *chanConn {
	cc := &chanConn{ch: c, raddr: raddr, idle: idle, connHooks: h, wsem: make(chan struct{}, 1)}
	cc.watch = watchdog.New(idle, cc.expire)
	return cc
}

// expire is the watchdog's action: an operation waited idle without
// progress.
func (c *chanConn) expire() {
	if c.closed.Load() {
		return
	}
	if c.onIdle != nil {
		c.onIdle(c)
	}
	c.Close()
}

func (c *chanConn) begin()    { c.pending.Add(1); c.watch.Begin() }
func (c *chanConn) end()      { c.watch.End(); c.pending.Add(-1) }
func (c *chanConn) progress() { c.watch.Progress() }

// closedErr is the error of an operation cut short by Close or the
// watchdog.
func (c *chanConn) closedErr(op string) error {
	if c.watch.Expired() {
		return &net.OpError{Op: op, Net: "tcp", Addr: c.raddr, Err: fmt.Errorf("%w (%v)", ErrIdle, c.idle)}
	}
	if c.lost != nil && c.lost() {
		return &net.OpError{Op: op, Net: "tcp", Addr: c.raddr, Err: ErrConnectionLost}
	}
	return &net.OpError{Op: op, Net: "tcp", Addr: c.raddr, Err: net.ErrClosed}
}

// Read reads from the channel; io.EOF means the far side ended the stream.
// An error wrapping ErrConnectionLost means the SSH connection broke, one
// wrapping ErrIdle that the watchdog closed the connection.
func (c *chanConn) Read(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, c.closedErr("read")
	}
	c.begin()
	n, err := c.ch.Read(p)
	c.end()
	if err == nil {
		return n, nil
	}
	// x/crypto/ssh ends every channel with io.EOF: after our own Close, a
	// lost connection or the peer's proper end of stream alike.
	if c.closed.Load() || c.lost != nil && c.lost() {
		return n, c.closedErr("read")
	}
	return n, err
}

// Write writes p in chunks, so that the watchdog sees progress during a
// large Write.
func (c *chanConn) Write(p []byte) (int, error) {
	select {
	case c.wsem <- struct{}{}:
	default:
		if c.closed.Load() {
			return 0, c.closedErr("write")
		}
		c.wsem <- struct{}{} // another Write: wait for it
	}
	defer func() { <-c.wsem }()
	if c.closed.Load() {
		return 0, c.closedErr("write")
	}
	c.begin()
	defer c.end()
	total := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), writeChunk)]
		n, err := c.ch.Write(chunk)
		total += n
		c.progress()
		if err != nil {
			if err == io.EOF || c.closed.Load() { // the channel is closed
				return total, c.closedErrOr("write", io.ErrClosedPipe)
			}
			return total, err
		}
		p = p[n:]
	}
	return total, nil
}

// closedErrOr is closedErr, except that a channel the peer closed while
// nothing on our side did reports err.
func (c *chanConn) closedErrOr(op string, err error) error {
	if c.closed.Load() || c.lost != nil && c.lost() {
		return c.closedErr(op)
	}
	return &net.OpError{Op: op, Net: "tcp", Addr: c.raddr, Err: err}
}

// CloseWrite sends EOF to the far side; reading goes on. It waits for a
// Write in progress.
func (c *chanConn) CloseWrite() error {
	c.wsem <- struct{}{}
	defer func() { <-c.wsem }()
	if c.closed.Load() {
		return c.closedErr("close")
	}
	if cw, ok := c.ch.(closeWriter); ok {
		if err := cw.CloseWrite(); err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

// Close sends EOF and closes the channel; a Read or Write in progress
// returns once the peer answers (see chanConn). It always returns nil:
// io.EOF (the far side closed first) is success, a second Close is a
// no-op, and after the SSH connection died there is nothing left to close.
func (c *chanConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	// From here on the watchdog cannot expire: Expired means an operation
	// waited idle, not that we closed.
	c.watch.Stop()
	// EOF first, so the far side sees a proper end of stream; skipped when
	// there is no point (idle, connection lost) or a Write is in progress.
	if !c.watch.Expired() && (c.lost == nil || !c.lost()) {
		select {
		case c.wsem <- struct{}{}:
			if cw, ok := c.ch.(closeWriter); ok {
				_ = cw.CloseWrite()
			}
			<-c.wsem
		default:
		}
	}
	_ = c.ch.Close()
	if c.onClose != nil {
		c.onClose(c)
	}
	if c.kill != nil && c.pending.Load() > 0 {
		time.AfterFunc(closeGrace, func() {
			if c.pending.Load() > 0 {
				c.kill()
			}
		})
	}
	return nil
}

// LocalAddr returns the channel's (zero) local address.
func (c *chanConn) LocalAddr() net.Addr { return c.ch.LocalAddr() }

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
