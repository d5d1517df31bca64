package sync

import (
	"fmt"
	"strings"
	"time"

	"backupsync/internal/archive"
	"backupsync/internal/display"
)

// A Report is what one cycle did, for logs, STATUS and metrics.
type Report struct {
	Connection string    `json:"connection"`
	Node       int       `json:"node"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	DryRun     bool      `json:"dry_run,omitempty"`

	Copied       int   `json:"copied"`
	Resumed      int   `json:"resumed"`
	Replaced     int   `json:"replaced"`
	Verified     int   `json:"verified_md5"`
	Bytes        int64 `json:"bytes"`
	UpToDate     int   `json:"up_to_date"`
	Deferred     int   `json:"deferred"`
	Deleted      int   `json:"deleted"`
	DeletedTemps int   `json:"deleted_temps"`

	Failed []Failure `json:"failed,omitempty"`
	// DeferredFiles says why each deferred file waits.
	DeferredFiles []Failure `json:"deferred_files,omitempty"`
	Notes         []string  `json:"notes,omitempty"`
	// LagSeconds is the age of the oldest stable source file that the
	// destination still lacks after the cycle; 0 when it lacks none.
	LagSeconds float64 `json:"lag_seconds"`
	// BehindSince is the modification time of that file; zero when the
	// destination lacks no stable file (or the cycle listed nothing).
	BehindSince time.Time `json:"behind_since,omitzero"`
	// PendingBytes is what the destination still lacks after the cycle,
	// deferred files included.
	PendingBytes int64 `json:"pending_bytes"`
	// Error is set when the cycle could not run (a listing failed).
	Error string `json:"error,omitempty"`
}

func (r *Report) finish(at time.Time, res Result, p Plan) {
	r.Finished = at
	r.Copied, r.Resumed, r.Replaced, r.Verified = res.Copied, res.Resumed, res.Replaced, res.Verified
	r.Bytes, r.Deleted, r.DeletedTemps = res.Bytes, res.Deleted, res.DeletedTemps
	r.UpToDate, r.Notes, r.Failed = p.UpToDate, p.Notes, res.Failed
	r.Deferred = len(res.Deferred)
	for _, a := range res.Deferred {
		r.DeferredFiles = append(r.DeferredFiles, Failure{Path: a.Path, Op: a.Op.String(), Error: a.Reason})
	}
	// What the destination still lacks: copies that did not complete (failed,
	// held back, never started) and deferred files. Lag counts the stable
	// ones only: a file still being written is not late.
	var oldest time.Time
	for _, a := range p.Actions {
		stable := false
		switch a.Op {
		case OpCopy, OpResume, OpReplace:
			if res.Completed[a.Path] {
				continue
			}
			stable = true
			r.PendingBytes += a.Size - a.From
		case OpDefer:
			stable = strings.HasPrefix(a.Reason, "set incomplete")
			r.PendingBytes += a.Size
		default:
			continue
		}
		if !stable {
			continue
		}
		t := a.ModTime
		if t.IsZero() {
			t = p.Snapshot.Files[a.Path].Since
		}
		if !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
			oldest = t
		}
	}
	if !oldest.IsZero() {
		r.BehindSince = oldest
		r.LagSeconds = max(0, at.Sub(oldest).Seconds())
	}
}

// Duration is how long the cycle took.
func (r Report) Duration() time.Duration { return r.Finished.Sub(r.Started) }

// OK reports whether the cycle ran and every file it tried succeeded.
func (r Report) OK() bool { return r.Error == "" && len(r.Failed) == 0 }

// Summary is the one line a cycle logs when Verbose is off.
func (r Report) Summary() string {
	d := r.Duration()
	rate := 0.0
	if d > 0 {
		rate = float64(r.Bytes) / d.Seconds() / (1 << 20)
	}
	s := fmt.Sprintf("%s node_%d: copied %d (resumed %d, replaced %d, md5-verified %d), %s in %s (%.1f MiB/s), up to date %d, deferred %d, deleted %d, failed %d, lag %s",
		r.Connection, r.Node, r.Copied+r.Resumed+r.Replaced, r.Resumed, r.Replaced, r.Verified,
		display.Bytes(r.Bytes), d.Round(time.Millisecond), rate, r.UpToDate, r.Deferred, r.Deleted, len(r.Failed),
		display.Duration(time.Duration(r.LagSeconds)*time.Second))
	if r.Error != "" {
		s += ": " + archive.DisplayName(strings.ReplaceAll(r.Error, "\n", "; "))
	}
	return s
}
