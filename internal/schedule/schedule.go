// Package schedule runs each active copying connection on its START_CYCLE:
// never two cycles of one connection at once, a panicking cycle recovered
// and reported, and a reload that gently drains the cycles of connections
// that changed or went away.
package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	gosync "sync"
	"time"

	"github.com/robfig/cron/v3"

	"backupsync/internal/config"
	"backupsync/internal/sync"
)

// CycleFunc runs one cycle of c. Closing drain asks it to finish the files
// in flight and start no more; cancelling ctx stops it at once.
type CycleFunc func(ctx context.Context, drain <-chan struct{}, c config.Connection) (sync.Report, error)

// Scheduler runs connections on their cron schedules. Its methods are safe
// for concurrent use.
type Scheduler struct {
	run    CycleFunc
	logger *slog.Logger
	cron   *cron.Cron
	// OnCycle, if set, is called after every cycle (from the cycle's goroutine).
	OnCycle func(c config.Connection, r sync.Report, err error)

	mu     gosync.Mutex
	jobs   map[string]*job
	closed bool // set by Stop: no cycle starts after it
	wg     gosync.WaitGroup
	base   context.Context
	stop   context.CancelFunc
}

type job struct {
	conn config.Connection
	key  string
	id   cron.EntryID

	mu      gosync.Mutex
	running bool
	drain   chan struct{}
	last    *sync.Report
	lastErr error
}

// New makes a scheduler that runs cycles with run; loc is the zone of
// schedules without CRON_TZ (the node's, time.Local, in production).
func New(run CycleFunc, loc *time.Location, logger *slog.Logger) *Scheduler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	base, stop := context.WithCancel(context.Background())
	return &Scheduler{
		run: run, logger: logger, jobs: map[string]*job{}, base: base, stop: stop,
		cron: cron.New(cron.WithLocation(loc), cron.WithLogger(cron.DiscardLogger)),
	}
}

// Start starts running schedules.
func (s *Scheduler) Start() { s.cron.Start() }

// Set makes conns the scheduled connections (only copying ones run): new
// ones are added, those gone or changed are removed — a running cycle of
// theirs is drained — and changed ones are added again.
func (s *Scheduler) Set(conns []config.Connection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]config.Connection{}
	for _, c := range conns {
		if c.Role.Copies() && c.CronSchedule() != nil {
			want[c.Name] = c
		}
	}
	for name, j := range s.jobs {
		if c, ok := want[name]; ok && identity(c) == j.key {
			delete(want, name)
			continue
		}
		s.cron.Remove(j.id)
		j.drainRunning()
		delete(s.jobs, name)
		s.logger.Info("connection unscheduled", "connection", name)
	}
	for name, c := range want {
		j := &job{conn: c, key: identity(c)}
		j.id = s.cron.Schedule(c.CronSchedule(), cron.FuncJob(func() { s.fire(j) }))
		s.jobs[name] = j
		s.logger.Info("connection scheduled", "connection", name, "schedule", c.Schedule)
	}
}

// identity is what makes two configurations of a connection the same.
func identity(c config.Connection) string {
	return config.Format([]config.Connection{c}) + "\x00" + c.LocalURL.Password + "\x00" + c.RemoteURL.Password
}

// RunNow starts a cycle of name now, in the background, unless one is
// running. It reports whether it started one.
func (s *Scheduler) RunNow(name string) bool {
	s.mu.Lock()
	j := s.jobs[name]
	s.mu.Unlock()
	return j != nil && s.start(j)
}

// Exclusive runs f in the caller's goroutine as a cycle of name: no
// scheduled cycle of name starts while f runs, and f does not run while one
// is running (Exclusive then returns false). A name that is not scheduled
// runs f at once.
func (s *Scheduler) Exclusive(name string, f func()) bool {
	s.mu.Lock()
	j := s.jobs[name]
	s.mu.Unlock()
	if j == nil {
		f()
		return true
	}
	j.mu.Lock()
	if j.running {
		j.mu.Unlock()
		return false
	}
	j.running = true
	j.mu.Unlock()
	defer func() {
		j.mu.Lock()
		j.running = false
		j.mu.Unlock()
	}()
	f()
	return true
}

func (s *Scheduler) fire(j *job) {
	if !s.start(j) {
		s.logger.Warn("previous cycle still running: this one is skipped", "connection", j.conn.Name)
	}
}

// start runs a cycle of j in a goroutine unless one is running.
func (s *Scheduler) start(j *job) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	j.mu.Lock()
	if j.running || s.closed {
		j.mu.Unlock()
		return false
	}
	j.running = true
	j.drain = make(chan struct{})
	drain := j.drain
	j.mu.Unlock()

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		rep, err := s.runSafely(drain, j.conn)
		j.mu.Lock()
		j.running, j.last, j.lastErr = false, &rep, err
		j.mu.Unlock()
		if s.OnCycle != nil {
			s.OnCycle(j.conn, rep, err)
		}
	}()
	return true
}

// runSafely runs a cycle and turns a panic into an error.
func (s *Scheduler) runSafely(drain <-chan struct{}, c config.Connection) (rep sync.Report, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("cycle panicked", "connection", c.Name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			rep = sync.Report{Connection: c.Name, Started: time.Now(), Finished: time.Now(), Error: fmt.Sprintf("internal error: %v", r)}
			err = fmt.Errorf("cycle of %s panicked: %v", c.Name, r)
		}
	}()
	return s.run(s.base, drain, c)
}

func (j *job) drainRunning() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.running && j.drain != nil {
		select {
		case <-j.drain:
		default:
			close(j.drain)
		}
	}
}

// Status is what the scheduler knows of one connection.
type Status struct {
	Scheduled bool
	Running   bool
	Next      time.Time
	Last      *sync.Report
	LastErr   error
}

// Status reports on connection name.
func (s *Scheduler) Status(name string) Status {
	s.mu.Lock()
	j := s.jobs[name]
	s.mu.Unlock()
	if j == nil {
		return Status{}
	}
	st := Status{Scheduled: true, Next: s.cron.Entry(j.id).Next}
	j.mu.Lock()
	st.Running, st.Last, st.LastErr = j.running, j.last, j.lastErr
	j.mu.Unlock()
	return st
}

// Stop stops scheduling and drains every running cycle: files in flight
// finish; when ctx is done first, the cycles are cancelled (their temp
// files stay for resume). It returns when no cycle runs any more.
func (s *Scheduler) Stop(ctx context.Context) {
	<-s.cron.Stop().Done()
	s.mu.Lock()
	s.closed = true
	for _, j := range s.jobs {
		j.drainRunning()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.stop()
		<-done
	}
	s.stop()
}
