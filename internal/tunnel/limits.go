package tunnel

import (
	"log/slog"
	"sync"
	"time"
)

// Limits of the server role under a flood; a zero ServerConfig field means
// its default.
//
// Every forwarded connection costs at most: the SSH channel's receive
// buffer (x/crypto/ssh buffers what the peer sent and the archive FTP has
// not taken yet, up to the channel window, 2 MiB), the two copy buffers
// (2 × 4 KiB while idle, 2 × 256 KiB once busy; pooled), three goroutines
// and two sockets. Measured with every forward stalled (the peer writing,
// the target never reading; TUNNEL_MEASURE=1 TestMeasureStalledForwards):
// 2.85 MiB of live heap per forward (the window's 32 KiB packets take 40 KiB
// each), up to 4 MiB of heap in use with garbage not yet collected. So
// about 460 MiB live (640 MiB in use) for the DefaultMaxChannelsPerConn
// forwards of one SSH connection, 730 MiB for DefaultMaxChannelsPerName,
// 1.5 GiB (2 GiB) for DefaultMaxForwards. An idle forward costs tens of
// KiB: a flood of channel opens held idle stays near 10 MiB
// (TestChannelFloodFromAPairedPeer). A refused channel costs nothing once
// its refusal is sent.
const (
	// DefaultMaxChannelsPerConn caps the forwarded connections of one SSH
	// connection: PARALLEL goes up to 64 workers, each with a control and
	// a data connection, and some room.
	DefaultMaxChannelsPerConn = 160
	// DefaultMaxChannelsPerName caps the forwarded connections of one
	// connection name across its SSH connections (room for a second one,
	// as while a client reconnects and the old connection drains).
	DefaultMaxChannelsPerName = 256
	// DefaultMaxForwards caps the forwarded connections of the server:
	// four peers copying with PARALLEL = 64 at once.
	DefaultMaxForwards = 512
	// DefaultMaxPreAuth caps the connections not yet authenticated; when
	// one more arrives the oldest is dropped to make room.
	DefaultMaxPreAuth = 64
	// DefaultMaxPreAuthPerSource caps them per source address; when one
	// more arrives from that address its oldest is dropped.
	DefaultMaxPreAuthPerSource = 8
	// DefaultPreAuthTimeout is the server's deadline for the SSH handshake
	// and authentication of a new connection.
	DefaultPreAuthTimeout = 10 * time.Second
	// refusalBurst is how long refusals of one kind are summed up in one
	// log line after the first.
	refusalBurst = 10 * time.Second
)

// burstLog logs the first event of a kind at once, then sums up the rest:
// one line per refusalBurst with their count, while they go on.
type burstLog struct {
	log    *slog.Logger
	period time.Duration

	mu     sync.Mutex
	kinds  map[string]*burst
	closed bool
}

type burst struct {
	msg        string
	args       []any
	suppressed int
	timer      *time.Timer // pending summary; nil when the kind is quiet
}

func newBurstLog(log *slog.Logger, period time.Duration) *burstLog {
	return &burstLog{log: log, period: period, kinds: map[string]*burst{}}
}

// warn logs msg with args at once if no event of kind was logged within
// the period; otherwise it is counted in the next summary line.
func (b *burstLog) warn(kind, msg string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	k := b.kinds[kind]
	if k == nil {
		k = &burst{}
		b.kinds[kind] = k
	}
	k.msg, k.args = msg, args
	if k.timer != nil {
		k.suppressed++
		return
	}
	b.log.Warn(msg, args...)
	k.timer = time.AfterFunc(b.period, func() { b.summary(kind) })
}

// summary logs how many events of kind were not logged in the last
// period, and keeps summing while they go on.
func (b *burstLog) summary(kind string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := b.kinds[kind]
	if k == nil || k.timer == nil {
		return
	}
	if k.suppressed == 0 || b.closed {
		delete(b.kinds, kind)
		return
	}
	b.log.Warn(k.msg+" (more like this)", append(append([]any{}, k.args...), "more", k.suppressed, "within", b.period)...)
	k.suppressed = 0
	k.timer = time.AfterFunc(b.period, func() { b.summary(kind) })
}

// close logs the pending summaries and stops.
func (b *burstLog) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for kind, k := range b.kinds {
		if k.timer != nil {
			k.timer.Stop()
		}
		if k.suppressed > 0 {
			b.log.Warn(k.msg+" (more like this)", append(append([]any{}, k.args...), "more", k.suppressed)...)
		}
		delete(b.kinds, kind)
	}
}
