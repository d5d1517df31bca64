package control

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Defaults of the login throttle (see throttle).
const (
	// throttleFree failed logins from one address are answered 401 before
	// the first back-off.
	throttleFree = 5
	// throttleBase is the first back-off; it doubles with each further
	// failure, up to throttleMax.
	throttleBase = time.Second
	throttleMax  = 5 * time.Minute
	// throttleForget drops the record of an address that has not failed
	// for this long (and is not backed off).
	throttleForget = time.Hour
	// throttleCapacity bounds the addresses remembered; the one that failed
	// least recently is forgotten first. A record is about 200 bytes with
	// its map and list entries: 10,000 of them stay under 3 MiB.
	throttleCapacity = 10000
	// throttleParallel password checks (bcrypt) of one address run at
	// once; its other requests wait their turn. So a burst of parallel
	// guesses gets at most throttleFree-1+throttleParallel checked before
	// the back-off, while backupsyncctl's 32 parallel calls pass in turns.
	throttleParallel = 4
	// throttleQueue bounds the requests of one address waiting for or
	// holding a turn, and throttleWait how long one waits; beyond either
	// it is answered 429.
	throttleQueue = 128
	throttleWait  = 10 * time.Second
	// recentDigests is how many distinct failed credentials a record keeps,
	// so that a client repeating one wrong password (backupsyncctl's
	// parallel calls after a typo) counts one failure, not one per call.
	recentDigests = 4
)

// throttle remembers failed logins per source address and says when an
// address must wait. An address is an IPv4 address or an IPv6 /64 (one
// host usually holds a whole /64).
//
// The rule: the first free distinct failures are only counted; the
// failure that reaches free, and every one after it, backs the address off
// for base, doubled per further failure, up to max. While backed off every
// request of the address is refused unchecked. When the back-off has
// expired one check at a time is let through: a failure backs off again
// (twice as long), a success forgets the address. A failure with the same
// user and password as one of the address's last recentDigests failures
// is not counted again. At most parallel checks of an address run at once
// (the others wait, up to queue of them, each at most wait); records are
// bounded by capacity.
type throttle struct {
	free      int
	base, max time.Duration
	forget    time.Duration
	capacity  int
	parallel  int
	queue     int
	wait      time.Duration
	key       [32]byte // keys the digests of failed credentials
	now       func() time.Time

	mu    sync.Mutex
	addrs map[string]*list.Element // of *record
	lru   *list.List               // most recently failed or refused first
	gates map[string]*gate         // of the addresses with requests in flight
}

// gate holds the turns of one address's password checks.
type gate struct {
	turns chan struct{} // a token per check running
	users int           // requests waiting for or holding a turn
}

// record is what the throttle knows of one address.
type record struct {
	addr     string
	failures int       // distinct failed logins since the last success
	last     time.Time // the last failure or refusal
	until    time.Time // the end of the back-off; zero before the first
	refused  int       // requests refused since the back-off was last logged
	recent   [recentDigests]uint64
	nrecent  int
}

func newThrottle() *throttle {
	t := &throttle{free: throttleFree, base: throttleBase, max: throttleMax, forget: throttleForget,
		capacity: throttleCapacity, parallel: throttleParallel, queue: throttleQueue, wait: throttleWait,
		now:   time.Now,
		addrs: map[string]*list.Element{}, lru: list.New(), gates: map[string]*gate{}}
	rand.Read(t.key[:])
	return t
}

// addressKey is the throttle's key for a request's RemoteAddr: its IPv4
// address or IPv6 /64, or the whole string when it is not host:port.
func addressKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// digest identifies a failed user and password without keeping either.
func (t *throttle) digest(user, password string) uint64 {
	m := hmac.New(sha256.New, t.key[:])
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(password))
	return binary.LittleEndian.Uint64(m.Sum(nil))
}

