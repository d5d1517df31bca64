package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"testing"
	"time"
)

// Log lines carry their time in UTC whatever the machine's zone.
func TestLogTimeUTC(t *testing.T) {
	var log, stderr bytes.Buffer
	h := newHandler(&log, &stderr, true)
	r := slog.NewRecord(time.Date(2026, 12, 6, 2, 20, 3, 0, time.FixedZone("CET", 3600)), slog.LevelInfo, "cycle done", 0)
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^time=2026-12-06T01:20:03\.000Z level=INFO msg="cycle done"\n$`).MatchString(log.String()) {
		t.Errorf("plugin log: %q", log.String())
	}
	if !regexp.MustCompile(`"time":"2026-12-06T01:20:03Z"`).MatchString(stderr.String()) {
		t.Errorf("stderr JSON: %q", stderr.String())
	}
}
