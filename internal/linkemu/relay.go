package linkemu

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// relay dials target for the accepted client and carries the connection
// through the link until both directions have delivered their EOF, either
// end fails, or the Link closes. It runs in a goroutine counted by l.wg.
func (l *Link) relay(client *net.TCPConn, target string) {
	defer l.wg.Done()
	server, err := l.dial(target)
	if err != nil {
		l.dialErrors.Add(1)
		if l.ctx.Err() == nil {
			l.log.Warn("linkemu: dial target failed: closing the client's connection", "client", client.RemoteAddr().String(), "target", target, "err", err)
		}
		client.Close()
		return
	}
	l.active.Add(1)
	defer l.active.Add(-1)

	ctx, cancel := context.WithCancel(l.ctx)
	defer cancel()
	var (
		ended atomic.Int32 // directions that delivered their EOF
		mu    sync.Mutex
		why   error // the first failure, for the log
	)
	fail := func(err error) {
		mu.Lock()
		if why == nil {
			why = err
		}
		mu.Unlock()
		cancel()
	}
	eof := func() {
		if ended.Add(1) == 2 {
			cancel()
		}
	}
	pipes := [2]*pipe{
		l.newPipe(dirUp, client, server, l.up),
		l.newPipe(dirDown, server, client, l.down),
	}
	var wg sync.WaitGroup
	for _, p := range pipes {
		wg.Add(2)
		go func() { defer wg.Done(); p.read(ctx) }()
		go func() { defer wg.Done(); p.write(ctx, fail, eof) }()
	}
	<-ctx.Done()
	client.Close()
	server.Close()
	wg.Wait()
	for _, p := range pipes {
		p.drain()
	}
	switch {
	case ended.Load() == 2:
		l.log.Debug("linkemu: connection ended", "client", client.RemoteAddr().String(), "target", target)
	case l.ctx.Err() != nil:
		l.log.Debug("linkemu: connection closed with the link", "client", client.RemoteAddr().String(), "target", target)
	default:
		mu.Lock()
		err := why
		mu.Unlock()
		l.log.Debug("linkemu: connection broken: both ends closed", "client", client.RemoteAddr().String(), "target", target, "err", err)
	}
}

// segment is what a pipe's reader hands its writer: bytes, or the end of
// the stream (io.EOF: a half-close; anything else: the source failed), due
// for delivery at due.
type segment struct {
	b   []byte
	due time.Time
	end error
}

// pipe is one direction of one relayed connection.
type pipe struct {
	l        *Link
	dir      int
	src, dst *net.TCPConn
	lim      *rate.Limiter
	win      *window
	q        chan segment
}

// pipeSegments bounds the segments queued in one pipe besides win's bytes,
// so that a trickle of tiny reads cannot queue without limit either.
const pipeSegments = 4096

func (l *Link) newPipe(dir int, src, dst *net.TCPConn, lim *rate.Limiter) *pipe {
	return &pipe{l: l, dir: dir, src: src, dst: dst, lim: lim,
		win: newWindow(l.cfg.Queue), q: make(chan segment, pipeSegments)}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, chunk); return &b }}

// read moves bytes from src into the queue: it waits for room in the
// window (back-pressure: src is not read while the window is full), reads,
// waits for the shared bucket's tokens (the link's rate), and queues the
// bytes due RTT/2 later. At src's end it queues the end.
func (p *pipe) read(ctx context.Context) {
	for {
		if err := p.win.take(ctx, p.l.chunk); err != nil {
			return
		}
		bp := bufPool.Get().(*[]byte)
		n, err := p.src.Read((*bp)[:p.l.chunk])
		p.win.give(p.l.chunk - n)
		if n > 0 {
			b := (*bp)[:n]
			if n < p.l.chunk/4 { // keep a small read from pinning a whole buffer
				b = append([]byte(nil), b...)
				bufPool.Put(bp)
			}
			p.l.queued[p.dir].Add(int64(n))
			if werr := p.lim.WaitN(ctx, n); werr != nil {
				p.l.queued[p.dir].Add(-int64(n))
				return
			}
			select {
			case p.q <- segment{b: b, due: time.Now().Add(p.l.oneWay)}:
			case <-ctx.Done():
				p.l.queued[p.dir].Add(-int64(n))
				return
			}
		} else {
			bufPool.Put(bp)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			select {
			case p.q <- segment{due: time.Now().Add(p.l.oneWay), end: err}:
			case <-ctx.Done():
			}
			return
		}
	}
}

// write delivers each queued segment to dst at its due time: bytes are
// written, io.EOF half-closes dst, another end fails the relay.
func (p *pipe) write(ctx context.Context, fail func(error), eof func()) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var s segment
		select {
		case s = <-p.q:
		case <-ctx.Done():
			return
		}
		if d := time.Until(s.due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				p.release(s.b)
				return
			}
		}
		switch {
		case s.end == io.EOF:
			if err := p.dst.CloseWrite(); err != nil {
				fail(err)
				return
			}
			eof()
			return
		case s.end != nil:
			fail(s.end)
			return
		}
		_, err := p.dst.Write(s.b)
		if err == nil {
			p.l.delivered[p.dir].Add(int64(len(s.b)))
		}
		p.release(s.b)
		if err != nil {
			fail(err)
			return
		}
	}
}

// release returns b's bytes to the window and the stats, and a whole
// buffer to the pool.
func (p *pipe) release(b []byte) {
	if len(b) == 0 {
		return
	}
	p.win.give(len(b))
	p.l.queued[p.dir].Add(-int64(len(b)))
	if cap(b) == chunk {
		b = b[:chunk]
		bufPool.Put(&b)
	}
}

// drain releases what is still queued once reader and writer have ended.
func (p *pipe) drain() {
	for {
		select {
		case s := <-p.q:
			p.release(s.b)
		default:
			return
		}
	}
}

// window is a pipe's byte budget: the reader takes before it reads, the
// writer gives back what it delivered. One reader waits on it at a time.
type window struct {
	mu   sync.Mutex
	free int
	wake chan struct{}
}

func newWindow(size int) *window { return &window{free: size, wake: make(chan struct{}, 1)} }

// take waits until n bytes are free and takes them, or returns ctx's error.
func (w *window) take(ctx context.Context, n int) error {
	for {
		w.mu.Lock()
		if w.free >= n {
			w.free -= n
			w.mu.Unlock()
			return nil
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// give returns n bytes.
func (w *window) give(n int) {
	if n == 0 {
		return
	}
	w.mu.Lock()
	w.free += n
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}
