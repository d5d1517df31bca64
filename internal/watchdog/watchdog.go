// Package watchdog bounds the operations on a connection that has no
// deadlines (an SSH channel): when an operation is under way and none has
// begun, moved bytes or ended on the connection for a whole limit, it calls
// the owner's expire function, which closes the connection and so ends the
// wait.
//
// Operations cost a few atomic operations each; the one timer re-arms
// itself at most once per limit while operations are under way, and sleeps
// while none are, so an idle connection costs no timer events and one that
// is never stopped holds no armed timer.
package watchdog

import (
	"sync"
	"sync/atomic"
	"time"
)

// A Watchdog watches the operations between Begin and End. The zero value
// is not usable; a nil *Watchdog watches nothing, so that an owner without
// a limit need not test for one.
type Watchdog struct {
	limit  time.Duration
	expire func()

	pending atomic.Int32 // operations between Begin and End
	last    atomic.Int64 // UnixNano of the last Begin, Progress or End
	asleep  atomic.Bool  // the timer is not armed: nothing was pending
	expired atomic.Bool  // set before expire is called

	mu      sync.Mutex
	timer   *time.Timer // made by the first Begin
	stopped bool        // by Stop or by expiring
}

// New returns a watchdog that calls expire once, on a goroutine of its
// own, when an operation has gone limit without Begin, Progress or End.
// It returns nil when limit is not positive.
func New(limit time.Duration, expire func()) *Watchdog {
	if limit <= 0 {
		return nil
	}
	w := &Watchdog{limit: limit, expire: expire}
	w.last.Store(time.Now().UnixNano())
	w.asleep.Store(true)
	return w
}

// Begin records the start of an operation.
func (w *Watchdog) Begin() {
	if w == nil {
		return
	}
	w.pending.Add(1)
	w.touch()
	// The atomics order this load after the Add: either check sees the
	// operation pending, or this sees the timer asleep and arms it.
	if w.asleep.Load() {
		w.mu.Lock()
		if w.asleep.Load() && !w.stopped {
			w.asleep.Store(false)
			if w.timer == nil {
				w.timer = time.AfterFunc(w.limit, w.check)
			} else {
				w.timer.Reset(w.limit)
			}
		}
		w.mu.Unlock()
	}
}

// Progress records that an operation moved bytes.
func (w *Watchdog) Progress() {
	if w != nil {
		w.touch()
	}
}

// End records the end of an operation.
func (w *Watchdog) End() {
	if w == nil {
		return
	}
	w.touch()
	w.pending.Add(-1)
}

// Stop ends the watch: expire is not called after Stop returns, unless the
// watchdog had already begun to expire (expire may then still be running).
func (w *Watchdog) Stop() {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
}

// Expired reports whether the watchdog expired (and called, or is calling,
// expire); the owner tells by it a close of its own from an idle one.
func (w *Watchdog) Expired() bool { return w != nil && w.expired.Load() }

func (w *Watchdog) touch() { w.last.Store(time.Now().UnixNano()) }

// check runs on the timer.
func (w *Watchdog) check() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	since := time.Since(time.Unix(0, w.last.Load()))
	if w.pending.Load() > 0 && since >= w.limit {
		w.stopped = true
		w.expired.Store(true)
		w.mu.Unlock()
		w.expire()
		return
	}
	w.asleep.Store(true)
	if w.pending.Load() > 0 { // see Begin
		w.asleep.Store(false)
		w.timer.Reset(max(w.limit-since, time.Millisecond))
	}
	w.mu.Unlock()
}
