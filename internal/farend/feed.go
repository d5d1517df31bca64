package farend

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"sync"
	"time"
)

// feedBuffer bounds the bytes a publish holds at the far end that its FTP
// upload has not taken yet (besides the SSH channel's window): a request's
// reader blocks when it is full.
const feedBuffer = 256 << 10

// errLie is a publish whose client sent more or fewer bytes than it
// announced, or bytes whose md5 differs from the one it sent or from the
// file's it announced: the content is known bad and its temp file is
// removed.
var errLie = errors.New("the client sent other bytes than it announced")

// feed is the source of one publish at the far end: the channel's reader
// writes the request's bytes into it, archive.Volume.Publish reads them. Read
// reports io.EOF only when exactly the announced bytes came, the client
// ended the request well and their md5 matches; any other end is an error,
// so that Publish never renames.
type feed struct {
	mu      sync.Mutex
	cond    *sync.Cond
	queue   [][]byte
	queued  int
	want    int64 // bytes announced (size - from)
	got     int64 // bytes accepted
	crc     uint32
	hash    hash.Hash // md5, only when fileMD5 is set
	fileMD5 []byte    // the whole file's md5 when announced
	ended   bool      // tEnd came with OK
	endCRC  uint32
	err     error // sticky: why the feed failed
	done    bool  // the consumer stopped reading
	striped bool  // bytes may still come after the end, from other channels
}

func newFeed(want int64) *feed {
	f := &feed{want: want}
	f.cond = sync.NewCond(&f.mu)
	return f
}

// write queues p (copied), waiting while the buffer is full. More bytes
// than announced fail the feed with errLie.
func (f *feed) write(p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.err == nil && !f.done && f.queued > 0 && f.queued+len(p) > feedBuffer {
		f.cond.Wait()
	}
	if f.err != nil {
		return f.err
	}
	if f.done {
		return errors.New("publish ended")
	}
	// A striped publish's end may come before chunks sent on other
	// channels: bytes after the end are fine up to the size announced.
	if f.got+int64(len(p)) > f.want {
		f.failLocked(fmt.Errorf("%w: more than the %d bytes announced", errLie, f.want))
		return f.err
	}
	f.got += int64(len(p))
	f.crc = crc32.Update(f.crc, crcTable, p)
	if f.hash != nil {
		f.hash.Write(p)
	}
	f.queue = append(f.queue, bytes.Clone(p))
	f.queued += len(p)
	f.cond.Broadcast()
	return nil
}

// expectMD5 makes the feed check the whole file's md5 (a publish from
// offset 0); call it before the first write.
func (f *feed) expectMD5(sum []byte) {
	if len(sum) != 0 {
		f.fileMD5, f.hash = bytes.Clone(sum), md5.New()
	}
}

// end records the client's tEnd.
func (f *feed) end(ok bool, crc uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil || f.ended {
		return
	}
	if !ok {
		// The client's source failed: keep the temp file for a resume, as a
		// failed read of the source does on the FTP path.
		f.err = errors.New("the client abandoned the publish (its source failed)")
		f.cond.Broadcast()
		return
	}
	f.ended = true
	f.endCRC = crc
	f.cond.Broadcast()
}

// watchEnd fails a striped feed that, after its end, goes idle without a
// byte coming while bytes are still missing.
func (f *feed) watchEnd(idle time.Duration) {
	f.mu.Lock()
	last := f.got
	f.mu.Unlock()
	var check func()
	check = func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case f.err != nil || f.done || f.got >= f.want:
		case f.got == last:
			f.failLocked(fmt.Errorf("%w: %d of the %d bytes announced came before the stripes went quiet", errLie, f.got, f.want))
		default:
			last = f.got
			time.AfterFunc(idle, check)
		}
	}
	time.AfterFunc(idle, check)
}

// fail ends the feed with err, unless it ended already.
func (f *feed) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failLocked(err)
}

func (f *feed) failLocked(err error) {
	if f.err == nil {
		f.err = err
	}
	f.cond.Broadcast()
}

// close tells writers that the consumer is gone.
func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = true
	f.queue, f.queued = nil, 0
	f.cond.Broadcast()
}

// lied reports whether the feed failed because the client's bytes were not
// what it announced.
func (f *feed) lied() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return errors.Is(f.err, errLie)
}

// Read gives the queued bytes; at the end io.EOF only when the bytes are
// complete and verified.
func (f *feed) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.queue) == 0 && f.err == nil && (!f.ended || f.striped && f.got < f.want) {
		f.cond.Wait()
	}
	if len(f.queue) > 0 {
		n := copy(p, f.queue[0])
		if n == len(f.queue[0]) {
			f.queue[0] = nil
			f.queue = f.queue[1:]
		} else {
			f.queue[0] = f.queue[0][n:]
		}
		f.queued -= n
		f.cond.Broadcast()
		return n, nil
	}
	if f.err != nil {
		return 0, f.err
	}
	// Ended, and everything read.
	switch {
	case f.got != f.want:
		f.err = fmt.Errorf("%w: %d of the %d bytes announced", errLie, f.got, f.want)
	case f.endCRC != f.crc:
		f.err = fmt.Errorf("%w: the checksum of the bytes received differs from the client's", errLie)
	case f.hash != nil && !bytes.Equal(f.fileMD5, f.hash.Sum(nil)):
		f.err = fmt.Errorf("%w: %w", errLie, ErrDigest)
	default:
		return 0, io.EOF
	}
	return 0, f.err
}
