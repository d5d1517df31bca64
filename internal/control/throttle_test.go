package control

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is a throttle clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestThrottle() (*throttle, *fakeClock) {
	clock := &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	t := newThrottle()
	t.now = clock.now
	return t, clock
}

// fail admits one check of addr and fails it with password pw.
func fail(t *testing.T, th *throttle, addr, pw string) failure {
	t.Helper()
	if wait, ok := th.admit(context.Background(), addr); !ok {
		t.Fatalf("%s: refused (wait %v) before its failure %q", addr, wait, pw)
	}
	return th.failed(addr, th.digest("admin", pw), th.now())
}

func TestThrottleBacksOffExponentially(t *testing.T) {
	th, clock := newTestThrottle()
	const addr = "192.0.2.7"
	for i := 1; i < throttleFree; i++ {
		if f := fail(t, th, addr, fmt.Sprint("guess", i)); !f.counted || f.failures != i || f.backoff != 0 {
			t.Fatalf("failure %d: %+v, want counted without a back-off", i, f)
		}
	}
	want := time.Second
	for i := throttleFree; i < throttleFree+12; i++ {
		f := fail(t, th, addr, fmt.Sprint("guess", i))
		if f.backoff != want || f.failures != i {
			t.Fatalf("failure %d: %+v, want a back-off of %v", i, f, want)
		}
		// Refused, unchecked, for the whole back-off; another address is not.
		for _, at := range []time.Duration{0, want / 2, want - time.Millisecond} {
			clock.add(at)
			if wait, ok := th.admit(context.Background(), addr); ok || wait < time.Second || wait > want-at+time.Second {
				t.Fatalf("failure %d, %v into its back-off: admitted=%v wait %v", i, at, ok, wait)
			}
			clock.add(-at)
		}
		if _, ok := th.admit(context.Background(), "192.0.2.8"); !ok {
			t.Fatal("another address was refused")
		}
		th.release("192.0.2.8")
		clock.add(want)
		// Past the back-off: one check at a time.
		if _, ok := th.admit(context.Background(), addr); !ok {
			t.Fatalf("failure %d: refused after its back-off", i)
		}
		if _, ok := th.admit(context.Background(), addr); ok {
			t.Fatalf("failure %d: a second check in flight after the back-off", i)
		}
		th.release(addr)
		want = min(2*want, throttleMax)
	}
	if want != throttleMax {
		t.Fatalf("the back-off reached %v, want the cap %v", want, throttleMax)
	}
	// A success forgets the address.
	if _, ok := th.admit(context.Background(), addr); !ok {
		t.Fatal("refused after the back-off")
	}
	th.succeeded(addr)
	if th.tracked() != 0 {
		t.Fatalf("%d addresses tracked after a success", th.tracked())
	}
	if f := fail(t, th, addr, "again"); f.failures != 1 || f.backoff != 0 {
		t.Fatalf("after a success: %+v, want a fresh count", f)
	}
}

// The start of each back-off is reported once with what the previous one
// refused; failures that land during a back-off (checks that were already
// running) extend it without a new report.
func TestThrottleReportsOncePerBurst(t *testing.T) {
	th, clock := newTestThrottle()
	const addr = "192.0.2.9"
	// Parallel guesses: every turn taken, twice over; the fifth failure
	// starts the back-off, the three checks still running extend it.
	reports := 0
	for round := range 2 {
		for i := range throttleParallel {
			if _, ok := th.admit(context.Background(), addr); !ok {
				t.Fatalf("round %d: check %d refused before the back-off", round, i)
			}
		}
		for i := range throttleParallel {
			if f := th.failed(addr, th.digest("admin", fmt.Sprint(round, i)), th.now()); f.backoff > 0 {
				reports++
			}
		}
	}
	if reports != 1 {
		t.Fatalf("%d back-off reports for one burst, want 1", reports)
	}
	for range 7 {
		th.admit(context.Background(), addr)
	}
	clock.add(throttleMax)
	// The ninth failure: 1 s doubled four times.
	if f := fail(t, th, addr, "next"); f.backoff != 16*time.Second || f.refused != 7 {
		t.Fatalf("second burst: %+v, want a report of the 7 refused during the first", f)
	}
	clock.add(throttleMax)
	if f := fail(t, th, addr, "later"); f.backoff != 32*time.Second || f.refused != 0 {
		t.Fatalf("third burst: %+v", f)
	}
}

