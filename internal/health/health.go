// Package health tells, per connection on one node, whether replication
// works: "ok", "failing" (since when, how many cycles, the cause and the
// next step), "never ran" or "running" (with the cycle's progress), and how
// far the destination lags. It is the one place these are decided, so that
// STATUS, backupsyncctl, ConfD's jobs, GETLOG, the metrics and systemd's
// status line never disagree.
//
// Lag means one thing everywhere: the age of the oldest stable source data
// that the destination does not yet hold verified. It is 0 only when the
// last cycle that listed both sides found the destination complete, and it
// keeps growing while cycles fail: a cycle that cannot list counts from the
// last time the destination was found complete (or from the oldest file it
// then lacked). Before any cycle has listed both sides, lag counts from the
// start of the first cycle, a lower bound. Files that are still being
// written (not yet stable) are not late and do not count.
package health

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	gosync "sync"
	"time"

	"backupsync/internal/atomicfile"
	"backupsync/internal/display"
	"backupsync/internal/sync"
)

// State is a connection's health on one node.
type State string

// The states, as every surface shows them.
const (
	NeverRan State = "never ran"
	Running  State = "running"
	OK       State = "ok"
	Failing  State = "failing"
)

// Outcome is one finished cycle as health needs it.
type Outcome struct {
	Started, Finished time.Time
	// Failed: the cycle could not run, or some file failed.
	Failed bool
	// Listed: both sides were listed, so BehindSince is measured.
	Listed bool
	// BehindSince is the modification time of the oldest stable source
	// file the destination still lacks; zero when it lacks none.
	BehindSince time.Time
	// Summary is the cycle's one-line report.
	Summary string
	// Cause and Next explain a failed cycle (see runner.Explain).
	Cause, Next string
}

