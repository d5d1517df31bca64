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

// closeWriter is the half-close of an SSH channel.
type closeWriter interface{ CloseWrite() error }

// chanConn is a net.Conn over one direct-tcpip channel. It reports the real
// target as RemoteAddr (always a *net.TCPAddr, as jlaffaye/ftp requires),
// treats io.EOF from Close as success, and closes itself when a Read or
// Write has been waiting for idle without a byte moving.
//
// Closing an x/crypto/ssh channel does not wake a Read or Write blocked on
// it (only the peer's answer or the death of the SSH connection does), so
// the blocking calls run in two pump goroutines, started on first use; Read
// and Write wait for them or for Close, whichever comes first. A pump stuck
// on a channel ends when the peer answers the close or the SSH connection
// ends (keepalives bound that).
type chanConn struct {
	ch    net.Conn // the channel, as returned by ssh.Client.Dial
	raddr *net.TCPAddr
	idle  time.Duration

	pending atomic.Int32 // Reads and Writes in progress
	last    atomic.Int64 // UnixNano of the last progress or operation start
	idled   atomic.Bool
	closed  atomic.Bool

	mu    sync.Mutex
	timer *time.Timer
	abort chan struct{} // closed by Close
	pr    *io.PipeReader

	wsem    chan struct{} // one Write (or CloseWrite) at a time
	wreq    chan []byte   // nil until the write pump runs
	wres    chan writeResult
	wbuf    []byte
	onClose func(*chanConn) // unregisters from the owning SSH connection
	onIdle  func(*chanConn) // logs the watchdog's action
	lost    func() bool     // reports whether the SSH transport failed
}

type writeResult struct {
	n   int
	err error
}

var _ net.Conn = (*chanConn)(nil)

func newChanConn(c net.Conn, raddr *net.TCPAddr, idle time.Duration, lost func() bool, onClose, onIdle func(*chanConn)) *chanConn {
	cc := &chanConn{ch: c, raddr: raddr, idle: idle, lost: lost, onClose: onClose, onIdle: onIdle,
		abort: make(chan struct{}), wsem: make(chan struct{}, 1)}
	cc.last.Store(time.Now().UnixNano())
	if idle > 0 {
		cc.mu.Lock()
		cc.timer = time.AfterFunc(idle, cc.check)
		cc.mu.Unlock()
	}
	return cc
}

// check is the watchdog: it runs on the timer, closes the connection when
// an operation has waited idle without progress, and re-arms itself
// otherwise.
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

func (c *chanConn) begin()    { c.pending.Add(1); c.last.Store(time.Now().UnixNano()) }
func (c *chanConn) end()      { c.last.Store(time.Now().UnixNano()); c.pending.Add(-1) }
func (c *chanConn) progress() { c.last.Store(time.Now().UnixNano()) }

// closedErr is the error of an operation cut short by Close or the
// watchdog.
func (c *chanConn) closedErr(op string) error {
	if c.idled.Load() {
		return &net.OpError{Op: op, Net: "tcp", Addr: c.raddr, Err: fmt.Errorf("%w (%v)", ErrIdle, c.idle)}
	}
	if c.lost != nil && c.lost() {
		return &net.OpError{Op: op, Net: "tcp", Addr: c.raddr, Err: ErrConnectionLost}
	}
	return &net.OpError{Op: op, Net: "tcp", Addr: c.raddr, Err: net.ErrClosed}
}

// reader returns the read end of the read pump, starting it on first use.
func (c *chanConn) reader() *io.PipeReader {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pr == nil {
		pr, pw := io.Pipe()
		c.pr = pr
		if c.closed.Load() {
			pr.CloseWithError(c.closedErr("read"))
		} else {
			go c.readPump(pw)
		}
	}
	return c.pr
}

// pumpBuffers recycles the read pumps' buffers (a pump per data
// connection, that is per file).
var pumpBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (c *chanConn) readPump(pw *io.PipeWriter) {
	bp := pumpBuffers.Get().(*[]byte)
	defer pumpBuffers.Put(bp)
	buf := *bp
	for {
		n, err := c.ch.Read(buf)
		if n > 0 {
			if _, werr := pw.Write(buf[:n]); werr != nil {
				return // the reading side was closed
			}
		}
		if err != nil {
			if err == io.EOF && c.lost != nil && c.lost() {
				err = &net.OpError{Op: "read", Net: "tcp", Addr: c.raddr, Err: ErrConnectionLost}
			}
			pw.CloseWithError(err)
			return
		}
	}
}