// One wrong password sent many times (backupsyncctl's parallel calls after
// a typo) counts once.
func TestThrottleCountsARepeatOnce(t *testing.T) {
	th, _ := newTestThrottle()
	const addr = "192.0.2.10"
	for i := range 32 {
		f := fail(t, th, addr, "typo")
		if f.counted != (i == 0) || f.failures != 1 {
			t.Fatalf("repeat %d: %+v", i, f)
		}
	}
	// A different user with the same password is another guess.
	if _, ok := th.admit(context.Background(), addr); !ok {
		t.Fatal("refused")
	}
	if f := th.failed(addr, th.digest("root", "typo"), th.now()); !f.counted || f.failures != 2 {
		t.Fatalf("other user: %+v", f)
	}
}

func TestThrottleGivesChecksTurns(t *testing.T) {
	th, _ := newTestThrottle()
	th.queue = throttleParallel + 2
	const addr = "192.0.2.11"
	ctx := context.Background()
	for i := range throttleParallel {
		if _, ok := th.admit(ctx, addr); !ok {
			t.Fatalf("check %d refused", i)
		}
	}
	users := func() int {
		th.mu.Lock()
		defer th.mu.Unlock()
		if g := th.gates[addr]; g != nil {
			return g.users
		}
		return 0
	}
	waitUsers := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); users() != n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d requests at the gate, want %d", users(), n)
			}
		}
	}
	// The next two wait their turn; a third finds the queue full.
	results := make(chan bool, 2)
	for range 2 {
		go func() { _, ok := th.admit(ctx, addr); results <- ok }()
	}
	waitUsers(throttleParallel + 2)
	if wait, ok := th.admit(ctx, addr); ok || wait != time.Second {
		t.Fatalf("beyond the queue: admitted=%v wait %v", ok, wait)
	}
	if _, ok := th.admit(ctx, "192.0.2.12"); !ok {
		t.Fatal("another address waited for this one's turns")
	}
	th.release("192.0.2.12")
	th.succeeded(addr)
	th.succeeded(addr)
	for range 2 {
		if ok := <-results; !ok {
			t.Fatal("a waiting check was refused when its turn came")
		}
	}
	// A request whose context ends, or that waits too long, gives up.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok := th.admit(cancelled, addr); ok {
		t.Fatal("admitted with a cancelled context while every turn was taken")
	}
	th.wait = time.Millisecond
	if wait, ok := th.admit(ctx, addr); ok || wait != time.Second {
		t.Fatalf("after waiting too long: admitted=%v wait %v", ok, wait)
	}
	for range throttleParallel {
		th.succeeded(addr)
	}
	if len(th.gates) != 0 || th.tracked() != 0 {
		t.Fatalf("left behind: %d gates, %d tracked", len(th.gates), th.tracked())
	}
}

// The throttle's memory is bounded: a guesser with many addresses evicts
// the least recently failed ones, and a record without failures for an
// hour is forgotten.
func TestThrottleMemoryIsBounded(t *testing.T) {
	th, clock := newTestThrottle()
	th.capacity = 100
	for i := range 1000 {
		clock.add(time.Millisecond)
		fail(t, th, fmt.Sprintf("10.0.%d.%d", i/256, i%256), "x")
		if n := th.tracked(); n > th.capacity || len(th.addrs) != n {
			t.Fatalf("after %d addresses: %d tracked, %d in the map; capacity %d", i+1, n, len(th.addrs), th.capacity)
		}
	}
	th.mu.Lock()
	_, oldest := th.addrs["10.0.0.0"]
	_, newest := th.addrs["10.0.3.231"] // the 1000th
	th.mu.Unlock()
	if oldest || !newest {
		t.Fatalf("oldest kept %v, newest kept %v: want the oldest evicted", oldest, newest)
	}
	clock.add(throttleForget)
	fail(t, th, "10.1.0.1", "x")
	if n := th.tracked(); n != 1 {
		t.Fatalf("%d tracked an hour later, want only the new one", n)
	}
	// A record in back-off is kept however old its last failure.
	th.base = 2 * throttleForget
	th.max = th.base
	for i := range throttleFree {
		fail(t, th, "10.1.0.2", fmt.Sprint(i))
	}
	clock.add(th.base - time.Second)
	if _, ok := th.admit(context.Background(), "10.1.0.2"); ok {
		t.Fatal("a backed-off address was forgotten before its back-off ended")
	}
}

func TestAddressKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.12.7:4711", "127.0.12.7"},
		{"[::ffff:127.0.12.7]:4711", "127.0.12.7"},
		{"[2001:db8:1:2:3:4:5:6]:4711", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:1", "2001:db8:1:2::/64"},
		{"[::1]:4711", "::/64"},
		{"[fe80::1%eth0]:4711", "fe80::/64"},
		{"not-an-address", "not-an-address"},
		{"host:1", "host"},
	} {
		if got := addressKey(tc.in); got != tc.want {
			t.Errorf("addressKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