// record is what the tracker keeps of one connection; the exported fields
// survive a restart (a connection failing before it still fails after).
type record struct {
	Last         *Outcome  `json:"last,omitempty"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	Failures     int       `json:"failures,omitempty"`
	LastOK       time.Time `json:"last_ok,omitzero"`
	// LagFrom is when the lag counts from; zero with LagKnown: none.
	LagFrom  time.Time `json:"lag_from,omitzero"`
	LagKnown bool      `json:"lag_known,omitempty"`
	// Complete is when a cycle last found the destination complete.
	Complete time.Time `json:"complete,omitzero"`

	running  bool
	started  time.Time
	progress *sync.Progress
}

// Tracker records the cycles of a node's connections. Its methods are safe
// for concurrent use.
type Tracker struct {
	path string

	mu   gosync.Mutex
	recs map[string]*record
}

// Open returns a tracker that keeps its records in path (a JSON file under
// state_dir), loading what an earlier run left. A missing file is a fresh
// start; an unreadable one is reported and ignored, since health must not
// stop the daemon. An empty path keeps nothing on disk.
func Open(path string) (*Tracker, error) {
	t := &Tracker{path: path, recs: map[string]*record{}}
	if path == "" {
		return t, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return t, nil
	}
	if err == nil {
		err = json.Unmarshal(data, &t.recs)
	}
	if err != nil {
		t.recs = map[string]*record{}
		return t, fmt.Errorf("health: %s not loaded, starting afresh: %w", path, err)
	}
	if t.recs == nil {
		t.recs = map[string]*record{}
	}
	return t, nil
}

func (t *Tracker) rec(conn string) *record {
	r := t.recs[conn]
	if r == nil {
		r = &record{}
		t.recs[conn] = r
	}
	return r
}

// Start notes that a cycle of conn began at at; p counts its progress
// (nil: none shown).
func (t *Tracker) Start(conn string, at time.Time, p *sync.Progress) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.rec(conn)
	r.running, r.started, r.progress = true, at, p
}

// Skip notes that the cycle of conn that Start announced did not run (its
// lock was held by another process): the health stays what it was.
func (t *Tracker) Skip(conn string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.recs[conn]; r != nil {
		r.running, r.progress = false, nil
	}
}

// Finish records a finished cycle of conn and saves the records.
func (t *Tracker) Finish(conn string, o Outcome) error {
	t.mu.Lock()
	r := t.rec(conn)
	r.running, r.progress = false, nil
	first := r.Last == nil
	r.Last = &o
	if o.Failed {
		if r.Failures == 0 {
			r.FailingSince = o.Started
		}
		r.Failures++
	} else {
		r.Failures, r.FailingSince, r.LastOK = 0, time.Time{}, o.Finished
	}
	switch {
	case o.Listed && o.BehindSince.IsZero():
		r.LagFrom, r.LagKnown, r.Complete = time.Time{}, true, o.Started
	case o.Listed:
		r.LagFrom, r.LagKnown = o.BehindSince, true
	case r.LagKnown && r.LagFrom.IsZero():
		// Complete when last seen; nothing is known since.
		r.LagFrom = r.Complete
	case first || !r.LagKnown:
		r.LagFrom, r.LagKnown = o.Started, true
	}
	data, err := json.MarshalIndent(t.recs, "", "  ")
	t.mu.Unlock()
	if t.path == "" || err != nil {
		return err
	}
	// Not synced: a power cut may lose the newest record, which only
	// forgets one cycle's outcome.
	if err := atomicfile.WriteUnsynced(t.path, data, 0o600); err != nil {
		return fmt.Errorf("health: save: %w", err)
	}
	return nil
}

// Health is one connection's health on this node at one moment.
type Health struct {
	Connection string `json:"connection"`
	State      State  `json:"health"`
	// Failing is true while the last cycle failed, also while a new
	// cycle runs: a retry is not a recovery, and State stays Failing.
	Failing bool `json:"failing"`
	// Running: a cycle runs now (State is Running unless Failing).
	Running bool `json:"running"`
	// RunningSince is when the running cycle started.
	RunningSince time.Time `json:"running_since,omitzero"`
	// Since: failing since the start of the first failed cycle in a row;
	// running since the cycle's start; ok since the last good cycle ended.
	Since time.Time `json:"since,omitzero"`
	// FailingSince and Failures describe the failures in a row, while Failing.
	FailingSince time.Time `json:"failing_since,omitzero"`
	Failures     int       `json:"failed_cycles,omitempty"`
	Cause        string    `json:"cause,omitempty"`
	Next         string    `json:"next_step,omitempty"`
	// Lag is valid when LagKnown (see the package doc).
	Lag         time.Duration          `json:"-"`
	LagSeconds  float64                `json:"lag_seconds"`
	LagKnown    bool                   `json:"lag_known"`
	LastCycle   time.Time              `json:"last_cycle,omitzero"`
	LastSummary string                 `json:"last_summary,omitempty"`
	LastOK      time.Time              `json:"last_ok,omitzero"`
	NextRun     time.Time              `json:"next_run,omitzero"`
	Progress    *sync.ProgressSnapshot `json:"progress,omitempty"`
}

// Get is conn's health at now. NextRun is the caller's to fill.
func (t *Tracker) Get(conn string, now time.Time) Health {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := Health{Connection: conn, State: NeverRan}
	r := t.recs[conn]
	if r == nil {
		return h
	}
	h.LastOK = r.LastOK
	if o := r.Last; o != nil {
		h.LastCycle, h.LastSummary = o.Finished, o.Summary
		if o.Failed {
			h.State, h.Failing, h.Since, h.Failures, h.Cause, h.Next = Failing, true, r.FailingSince, r.Failures, o.Cause, o.Next
			h.FailingSince = r.FailingSince
		} else {
			h.State, h.Since = OK, r.LastOK
		}
	}
	if r.LagKnown {
		h.LagKnown = true
		if !r.LagFrom.IsZero() {
			h.Lag = now.Sub(r.LagFrom)
		}
		h.LagSeconds = max(0, h.Lag.Seconds())
	}
	if r.running {
		h.Running, h.RunningSince = true, r.started
		if !h.Failing {
			h.State, h.Since = Running, r.started
		}
		if r.progress != nil {
			s := r.progress.Snapshot(now)
			h.Progress = &s
		}
	}
	return h
}

// Line is h in one line, health first:
//
//	ok, lag 0s, last cycle 2026-12-06T01:20:03Z, next run 2026-12-06T01:22:00Z
//	failing since 2026-12-06T01:20:00Z (3 cycles), lag 6m12s: <cause>; next: <step>
//	running since 2026-12-06T01:22:00Z: 3 of 10 files, 1.2 MiB of 4.0 MiB, 45.3 MiB/s, ETA 1m05s, lag 2m00s
//	failing since 2026-12-06T01:20:00Z (3 cycles), retrying: listing both sides, lag 6m12s: <cause>; next: <step>
//	never ran, next run 2026-12-06T01:22:00Z
func (h Health) Line() string {
	var b strings.Builder
	b.WriteString(string(h.State))
	if h.State == Failing {
		fmt.Fprintf(&b, " since %s (%d cycle%s)", display.Time(h.FailingSince), h.Failures, plural(h.Failures))
		if h.Running {
			b.WriteString(", retrying")
		}
	}
	if h.Running {
		if h.State == Running {
			fmt.Fprintf(&b, " since %s", display.Time(h.RunningSince))
		}
		if p := h.Progress; p != nil {
			fmt.Fprintf(&b, ": %s", ProgressText(*p))
		}
	}
	if h.LagKnown {
		fmt.Fprintf(&b, ", lag %s", display.Duration(h.Lag))
	}
	if h.State == OK {
		fmt.Fprintf(&b, ", last cycle %s", display.Time(h.LastCycle))
	}
	if !h.NextRun.IsZero() && h.State != Failing {
		fmt.Fprintf(&b, ", next run %s", display.Time(h.NextRun))
	}
	if h.Failing {
		fmt.Fprintf(&b, ": %s; next: %s", h.Cause, h.Next)
	}
	return b.String()
}

// ProgressText is a running cycle's progress in one phrase.
func ProgressText(p sync.ProgressSnapshot) string {
	if p.Started.IsZero() {
		return "listing both sides"
	}
	s := fmt.Sprintf("%d of %d files, %s of %s, %s", p.FilesDone, p.FilesTotal,
		display.Bytes(p.BytesDone), display.Bytes(p.BytesTotal), display.Rate(p.Rate))
	if eta := p.ETA(); eta > 0 {
		s += ", ETA " + display.Duration(eta)
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