// Read reads from the channel; io.EOF means the far side ended the stream.
// An error wrapping ErrConnectionLost means the SSH connection broke.
func (c *chanConn) Read(p []byte) (int, error) {
	pr := c.reader()
	c.begin()
	n, err := pr.Read(p)
	c.end()
	if err == io.ErrClosedPipe {
		err = c.closedErr("read") // Close or the watchdog closed it
	}
	return n, err
}

// writer starts the write pump on first use; false when closed.
func (c *chanConn) writer() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return false
	}
	if c.wreq == nil {
		c.wreq = make(chan []byte)
		c.wres = make(chan writeResult, 1)
		c.wbuf = make([]byte, writeChunk)
		go c.writePump(c.wreq, c.wres)
	}
	return true
}

func (c *chanConn) writePump(req <-chan []byte, res chan<- writeResult) {
	for {
		select {
		case b := <-req:
			n, err := c.ch.Write(b)
			res <- writeResult{n, err}
		case <-c.abort:
			return
		}
	}
}

// Write writes p in chunks, each copied to the pump, so the watchdog sees
// progress and Close can cut a Write the peer does not take.
func (c *chanConn) Write(p []byte) (int, error) {
	if !c.writer() {
		return 0, c.closedErr("write")
	}
	select {
	case c.wsem <- struct{}{}:
	case <-c.abort:
		return 0, c.closedErr("write")
	}
	defer func() { <-c.wsem }()
	if c.closed.Load() {
		return 0, c.closedErr("write")
	}
	c.begin()
	defer c.end()
	total := 0
	for len(p) > 0 {
		n := copy(c.wbuf, p)
		select {
		case c.wreq <- c.wbuf[:n]:
		case <-c.abort:
			return total, c.closedErr("write")
		}
		select {
		case r := <-c.wres:
			total += r.n
			c.progress()
			if r.err != nil {
				if r.err == io.EOF { // the channel is closed
					e := error(io.ErrClosedPipe)
					if c.lost != nil && c.lost() {
						e = ErrConnectionLost
					}
					r.err = &net.OpError{Op: "write", Net: "tcp", Addr: c.raddr, Err: e}
				}
				return total, r.err
			}
		case <-c.abort:
			// The pump may still hold wbuf: never write again.
			return total, c.closedErr("write")
		}
		p = p[n:]
	}
	return total, nil
}

// CloseWrite sends EOF to the far side; reading goes on. It waits for a
// Write in progress.
func (c *chanConn) CloseWrite() error {
	select {
	case c.wsem <- struct{}{}:
	case <-c.abort:
		return c.closedErr("close")
	}
	defer func() { <-c.wsem }()
	if c.closed.Load() {
		// A Write cut short by Close may still be inside the channel.
		return c.closedErr("close")
	}
	if cw, ok := c.ch.(closeWriter); ok {
		if err := cw.CloseWrite(); err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

// Close sends EOF and closes the channel, and makes a Read or Write in
// progress return. It always returns nil: io.EOF (the far side closed
// first) is success, a second Close is a no-op, and after the SSH
// connection died there is nothing left to close.
func (c *chanConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	// EOF first, so the far side sees a proper end of stream; skipped when
	// there is no point (idle, connection lost) or a Write is in progress.
	if !c.idled.Load() && (c.lost == nil || !c.lost()) {
		select {
		case c.wsem <- struct{}{}:
			if cw, ok := c.ch.(closeWriter); ok {
				_ = cw.CloseWrite()
			}
			<-c.wsem
		default:
		}
	}
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	close(c.abort)
	if c.pr != nil {
		c.pr.CloseWithError(c.closedErr("read"))
	}
	c.mu.Unlock()
	_ = c.ch.Close()
	if c.onClose != nil {
		c.onClose(c)
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

// transportConn is the TCP connection under an SSH connection; it records
// the first read or write failure so that the channels' io.EOF can be told
// apart from a proper end of stream. The failure is recorded before
// x/crypto/ssh closes the channels, since its reader sees it first.
type transportConn struct {
	net.Conn
	failed atomic.Bool
}

func (t *transportConn) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if err != nil {
		t.failed.Store(true)
	}
	return n, err
}

func (t *transportConn) Write(p []byte) (int, error) {
	n, err := t.Conn.Write(p)
	if err != nil {
		t.failed.Store(true)
	}
	return n, err
}

// Close marks the transport failed: whatever was in flight on its channels
// did not end properly.
func (t *transportConn) Close() error {
	t.failed.Store(true)
	return t.Conn.Close()
}

func (t *transportConn) lost() bool { return t.failed.Load() }
