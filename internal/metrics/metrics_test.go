package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
		`backupsync_replication_lag_seconds{connection="Connection1"} 42`,
		`backupsync_pending_bytes{connection="Connection1"} 7`,
		`backupsync_tunnel_up{connection="Connection1"} 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
