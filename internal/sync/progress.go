package sync

import (
	gosync "sync"
	"sync/atomic"
	"time"
)

// Progress counts a running cycle's copies as the bytes move, for STATUS,
// the status page and sync-once's progress line. Its methods are safe for
// concurrent use; the zero value is ready, and a nil *Progress counts
// nothing.
type Progress struct {
	filesTotal, filesDone atomic.Int64
	bytesTotal, bytesDone atomic.Int64

	mu      gosync.Mutex
	started time.Time // when the copies began; zero before
}

// ProgressSnapshot is a Progress at one moment.
type ProgressSnapshot struct {
	FilesDone  int64     `json:"files_done"`
	FilesTotal int64     `json:"files_total"`
	BytesDone  int64     `json:"bytes_done"`
	BytesTotal int64     `json:"bytes_total"`
	Started    time.Time `json:"started"`
	// Rate is bytes per second since Started.
	Rate float64 `json:"rate"`
}

// ETA is the time left at the current rate; 0 when unknown or done.
func (s ProgressSnapshot) ETA() time.Duration {
	left := s.BytesTotal - s.BytesDone
	if s.Rate <= 0 || left <= 0 {
		return 0
	}
	return time.Duration(float64(left) / s.Rate * float64(time.Second))
}

// Begin sets the work planned: files and bytes still to move.
func (p *Progress) Begin(files int, bytes int64, at time.Time) {
	if p == nil {
		return
	}
	p.filesTotal.Store(int64(files))
	p.bytesTotal.Store(bytes)
	p.mu.Lock()
	p.started = at
	p.mu.Unlock()
}

// Moved counts n bytes delivered to the destination (negative: an attempt
// that failed gives its bytes back, so that done never exceeds total).
func (p *Progress) Moved(n int64) {
	if p != nil && n != 0 {
		p.bytesDone.Add(n)
	}
}

// FileDone counts one file copied and verified.
func (p *Progress) FileDone() {
	if p != nil {
		p.filesDone.Add(1)
	}
}

// Snapshot reads the counters at now.
func (p *Progress) Snapshot(now time.Time) ProgressSnapshot {
	if p == nil {
		return ProgressSnapshot{}
	}
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	s := ProgressSnapshot{
		FilesDone: p.filesDone.Load(), FilesTotal: p.filesTotal.Load(),
		BytesDone: p.bytesDone.Load(), BytesTotal: p.bytesTotal.Load(), Started: started,
	}
	if el := now.Sub(started).Seconds(); !started.IsZero() && el > 0 {
		s.Rate = float64(s.BytesDone) / el
	}
	return s
}
