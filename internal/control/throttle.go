package control

import (
	"container/list"
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
	// throttleChecking bounds the password checks (bcrypt) in flight for
	// one address, above what backupsyncctl sends at once (32).
	throttleChecking = 64
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
// is not counted again. Checks in flight per address are bounded by
// checking, records by capacity.
type throttle struct {
	free      int
	base, max time.Duration
	forget    time.Duration
	capacity  int
	checking  int
	key       [32]byte // keys the digests of failed credentials
	now       func() time.Time

	mu       sync.Mutex
	addrs    map[string]*list.Element // of *record
	lru      *list.List               // most recently failed or refused first
	inFlight map[string]int           // password checks running, per address
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
		capacity: throttleCapacity, checking: throttleChecking,
		now:   time.Now,
		addrs: map[string]*list.Element{}, lru: list.New(), inFlight: map[string]int{}}
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

// admit decides whether a request of addr may have its password checked.
// When ok, the caller must call exactly one of succeeded, failed or
// release for it. When not ok, wait is how long the address should wait
// (at least a second).
func (t *throttle) admit(addr string, now time.Time) (wait time.Duration, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.lookup(addr, now)
	refuse := func(d time.Duration) (time.Duration, bool) {
		if r != nil {
			r.refused++
			r.last = now
			t.lru.MoveToFront(t.addrs[addr])
		}
		return max(d, time.Second), false
	}
	switch {
	case r != nil && now.Before(r.until):
		return refuse(r.until.Sub(now))
	case r != nil && r.failures >= t.free && t.inFlight[addr] > 0:
		// Past the back-off: one check at a time.
		return refuse(time.Second)
	case t.inFlight[addr] >= t.checking:
		return refuse(time.Second)
	}
	t.inFlight[addr]++
	return 0, true
}

// release ends an admitted request that checked nothing (it had no
// credentials).
func (t *throttle) release(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done(addr)
}

func (t *throttle) done(addr string) {
	if t.inFlight[addr] <= 1 {
		delete(t.inFlight, addr)
	} else {
		t.inFlight[addr]--
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
	r.until = now.Add(d)
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
