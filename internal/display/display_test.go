package display

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{999 * time.Millisecond, "0s"},
		{42 * time.Second, "42s"},
		{3*time.Minute + 12*time.Second, "3m12s"},
		{time.Hour + 5*time.Minute + 59*time.Second, "1h05m"},
		{104*time.Hour + 38*time.Minute, "4d08h"},
		{-time.Second, "in the future"},
		{time.Duration(-1 << 63), "in the future"},
	} {
		if got := Duration(c.d); got != c.want {
			t.Errorf("Duration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestTimeAndBytes(t *testing.T) {
	zone := time.FixedZone("CET", 3600)
	if got := Time(time.Date(2026, 12, 6, 2, 20, 3, 500, zone)); got != "2026-12-06T01:20:03Z" {
		t.Errorf("Time = %q", got)
	}
	if got := Time(time.Time{}); got != "never" {
		t.Errorf("Time(zero) = %q", got)
	}
	for n, want := range map[int64]string{512: "512 B", 16 << 10: "16.0 KiB", 3<<20 + 1<<18: "3.2 MiB", 3 << 29: "1.50 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
	if got := Rate(12.5 * (1 << 20)); got != "12.5 MiB/s" {
		t.Errorf("Rate = %q", got)
	}
}
