package linkemu

// What the link itself achieves, not a test: LINKEMU_MEASURE=1 go test -run
// TestMeasureLink -v ./internal/linkemu/ (without -race). It prints the
// throughput of one and four TCP streams through links of 1 Gbit/s at 0, 20
// and 50 ms (LINKEMU_MEASURE_RATE and LINKEMU_MEASURE_RTT change them) and
// the CPU the relay spent per GiB: the emulator should carry its rate
// whatever the RTT, and cost little of the machine.

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMeasureLink(t *testing.T) {
	if os.Getenv("LINKEMU_MEASURE") == "" {
		t.Skip("set LINKEMU_MEASURE=1 to measure the link emulator")
	}
	rate := int64(125_000_000)
	if s := os.Getenv("LINKEMU_MEASURE_RATE"); s != "" {
		var err error
		if rate, err = ParseRate(s); err != nil {
			t.Fatal(err)
		}
	}
	rtts := []time.Duration{0, 20 * time.Millisecond, 50 * time.Millisecond}
	if s := os.Getenv("LINKEMU_MEASURE_RTT"); s != "" {
		rtts = nil
		for _, f := range strings.Split(s, ",") {
			d, err := time.ParseDuration(f)
			if err != nil {
				t.Fatal(err)
			}
			rtts = append(rtts, d)
		}
	}
	srv := startServer(t, sink)
	for _, rtt := range rtts {
		var parts []string
		for _, streams := range []int{1, 4} {
			link, addr := Start(t, Config{RTT: rtt, Rate: rate}, ipLink, srv.addr())
			// About two seconds at the link's rate, or 512 MiB.
			size := int64(512 << 20)
			if rate > 0 {
				size = min(size, 2*rate)
			}
			per := size / int64(streams)
			cpu0 := cpuSeconds()
			start := time.Now()
			var wg sync.WaitGroup
			for range streams {
				c := dial(t, addr)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if n, err := upload(c, per); err != nil || n != per {
						t.Errorf("upload: %d of %d bytes: %v", n, per, err)
					}
				}()
			}
			wg.Wait()
			took := time.Since(start)
			cpu := cpuSeconds() - cpu0
			link.Close()
			mibs := float64(per*int64(streams)) / (1 << 20) / took.Seconds()
			parts = append(parts, strings.TrimSpace(strings.Join([]string{
				"x" + itoa(streams), ftoa(mibs, 0) + " MiB/s", ftoa(cpu/(float64(per*int64(streams))/(1<<30)), 2) + " cpu-s/GiB",
			}, " ")))
		}
		lim := "unlimited"
		if rate > 0 {
			lim = ftoa(float64(rate)/(1<<20), 0) + " MiB/s"
		}
		t.Logf("RTT %4v, link %s: %s (cpu: the test process: relay, sender and sink)", rtt, lim, strings.Join(parts, " | "))
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func itoa(n int) string { return strconv.Itoa(n) }

func ftoa(f float64, prec int) string { return strconv.FormatFloat(f, 'f', prec, 64) }
