package schedule

import (
	"context"
	"errors"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"backupsync/internal/config"
	"backupsync/internal/sync"
)

func conns(t *testing.T, cycle string, names ...string) []config.Connection {
	t.Helper()
	var src strings.Builder
	for _, n := range names {
		src.WriteString(n + "\n{\nDATABASE_NAME = DB\nSTART_CYCLE = " + cycle + "\nLOCAL_URL = ftp://u:p@%s/v0003\nREMOTE_URL = ftp://u:p@%s/v0002\nREMOTE_NODES = 127.0.0.1\n}\n")
	}
	src.WriteString("Server\n{\nSSH = server\n}\n")
	cs, err := config.ParseConnections("t.cfg", []byte(src.String()))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// recorder is a CycleFunc that counts cycles and can block until released.
type recorder struct {
	mu      gosync.Mutex
	cycles  map[string]int
	block   chan struct{} // nil: cycles return at once
	started chan string
	drained atomic.Int32
}

func (r *recorder) run(ctx context.Context, drain <-chan struct{}, c config.Connection) (sync.Report, error) {
	r.mu.Lock()
	r.cycles[c.Name]++
	r.mu.Unlock()
	if r.started != nil {
		r.started <- c.Name
	}
	if r.block != nil {
		select {
		case <-r.block:
		case <-drain:
			r.drained.Add(1)
		case <-ctx.Done():
			return sync.Report{Connection: c.Name, Error: "cancelled"}, ctx.Err()
		}
	}
	if c.Name == "Panics" {
		panic("boom")
	}
	return sync.Report{Connection: c.Name}, nil
}

func (r *recorder) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cycles[name]
}

func TestCronRunsEveryCopyingConnection(t *testing.T) {
	r := &recorder{cycles: map[string]int{}}
	s := New(r.run, time.UTC, nil)
	s.Set(conns(t, "@every 1s", "A", "B"))
	s.Start()
	defer s.Stop(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for r.count("A") < 2 || r.count("B") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("cycles %v", r.cycles)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.count("Server") != 0 {
		t.Error("a server connection was run")
	}
	if st := s.Status("A"); !st.Scheduled || st.Next.IsZero() || st.Last == nil {
		t.Errorf("status %+v", st)
	}
}

func TestNoOverlapAndDrainOnReload(t *testing.T) {
	r := &recorder{cycles: map[string]int{}, block: make(chan struct{}), started: make(chan string, 10)}
	s := New(r.run, time.UTC, nil)
	s.Set(conns(t, "@hourly", "A"))
	if !s.RunNow("A") {
		t.Fatal("RunNow did not start a cycle")
	}
	<-r.started
	if s.RunNow("A") {
		t.Error("a second cycle of A started while one runs")
	}
	if !s.Status("A").Running {
		t.Error("status does not say running")
	}
	// A changed schedule drains the running cycle and schedules anew.
	s.Set(conns(t, "@daily", "A"))
	deadline := time.Now().Add(5 * time.Second)
	for r.drained.Load() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r.drained.Load() != 1 {
		t.Fatal("the running cycle was not drained")
	}
	// Unchanged configuration: nothing drained.
	s.Set(conns(t, "@daily", "A"))
	s.Stop(context.Background())
	if s.RunNow("A") {
		t.Error("a cycle started after Stop")
	}
}

func TestStopCancelsAtTheDeadline(t *testing.T) {
	r := &recorder{cycles: map[string]int{}, block: make(chan struct{}), started: make(chan string, 1)}
	stubborn := func(ctx context.Context, drain <-chan struct{}, c config.Connection) (sync.Report, error) {
		r.started <- c.Name
		<-ctx.Done() // ignores drain
		return sync.Report{}, ctx.Err()
	}
	var got error
	s := New(stubborn, time.UTC, nil)
	s.OnCycle = func(c config.Connection, rep sync.Report, err error) { got = err }
	s.Set(conns(t, "@hourly", "A"))
	s.RunNow("A")
	<-r.started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	s.Stop(ctx)
	if !errors.Is(got, context.Canceled) {
		t.Errorf("cycle ended with %v", got)
	}
}

func TestPanicIsRecoveredAndReported(t *testing.T) {
	r := &recorder{cycles: map[string]int{}}
	s := New(r.run, time.UTC, nil)
	done := make(chan error, 1)
	s.OnCycle = func(c config.Connection, rep sync.Report, err error) { done <- err }
	s.Set(conns(t, "@hourly", "Panics"))
	s.RunNow("Panics")
	if err := <-done; err == nil || !strings.Contains(err.Error(), "panicked: boom") {
		t.Errorf("err %v", err)
	}
	if st := s.Status("Panics"); st.Last == nil || !strings.Contains(st.Last.Error, "internal error") {
		t.Errorf("status %+v", st)
	}
	s.Stop(context.Background())
}

func TestExclusiveNeverOverlapsAScheduledCycle(t *testing.T) {
	r := &recorder{cycles: map[string]int{}, block: make(chan struct{}), started: make(chan string, 10)}
	s := New(r.run, time.UTC, nil)
	s.Set(conns(t, "@hourly", "A"))
	ran := false
	if !s.Exclusive("A", func() {
		ran = true
		if s.RunNow("A") {
			t.Error("a scheduled cycle started beside an exclusive one")
		}
	}) || !ran {
		t.Fatal("Exclusive did not run")
	}
	s.RunNow("A")
	<-r.started
	if s.Exclusive("A", func() { t.Error("ran beside a running cycle") }) {
		t.Error("Exclusive reported running beside a running cycle")
	}
	close(r.block)
	s.Stop(context.Background())
	if !s.Exclusive("unscheduled", func() {}) {
		t.Error("an unscheduled name must run at once")
	}
}
