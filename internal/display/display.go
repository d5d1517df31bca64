// Package display is how backupsync writes durations, times and sizes for
// people: one format for each, the same in STATUS, GETLOG, backupsyncctl,
// the logs and the status page, so that an admin who compares two of them
// never has to convert.
package display

import (
	"fmt"
	"time"
)

// Duration renders d compactly with at most two units: "0s", "42s",
// "3m12s", "1h05m", "4d08h". A negative d is "in the future": it comes from
// a clock that runs ahead, never from elapsed time.
func Duration(d time.Duration) string {
	if d < 0 {
		return "in the future"
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

// Time renders t in RFC 3339 in UTC, to the second ("2026-12-06T01:20:03Z");
// a zero t is "never".
func Time(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// Bytes renders n in binary units: "512 B", "16.0 KiB", "3.2 MiB", "1.50 GiB".
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Rate renders bytes per second as "12.3 MiB/s".
func Rate(bytesPerSecond float64) string {
	return Bytes(int64(bytesPerSecond)) + "/s"
}
