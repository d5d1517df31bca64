package watchdog

import (
	"sync/atomic"
	"testing"
	"time"
)

const limit = 50 * time.Millisecond

// expiries returns a watchdog and a counter of its expire calls.
func expiries(t *testing.T) (*Watchdog, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	w := New(limit, func() { n.Add(1) })
	t.Cleanup(w.Stop)
	return w, &n
}

// noExpiry fails t if expire was called within wait.
func noExpiry(t *testing.T, n *atomic.Int32, wait time.Duration, what string) {
	t.Helper()
	time.Sleep(wait)
	if got := n.Load(); got != 0 {
		t.Errorf("%s: expired %d times", what, got)
	}
}

// waitFor polls cond for up to a second.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestStalledOperationExpiresOnce(t *testing.T) {
	w, n := expiries(t)
	w.Begin()
	start := time.Now()
	if w.Expired() {
		t.Fatal("Expired before the limit")
	}
	if !waitFor(func() bool { return n.Load() > 0 }) {
		t.Fatal("a stalled operation did not expire")
	}
	if !w.Expired() {
		t.Error("Expired is false after expire was called")
	}
	if d := time.Since(start); d < limit {
		t.Errorf("expired after %v, before the limit %v", d, limit)
	}
	time.Sleep(3 * limit)
	if got := n.Load(); got != 1 {
		t.Errorf("expire called %d times, want 1", got)
	}
}

func TestProgressKeepsALongOperationAlive(t *testing.T) {
	w, n := expiries(t)
	w.Begin()
	for range 10 { // 5 limits in all
		time.Sleep(limit / 2)
		w.Progress()
	}
	w.End()
	if got := n.Load(); got != 0 {
		t.Errorf("an operation that made progress expired %d times", got)
	}
}

func TestIdleConnectionNeverExpires(t *testing.T) {
	w, n := expiries(t)
	w.Begin()
	w.End()
	noExpiry(t, n, 4*limit, "a connection with nothing pending")
	if !w.asleep.Load() {
		t.Error("the timer stays armed with nothing pending")
	}
}

// An operation that begins after the timer went to sleep is watched.
func TestOperationAfterSleepIsWatched(t *testing.T) {
	w, n := expiries(t)
	w.Begin()
	w.End()
	if !waitFor(w.asleep.Load) {
		t.Fatal("the timer did not go to sleep")
	}
	w.Begin()
	if !waitFor(func() bool { return n.Load() > 0 }) {
		t.Fatal("a stalled operation begun after sleep did not expire")
	}
}

func TestStopPreventsExpiry(t *testing.T) {
	w, n := expiries(t)
	w.Begin()
	w.Stop()
	noExpiry(t, n, 3*limit, "after Stop")
	if w.Expired() {
		t.Error("Expired after Stop")
	}
}

func TestNilWatchesNothing(t *testing.T) {
	w := New(0, func() { t.Error("expired") })
	if w != nil {
		t.Fatalf("New(0) = %v, want nil", w)
	}
	w.Begin()
	w.Progress()
	w.End()
	w.Stop()
	if w.Expired() {
		t.Error("a nil watchdog says it expired")
	}
}

// Many operations beginning and ending at once while the timer sleeps and
// wakes: a stall that follows is still seen (run with -race).
func TestConcurrentOperations(t *testing.T) {
	w, n := expiries(t)
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 2000 {
				w.Begin()
				if i%500 == 0 {
					time.Sleep(limit / 5)
				}
				w.End()
			}
		}()
	}
	for range 8 {
		<-done
	}
	if got := n.Load(); got != 0 {
		t.Fatalf("operations that ended expired %d times", got)
	}
	w.Begin()
	if !waitFor(func() bool { return n.Load() > 0 }) {
		t.Fatal("a stall after the burst did not expire")
	}
}
