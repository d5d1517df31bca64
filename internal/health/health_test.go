package health

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"backupsync/internal/sync"
)

var t0 = time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func finish(t *testing.T, tr *Tracker, conn string, o Outcome) {
	t.Helper()
	if err := tr.Finish(conn, o); err != nil {
		t.Fatal(err)
	}
}

func loginFailure(start int) Outcome {
	return Outcome{Started: at(start), Finished: at(start), Failed: true,
		Cause: `the destination's FTP server refused the login of REMOTE_URL: login as "FTPbackup" refused (530 Login incorrect)`,
		Next:  "check the user and password in REMOTE_URL of Connection1"}
}

func TestNeverRan(t *testing.T) {
	tr, _ := Open("")
	h := tr.Get("Connection1", at(0))
	if h.State != NeverRan || h.LagKnown || h.Failing {
		t.Fatalf("fresh: %+v", h)
	}
	h.NextRun = at(2)
	if got := h.Line(); got != "never ran, next run 2026-12-06T01:02:00Z" {
		t.Errorf("line %q", got)
	}
}

// A wrong password from the first cycle on: failing, the cycles counted,
// the lag growing from the first attempt, never 0.
func TestWrongPasswordFromTheStart(t *testing.T) {
	tr, _ := Open("")
	var lags []time.Duration
	for i := range 3 {
		finish(t, tr, "Connection1", loginFailure(2*i))
		h := tr.Get("Connection1", at(2*i+1))
		if h.State != Failing || !h.Failing || h.Failures != i+1 || !h.FailingSince.Equal(at(0)) {
			t.Fatalf("cycle %d: %+v", i, h)
		}
		lags = append(lags, h.Lag)
	}
	if !(lags[0] > 0 && lags[1] > lags[0] && lags[2] > lags[1]) {
		t.Errorf("lag must grow while failing: %v", lags)
	}
	line := tr.Get("Connection1", at(5)).Line()
	for _, want := range []string{"failing since 2026-12-06T01:00:00Z (3 cycles)", "lag 5m00s", "530 Login incorrect", "next: check the user and password"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	if !strings.HasPrefix(line, "failing") {
		t.Errorf("health must come first: %q", line)
	}
}

// Synced, then the remote goes away: lag counts from the last time the
// destination was complete, and recovery brings it back to 0.
func TestLagAfterCompleteThenUnreachable(t *testing.T) {
	tr, _ := Open("")
	finish(t, tr, "C", Outcome{Started: at(0), Finished: at(1), Listed: true})
	if h := tr.Get("C", at(30)); h.State != OK || h.Lag != 0 || !h.LagKnown {
		t.Fatalf("complete: %+v", h)
	}
	finish(t, tr, "C", Outcome{Started: at(2), Finished: at(2), Failed: true, Cause: "unreachable", Next: "check"})
	if h := tr.Get("C", at(10)); h.Lag != 10*time.Minute {
		t.Errorf("lag after a failed cycle = %v, want 10m (since the complete listing at 0)", h.Lag)
	}
	// A listing that found a 3-hour-old file missing, and a failure after it.
	finish(t, tr, "C", Outcome{Started: at(12), Finished: at(13), Listed: true, Failed: true, BehindSince: at(-180), Cause: "1 file failed", Next: "see GETLOG"})
	finish(t, tr, "C", Outcome{Started: at(14), Finished: at(14), Failed: true, Cause: "unreachable", Next: "check"})
	if h := tr.Get("C", at(20)); h.Lag != 200*time.Minute || h.Failures != 3 {
		t.Errorf("lag = %v (want 3h20m), failures %d", h.Lag, h.Failures)
	}
	finish(t, tr, "C", Outcome{Started: at(22), Finished: at(23), Listed: true})
	if h := tr.Get("C", at(24)); h.State != OK || h.Lag != 0 || h.Failures != 0 || h.Cause != "" {
		t.Errorf("recovered: %+v", h)
	}
}

// A retry is not a recovery: while a new cycle runs after failures the
// health still says failing, with the cycle's progress.
func TestRunningShowsProgressAndFailing(t *testing.T) {
	tr, _ := Open("")
	finish(t, tr, "C", loginFailure(0))
	p := &sync.Progress{}
	tr.Start("C", at(2), p)
	h := tr.Get("C", at(3))
	if h.State != Failing || !h.Running || h.Progress == nil {
		t.Fatalf("retrying: %+v", h)
	}
	if line := h.Line(); !strings.HasPrefix(line, "failing since 2026-12-06T01:00:00Z (1 cycle), retrying: listing both sides, lag 3m00s: ") {
		t.Errorf("line %q", line)
	}
	// The retry succeeds and the next cycle runs: running, with progress.
	tr.Finish("C", Outcome{Started: at(2), Finished: at(4), Listed: true})
	tr.Start("C", at(5), p)
	p.Begin(10, 4<<20, at(5))
	p.Moved(1 << 20)
	h = tr.Get("C", at(6))
	if h.State != Running || h.Failing {
		t.Fatalf("running: %+v", h)
	}
	if line := h.Line(); !strings.HasPrefix(line, "running since 2026-12-06T01:05:00Z: 0 of 10 files, 1.0 MiB of 4.0 MiB, 17.1 KiB/s, ETA 3m00s, lag 0s") {
		t.Errorf("line %q", line)
	}
}

// A cycle that found its lock held (sync-once runs the connection) did not
// run: the health is what it was before it.
func TestSkippedCycleLeavesHealthAlone(t *testing.T) {
	tr, _ := Open("")
	finish(t, tr, "C", Outcome{Started: at(0), Finished: at(1), Listed: true})
	tr.Start("C", at(2), &sync.Progress{})
	tr.Skip("C")
	if h := tr.Get("C", at(3)); h.State != OK || h.Running {
		t.Errorf("after a skipped cycle: %+v", h)
	}
}

// Failures survive a restart of the daemon: a connection failing before it
// is not "never ran" after it.
func TestRestartKeepsHealth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "health.json")
	tr, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	finish(t, tr, "C", loginFailure(0))
	finish(t, tr, "C", loginFailure(2))
	tr2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if h := tr2.Get("C", at(4)); h.State != Failing || h.Failures != 2 || h.Lag != 4*time.Minute {
		t.Errorf("after restart: %+v", h)
	}
}

func TestCorruptFileStartsAfresh(t *testing.T) {
	path := filepath.Join(t.TempDir(), "health.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	tr, err := Open(path)
	if err == nil || tr == nil {
		t.Fatalf("Open of a corrupt file: %v, %v", tr, err)
	}
	if h := tr.Get("C", at(0)); h.State != NeverRan {
		t.Errorf("%+v", h)
	}
}
