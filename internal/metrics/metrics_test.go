package metrics

import (
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"backupsync/internal/health"
	"backupsync/internal/sync"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

func TestObserve(t *testing.T) {
	m := New()
	done := time.Unix(1764072000, 0)
	m.Observe("Connection1", sync.Report{Copied: 3, Resumed: 1, Bytes: 4096, Deleted: 2, Deferred: 1, LagSeconds: 0, PendingBytes: 100, Finished: done}, true, true)
	m.Observe("Connection1", sync.Report{Copied: 1, Bytes: 10, Failed: []sync.Failure{{Path: "x"}}, LagSeconds: 42, PendingBytes: 7}, true, true)
	m.Observe("Connection1", sync.Report{Error: "list destination: refused"}, true, false)
	out := scrape(t, m)
	for _, want := range []string{
		`backupsync_cycles_total{connection="Connection1",result="ok"} 1`,
		`backupsync_cycles_total{connection="Connection1",result="failed"} 1`,
		`backupsync_cycles_total{connection="Connection1",result="error"} 1`,
		`backupsync_files_copied_total{connection="Connection1"} 5`,
		`backupsync_bytes_copied_total{connection="Connection1"} 4106`,
		`backupsync_files_deleted_total{connection="Connection1"} 2`,
		`backupsync_file_failures_total{connection="Connection1"} 1`,
		`backupsync_files_deferred{connection="Connection1"} 0`,
		`backupsync_last_success_timestamp_seconds{connection="Connection1"} 1.764072e+09`,
		`backupsync_pending_bytes{connection="Connection1"} 7`,
		`backupsync_tunnel_up{connection="Connection1"} 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// A failing connection is down and its lag grows between scrapes, though
// no cycle reports in between.
func TestHealthAtScrapeTime(t *testing.T) {
	m := New()
	tr, _ := health.Open("")
	start := time.Now().Add(-10 * time.Minute)
	if err := tr.Finish("Connection1", health.Outcome{Started: start, Finished: start, Failed: true, Cause: "530", Next: "fix"}); err != nil {
		t.Fatal(err)
	}
	tr.Finish("Connection2", health.Outcome{Started: start, Finished: start, Listed: true})
	now := time.Now()
	m.WatchHealth(func(time.Time) []health.Health {
		now = now.Add(time.Minute)
		return []health.Health{tr.Get("Connection1", now), tr.Get("Connection2", now)}
	})
	first, second := scrape(t, m), scrape(t, m)
	for _, want := range []string{
		`backupsync_connection_up{connection="Connection1"} 0`,
		`backupsync_connection_up{connection="Connection2"} 1`,
		`backupsync_connection_health{connection="Connection1",health="failing"} 1`,
		`backupsync_connection_health{connection="Connection1",health="ok"} 0`,
		`backupsync_replication_lag_seconds{connection="Connection2"} 0`,
	} {
		if !strings.Contains(second, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if lagOf(t, first, "Connection1") >= lagOf(t, second, "Connection1") {
		t.Errorf("lag of a failing connection must grow: %v then %v", lagOf(t, first, "Connection1"), lagOf(t, second, "Connection1"))
	}
}

func lagOf(t *testing.T, out, conn string) float64 {
	t.Helper()
	prefix := `backupsync_replication_lag_seconds{connection="` + conn + `"} `
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no lag of %s in:\n%s", conn, out)
	return 0
}
