package archive

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Direct copies. A file read from one volume (Volume.Open) and published to
// another (Publish) can move from the source's data connection to the
// destination's inside the kernel (splice(2), which Go's TCPConn.ReadFrom
// uses) instead of through this process's memory: on a 2-core node that
// leaves the CPU a copy used to the FTP servers. Only plain TCP data
// connections can; FTPS and SSH-tunnelled ones use Read and Write.
//
// The layers between the two (sync's checks) take part by implementing
// DirectReader themselves: each DirectTo passes on at most n bytes and
// counts what moved.

// DirectReader is a reader that can move its bytes straight to w.
//
// DirectTo moves at most n (> 0) bytes to w and returns how many moved. At
// the end of the data it returns io.EOF, as Read does. ErrNotDirect, with
// nothing moved, means that this reader cannot write to this w directly,
// or not n bytes: the caller goes on with Read.
type DirectReader interface {
	io.Reader
	DirectTo(w io.Writer, n int64) (int64, error)
}

// ErrNotDirect: see DirectReader.
var ErrNotDirect = errors.New("no direct copy between these connections")

// directChunk is the most a DirectTo moves at once. The connections'
// deadlines are set per chunk: a direct copy must move a chunk per
// OpTimeout (17 KiB/s with the default) to count as alive, where Read and
// Write need a byte.
const directChunk = 1 << 20

// directMin is the least a DirectTo moves: below it, setting up a splice
// (a pipe, two deadlines) costs more than copying (measured: 5,000 files of
// 16 KiB took 20% longer direct). The last bytes of a file go by Read.
const directMin = 256 << 10

// tcp is the connection under c when it is plain TCP with working
// deadlines, else nil.
func (c *ioConn) tcp() *net.TCPConn {
	if c.noDL.Load() {
		return nil
	}
	t, _ := c.Conn.(*net.TCPConn)
	return t
}

// spliceN moves at most n bytes from src to dst, with the deadline d on
// both. It returns how many moved; fewer than n with a nil error means
// src reached its end.
func spliceN(dst *ioConn, src *ioConn, n int64, d time.Duration) (int64, error) {
	dt, st := dst.tcp(), src.tcp()
	deadline := time.Now().Add(d)
	if err := st.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	if err := dt.SetWriteDeadline(deadline); err != nil {
		return 0, err
	}
	return dt.ReadFrom(&io.LimitedReader{R: st, N: n})
}

// DirectTo moves the file's bytes to w, the data connection of a Publish,
// when both are plain TCP (see DirectReader).
func (r *reader) DirectTo(w io.Writer, n int64) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.ready(); err != nil {
		return 0, err
	}
	dst, ok := w.(*ioConn)
	src := r.c.soleData()
	if n < directMin || !ok || src == nil || r.v.ep.TLS || dst.tcp() == nil || src.tcp() == nil {
		return 0, ErrNotDirect
	}
	want := min(n, directChunk)
	m, err := spliceN(dst, src, want, r.v.opt.OpTimeout)
	switch {
	case err != nil:
		return r.finish(m, err)
	case m < want:
		return r.finish(m, io.EOF) // the end of the data
	}
	return m, nil
}

// soleData is c's data connection while exactly one is open.
func (c *conn) soleData() *ioConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.data) != 1 {
		return nil
	}
	return c.data[0]
}

// countReader is what Publish uploads: at most limit bytes of r, counted,
// with r's error remembered. Its WriteTo (which io.Copy in jlaffaye's Stor
// calls) moves the bytes directly when r is a DirectReader that can.
type countReader struct {
	r     io.Reader
	limit int64 // bytes that may still be read
	n     int64
	calls int
	err   error
}

// untouched is a withConn retry predicate: true while *c was never read.
func untouched(c **countReader) func() bool {
	return func() bool { return *c == nil || (*c).calls == 0 }
}

func (c *countReader) Read(p []byte) (int, error) {
	if c.limit <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.limit {
		p = p[:c.limit]
	}
	c.calls++
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.limit -= int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// copyBuffer is the buffer of a copy through this process, io.Copy's.
const copyBuffer = 32 << 10

// copyBuffers recycles the buffers of copies through this process: one per
// file, thousands per cycle with small files.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBuffer); return &b }}

func (c *countReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	if d, ok := c.r.(DirectReader); ok {
		for c.limit > 0 {
			c.calls++
			m, err := d.DirectTo(w, c.limit)
			c.n += m
			c.limit -= m
			total += m
			if err == io.EOF {
				return total, nil
			}
			if errors.Is(err, ErrNotDirect) && m == 0 {
				break // on with Read
			}
			if err != nil {
				c.err = err
				return total, err
			}
		}
	}
	// Only Read and Write: w's ReadFrom and c's WriteTo would come back here.
	b := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(b)
	m, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{c}, *b)
	return total + m, err
}
