package runner

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"backupsync/internal/linkemu"
	"backupsync/internal/tunnel"
)

// TestMeasureFarEnd measures the far-end path against FTP through the
// tunnel, through an emulated link at several round trips: one large file
// (MiB/s) and many 16 KiB files (files/s), each a fresh cycle from empty.
// It prints and asserts nothing; it runs only with FAREND_MEASURE=1:
//
//	FAREND_MEASURE=1 go test -count=1 -run TestMeasureFarEnd -v -timeout 60m ./internal/runner/
//
// FAREND_MEASURE_RTT (default "0,20ms,50ms"), FAREND_MEASURE_RATE (default
// "1gbit"), FAREND_MEASURE_LARGE (MiB, default 512), FAREND_MEASURE_SMALL
// (files, default 500), FAREND_MEASURE_RUNS (default 1) and
// FAREND_MEASURE_ONLY ("large" or "small") change it.
func TestMeasureFarEnd(t *testing.T) {
	if os.Getenv("FAREND_MEASURE") != "1" {
		t.Skip("set FAREND_MEASURE=1 to measure")
	}
	rtts := strings.Split(envOr("FAREND_MEASURE_RTT", "0,20ms,50ms"), ",")
	rate, err := linkemu.ParseRate(envOr("FAREND_MEASURE_RATE", "1gbit"))
	if err != nil {
		t.Fatal(err)
	}
	large, _ := strconv.Atoi(envOr("FAREND_MEASURE_LARGE", "512"))
	small, _ := strconv.Atoi(envOr("FAREND_MEASURE_SMALL", "500"))
	runs, _ := strconv.Atoi(envOr("FAREND_MEASURE_RUNS", "1"))
	type variant struct {
		name     string
		farEnd   bool
		stripes  int
		parallel int
	}
	largeVariants := []variant{{"far end, 4 stripes", true, 4, 4}, {"far end, 8 stripes", true, 8, 4}, {"far end, 1 stripe", true, 1, 4}, {"FTP through the tunnel", false, 0, 4}}
	smallVariants := []variant{{"far end, PARALLEL 4", true, 0, 4}, {"far end, PARALLEL 8", true, 0, 8}, {"far end, PARALLEL 16", true, 0, 16},
		{"FTP through the tunnel, PARALLEL 4", false, 0, 4}, {"FTP through the tunnel, PARALLEL 16", false, 0, 16}}
	for _, rs := range rtts {
		rtt, err := time.ParseDuration(rs)
		if err != nil {
			t.Fatal(err)
		}
		only := os.Getenv("FAREND_MEASURE_ONLY") // "large" or "small"
		for _, v := range largeVariants {
			if only == "small" {
				break
			}
			for range runs {
				d := measureOnce(t, rtt, rate, v.farEnd, v.stripes, v.parallel, func(e *farEnv) {
					writeRandom(t, filepath.Join(e.srcDir(), "DB/id_1/level_0/node_0/large"), int64(large)<<20)
				})
				t.Logf("rtt %-5v %-24s one %d MiB file: %6.1f MiB/s (%v)", rtt, v.name, large, float64(large)/d.Seconds(), d.Round(10*time.Millisecond))
			}
		}
		for _, v := range smallVariants {
			if only == "large" {
				break
			}
			for range runs {
				d := measureOnce(t, rtt, rate, v.farEnd, v.stripes, v.parallel, func(e *farEnv) {
					for i := range small {
						writeRandom(t, filepath.Join(e.srcDir(), fmt.Sprintf("DB/id_1/level_0/node_0/f%04d", i)), 16<<10)
					}
				})
				t.Logf("rtt %-5v %-36s %d × 16 KiB: %6.1f files/s (%v)", rtt, v.name, small, float64(small)/d.Seconds(), d.Round(10*time.Millisecond))
			}
		}
	}
}

// measureOnce runs one cycle from empty through a fresh link and returns
// its wall time.
func measureOnce(t *testing.T, rtt time.Duration, rate int64, farEnd bool, stripes, parallel int, fill func(*farEnv)) time.Duration {
	var d time.Duration
	t.Run("", func(t *testing.T) {
		fe := newFarEnvLink(t, linkemu.Config{RTT: rtt, Rate: rate}, func(c *tunnel.ServerConfig) {
			c.NoFarEnd = !farEnd
			c.FarEnd.MaxStripes = 8 // the client's count decides
		})
		fe.parallel = parallel
		fill(fe)
		old := time.Now().Add(-time.Hour)
		filepath.Walk(fe.srcDir(), func(p string, fi os.FileInfo, err error) error {
			if err == nil {
				os.Chtimes(p, old, old)
			}
			return nil
		})
		farEndStripes = stripes
		defer func() { farEndStripes = 0 }()
		start := time.Now()
		if err := fe.cycle(); err != nil {
			t.Fatal(err)
		}
		d = time.Since(start)
		if farEnd != (fe.farEndLogins() > 0) {
			t.Fatalf("far end used: %v, want %v", fe.farEndLogins() > 0, farEnd)
		}
	})
	return d
}

func writeRandom(t testing.TB, p string, n int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.CopyN(f, rand.Reader, n); err != nil {
		t.Fatal(err)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
