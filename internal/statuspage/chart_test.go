package statuspage

import (
	"strings"
	"testing"
	"time"

	"backupsync/internal/history"
)

func TestNiceScales(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{0, time.Minute}, {59 * time.Second, time.Minute}, {61 * time.Second, 2 * time.Minute},
		{3*time.Hour + 5*time.Minute, 4 * time.Hour}, {25 * time.Hour, 48 * time.Hour}, {50 * time.Hour, 96 * time.Hour},
	} {
		if got := niceDuration(tc.in); got != tc.want {
			t.Errorf("niceDuration(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want int64 }{
		{0, 4 << 10}, {4 << 10, 4 << 10}, {5 << 10, 8 << 10}, {1000 << 10, 1 << 20}, {3 << 30, 4 << 30}, {1 << 60, 1 << 60}, {1 << 62, 1 << 62},
	} {
		if got := niceBytes(tc.in); got != tc.want {
			t.Errorf("niceBytes(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestChartsOfAWindow(t *testing.T) {
	s := []series{{Node: "n0011", Color: "#2563eb", Points: []history.Point{
		{Finished: now.Add(-48 * time.Hour), LagSeconds: 9999, Bytes: 1 << 30, Seconds: 10, OK: true}, // outside the day
		{Finished: now.Add(-2 * time.Hour), LagSeconds: 60, Bytes: 10 << 20, Seconds: 10, OK: true},
		{Finished: now.Add(-time.Hour), LagSeconds: -1, OK: false}, // lag unknown: breaks the line
		{Finished: now.Add(-30 * time.Minute), LagSeconds: 600, Bytes: 0, Seconds: 5, OK: false},
		{Finished: now.Add(-10 * time.Minute), LagSeconds: 0, Bytes: 30 << 20, Seconds: 10, OK: true},
	}}}
	lag := lagChart("Lag", day, now, s)
	if lag.Empty != "" || len(lag.Lines) != 2 || len(lag.Dots) != 1 || !strings.Contains(lag.Caption, "largest lag 10m00s (n0011") {
		t.Errorf("lag chart: %d lines, %d dots, %q %q", len(lag.Lines), len(lag.Dots), lag.Caption, lag.Empty)
	}
	if got := lag.YTicks[len(lag.YTicks)-1].Label; got != "10m00s" {
		t.Errorf("lag scale tops at %s", got)
	}
	tp := throughputChart("Copied", day, now, s)
	if len(tp.Bars) != 2 || !strings.Contains(tp.Caption, "40.0 MiB copied in the last day, per 30 min; 2.0 MiB/s while copying") {
		t.Errorf("throughput chart: %d bars, %q", len(tp.Bars), tp.Caption)
	}
	if wk := throughputChart("Copied", week, now, s); !strings.Contains(wk.Caption, "1.04 GiB copied in the last week") {
		t.Errorf("week: %q", wk.Caption)
	}
	none := lagChart("Lag", day, now, []series{{Node: "n0012"}})
	if none.Empty != "no cycle in the last day" || len(none.Lines) != 0 || len(none.Legend) != 1 {
		t.Errorf("empty chart: %+v", none)
	}
}
