package sync

import (
	"io"
	gosync "sync"

	"backupsync/internal/archive"
)

// Read-ahead sizes: a large file is read in readAheadChunk pieces, up to
// readAheadDepth of them ahead of the writer.
const (
	readAheadChunk = 256 << 10
	readAheadDepth = 4
	// readAheadMin is the smallest transfer worth a goroutine.
	readAheadMin = 2 * readAheadChunk
)

// readAhead reads its source in a goroutine, so that reading the source
// overlaps writing the destination: a copy then moves at the speed of the
// slower side instead of the sum of both latencies. Memory is bounded by
// readAheadChunk × (readAheadDepth + 1) whatever the file's size.
//
// The goroutine starts with the first Read. A copy that goes direct (see
// DirectTo) needs none: it reads no bytes, and its last Read, which
// only finds the end, goes to the source itself.
type readAhead struct {
	src  io.ReadCloser
	full chan chunk
	free chan []byte
	stop chan struct{}
	done chan struct{}

	started bool
	direct  bool // DirectTo moved bytes: no read-ahead any more
	cur     chunk
	off     int
	once    gosync.Once
}

type chunk struct {
	buf []byte
	err error
}

func newReadAhead(src io.ReadCloser) *readAhead {
	return &readAhead{src: src, stop: make(chan struct{}), done: make(chan struct{})}
}

func (r *readAhead) start() {
	r.started = true
	r.full = make(chan chunk, readAheadDepth)
	r.free = make(chan []byte, readAheadDepth+1)
	for range readAheadDepth + 1 {
		r.free <- make([]byte, readAheadChunk)
	}
	go r.fill()
}

func (r *readAhead) fill() {
	defer close(r.done)
	for {
		var buf []byte
		select {
		case buf = <-r.free:
		case <-r.stop:
			return
		}
		n, err := io.ReadFull(r.src, buf)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		select {
		case r.full <- chunk{buf[:n], err}:
		case <-r.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

// DirectTo hands a direct copy to the source while nothing was read ahead.
func (r *readAhead) DirectTo(w io.Writer, n int64) (int64, error) {
	d, ok := r.src.(archive.DirectReader)
	if !ok || r.started {
		return 0, archive.ErrNotDirect
	}
	m, err := d.DirectTo(w, n)
	if m > 0 {
		r.direct = true
	}
	return m, err
}

// Read returns the bytes read ahead, in order, then the source's error.
func (r *readAhead) Read(p []byte) (int, error) {
	if r.direct {
		return r.src.Read(p)
	}
	if !r.started {
		r.start()
	}
	for r.off == len(r.cur.buf) {
		if r.cur.err != nil {
			return 0, r.cur.err
		}
		if r.cur.buf != nil {
			r.free <- r.cur.buf[:cap(r.cur.buf)]
		}
		r.cur, r.off = <-r.full, 0
		if len(r.cur.buf) == 0 && r.cur.err != nil {
			return 0, r.cur.err
		}
	}
	n := copy(p, r.cur.buf[r.off:])
	r.off += n
	return n, nil
}

// Close stops the reader goroutine, closes the source and waits: no
// goroutine outlives the copy.
func (r *readAhead) Close() error {
	var err error
	r.once.Do(func() {
		close(r.stop)
		err = r.src.Close() // unblocks a Read in progress
		if r.started {
			<-r.done
		}
	})
	return err
}