// admit decides whether a request of addr may have its password checked,
// waiting for its turn while parallel checks of addr run (until ctx ends
// or for at most wait). When ok, the caller must call exactly one of
// succeeded, failed or release for it. When not ok, wait is how long the
// address should wait (at least a second).
func (t *throttle) admit(ctx context.Context, addr string) (wait time.Duration, ok bool) {
	t.mu.Lock()
	if d, backedOff := t.backedOff(addr, t.now()); backedOff {
		t.mu.Unlock()
		return d, false
	}
	g := t.gates[addr]
	if g == nil {
		g = &gate{turns: make(chan struct{}, t.parallel)}
		t.gates[addr] = g
	}
	if g.users >= t.queue {
		t.refused(addr, t.now())
		t.mu.Unlock()
		return time.Second, false
	}
	g.users++
	t.mu.Unlock()

	timer := time.NewTimer(t.wait)
	defer timer.Stop()
	select {
	case g.turns <- struct{}{}:
	case <-ctx.Done():
		t.mu.Lock()
		t.leave(addr, g, false)
		t.mu.Unlock()
		return time.Second, false
	case <-timer.C:
		t.mu.Lock()
		t.refused(addr, t.now())
		t.leave(addr, g, false)
		t.mu.Unlock()
		return time.Second, false
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	// The back-off may have begun while this request waited.
	now := t.now()
	if d, backedOff := t.backedOff(addr, now); backedOff {
		t.leave(addr, g, true)
		return d, false
	}
	if r := t.lookup(addr, now); r != nil && r.failures >= t.free && len(g.turns) > 1 {
		// Past a back-off: one check at a time.
		t.refused(addr, now)
		t.leave(addr, g, true)
		return time.Second, false
	}
	return 0, true
}

// backedOff reports whether addr is backed off and for how much longer,
// counting the refusal.
func (t *throttle) backedOff(addr string, now time.Time) (time.Duration, bool) {
	r := t.lookup(addr, now)
	if r == nil || !now.Before(r.until) {
		return 0, false
	}
	t.refused(addr, now)
	return max(r.until.Sub(now), time.Second), true
}

// refused counts a refusal of addr, which keeps its record fresh.
func (t *throttle) refused(addr string, now time.Time) {
	if e, ok := t.addrs[addr]; ok {
		r := e.Value.(*record)
		r.refused++
		r.last = now
		t.lru.MoveToFront(e)
	}
}

// leave ends a request's use of g: its turn (when it held one) and its
// place.
func (t *throttle) leave(addr string, g *gate, turn bool) {
	if turn {
		<-g.turns
	}
	if g.users--; g.users == 0 {
		delete(t.gates, addr)
	}
}

// release ends an admitted request that checked nothing (it had no
// credentials).
func (t *throttle) release(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done(addr)
}

// done ends an admitted request's turn.
func (t *throttle) done(addr string) {
	if g := t.gates[addr]; g != nil {
		t.leave(addr, g, true)
	}
}

// succeeded ends an admitted request whose login was right: the address
// is forgotten.
func (t *throttle) succeeded(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done(addr)
	if e, ok := t.addrs[addr]; ok {
		t.lru.Remove(e)
		delete(t.addrs, addr)
	}
}

// failure is what failed reports, for the log.
type failure struct {
	counted  bool          // a new distinct failure (false: a repeat)
	failures int           // distinct failures of the address so far
	backoff  time.Duration // > 0: this failure started a back-off of this length
	refused  int           // requests refused during the previous back-off
}

// failed ends an admitted request whose login was wrong, with digest of
// the credentials tried.
func (t *throttle) failed(addr string, digest uint64, now time.Time) failure {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done(addr)
	r := t.lookup(addr, now)
	if r == nil {
		t.evict(now)
		r = &record{addr: addr}
		t.addrs[addr] = t.lru.PushFront(r)
	} else {
		t.lru.MoveToFront(t.addrs[addr])
	}
	r.last = now
	for i := range r.nrecent {
		if r.recent[i] == digest {
			return failure{failures: r.failures}
		}
	}
	copy(r.recent[1:], r.recent[:recentDigests-1])
	r.recent[0] = digest
	r.nrecent = min(r.nrecent+1, recentDigests)
	r.failures++
	f := failure{counted: true, failures: r.failures}
	if r.failures < t.free {
		return f
	}
	d := t.max
	if shift := r.failures - t.free; shift < 30 {
		d = min(t.base<<shift, t.max)
	}
	backedOff := now.Before(r.until)
	if until := now.Add(d); until.After(r.until) {
		r.until = until
	}
	if !backedOff {
		// A new burst: logged once, with what the last one refused.
		f.backoff, f.refused, r.refused = d, r.refused, 0
	}
	return f
}

// lookup returns addr's record, dropping it first when it is stale.
func (t *throttle) lookup(addr string, now time.Time) *record {
	e, ok := t.addrs[addr]
	if !ok {
		return nil
	}
	r := e.Value.(*record)
	if t.stale(r, now) {
		t.lru.Remove(e)
		delete(t.addrs, addr)
		return nil
	}
	return r
}

func (t *throttle) stale(r *record, now time.Time) bool {
	return !now.Before(r.until) && now.Sub(r.last) >= t.forget
}

// evict makes room for one more record: stale records go first, then the
// least recently failed ones.
func (t *throttle) evict(now time.Time) {
	for e := t.lru.Back(); e != nil && (t.lru.Len() >= t.capacity || t.stale(e.Value.(*record), now)); e = t.lru.Back() {
		t.lru.Remove(e)
		delete(t.addrs, e.Value.(*record).addr)
	}
}

// tracked is the number of addresses remembered.
func (t *throttle) tracked() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lru.Len()
}
