package history

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)

func TestAppendSaveAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.json")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		p := Point{Finished: t0.Add(time.Duration(i) * time.Minute), LagSeconds: float64(i), Bytes: 100, Seconds: 2, OK: i != 1}
		if err := s.Append("Connection1", p); err != nil {
			t.Fatal(err)
		}
	}
	s.Append("Connection2", Point{Finished: t0, OK: true})
	again, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	got := again.Since(t0.Add(-time.Hour))
	if len(got["Connection1"]) != 3 || len(got["Connection2"]) != 1 {
		t.Fatalf("reloaded %v", got)
	}
	if p := got["Connection1"][1]; p.OK || p.Failures() != 1 || p.LagSeconds != 1 {
		t.Errorf("second point %+v", p)
	}
	if got := again.Since(t0); len(got["Connection1"]) != 2 || got["Connection2"] != nil {
		t.Errorf("Since(t0) keeps only later points: %v", got)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("file mode: %v %v", info, err)
	}
}

// A cycle every 30 s for two weeks: the record keeps one week, never more
// than MaxPoints, and the merged points still hold every cycle of the
// week, its bytes and its failures.
func TestBoundedWhateverTheSchedule(t *testing.T) {
	s, _ := Open("")
	const every = 30 * time.Second
	n := int(14 * 24 * time.Hour / every)
	var weekCycles, weekFails int
	var weekBytes int64
	end := t0.Add(time.Duration(n-1) * every)
	for i := range n {
		at := t0.Add(time.Duration(i) * every)
		ok := i%97 != 0
		if err := s.Append("C", Point{Finished: at, LagSeconds: float64(i % 600), Bytes: 10, Seconds: 1, OK: ok}); err != nil {
			t.Fatal(err)
		}
		if got := len(s.points["C"]); got > MaxPoints {
			t.Fatalf("after %d cycles %d points, more than %d", i+1, got, MaxPoints)
		}
	}
	pts := s.Since(time.Time{})["C"]
	var cycles, fails int
	var bytes int64
	for _, p := range pts {
		cycles += p.Count()
		fails += p.Failures()
		bytes += p.Bytes
	}
	// What the week before the last point held.
	for i := range n {
		at := t0.Add(time.Duration(i) * every)
		if at.After(end.Add(-Keep)) {
			weekCycles++
			weekBytes += 10
			if i%97 == 0 {
				weekFails++
			}
		}
	}
	// The oldest bucket may hold up to 30 minutes of cycles from just
	// before the week began: a bucket goes when its newest cycle does.
	if cycles < weekCycles || cycles > weekCycles+60 || bytes != int64(cycles)*10 {
		t.Errorf("kept %d cycles (%d bytes), the week had %d (%d bytes)", cycles, bytes, weekCycles, weekBytes)
	}
	if fails < weekFails || fails > weekFails+1 {
		t.Errorf("kept %d failures, the week had %d", fails, weekFails)
	}
	if first := pts[0].Finished; end.Sub(first) > Keep {
		t.Errorf("oldest point %v is more than a week before %v", first, end)
	}
	// The last day keeps minutes: the newest points are one minute apart
	// at most (two 30 s cycles each).
	last := pts[len(pts)-1]
	if last.Count() > 2 || !last.Finished.Equal(end) {
		t.Errorf("newest point %+v", last)
	}
	data, _ := json.Marshal(pts)
	if len(data) > 200<<10 {
		t.Errorf("a week of one connection is %d bytes of JSON", len(data))
	}
}

func TestMergeKeepsWorstLag(t *testing.T) {
	a := Point{Finished: t0, LagSeconds: 50, Bytes: 1, Seconds: 1, OK: true}
	b := Point{Finished: t0.Add(time.Second), LagSeconds: 20, Bytes: 2, Seconds: 3, OK: false}
	m := a.merge(b)
	want := Point{Finished: b.Finished, LagSeconds: 50, Bytes: 3, Seconds: 4, OK: false, Cycles: 2, Failed: 1}
	if m != want {
		t.Errorf("merge = %+v, want %+v", m, want)
	}
	if m2 := m.merge(a); m2.Cycles != 3 || m2.Failed != 1 || m2.Bytes != 4 {
		t.Errorf("merge of merged = %+v", m2)
	}
}

func TestOutOfOrderAppend(t *testing.T) {
	s, _ := Open("")
	s.Append("C", Point{Finished: t0.Add(2 * time.Minute), OK: true})
	s.Append("C", Point{Finished: t0.Add(time.Minute), OK: true})
	pts := s.Since(time.Time{})["C"]
	if len(pts) != 2 || !pts[0].Finished.Before(pts[1].Finished) {
		t.Errorf("not in order: %+v", pts)
	}
}

// A broken, oversized or hand-written file never stops the daemon: it is
// reported and the record starts afresh, or is held to the bounds.
func TestHostileFiles(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]byte{
		"garbage":   []byte("{not json"),
		"wrongtype": []byte(`{"C": 42}`),
		"oversized": []byte(`{"C":[` + strings.Repeat(`{"t":"2026-12-06T00:00:00Z"},`, MaxFileBytes/28) + `{}]}`),
	}
	for name, data := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o600)
		s, err := Open(p)
		if err == nil {
			t.Errorf("%s: no error", name)
		}
		if s == nil || len(s.Since(time.Time{})) != 0 {
			t.Errorf("%s: not a fresh start", name)
		}
		if err := s.Append("C", Point{Finished: t0, OK: true}); err != nil {
			t.Errorf("%s: append after a bad file: %v", name, err)
		}
	}
	// Too many points and connections, out of order: held to the bounds.
	big := map[string][]Point{}
	for c := range MaxConnections + 10 {
		var pts []Point
		n := 3
		if c == MaxConnections+9 {
			n = MaxPoints + 500
		}
		for i := range n {
			pts = append(pts, Point{Finished: t0.Add(-time.Duration(i) * time.Minute).Add(time.Duration(c) * time.Second), OK: true})
		}
		big[strings.Repeat("x", c+1)] = pts
	}
	data, _ := json.Marshal(big)
	p := filepath.Join(dir, "big")
	os.WriteFile(p, data, 0o600)
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	all := s.Since(time.Time{})
	if len(all) != MaxConnections {
		t.Errorf("%d connections kept, want %d", len(all), MaxConnections)
	}
	if _, ok := all["x"]; ok {
		t.Errorf("the connection with the oldest newest point was kept")
	}
	if n := len(all[strings.Repeat("x", MaxConnections+10)]); n < 100 || n > MaxPoints {
		t.Errorf("the long connection kept %d points", n)
	}
	for c, pts := range all {
		if len(pts) > MaxPoints {
			t.Fatalf("%s: %d points", c, len(pts))
		}
		for i := 1; i < len(pts); i++ {
			if pts[i].Finished.Before(pts[i-1].Finished) {
				t.Fatalf("%s: not sorted", c)
			}
		}
	}
}

func FuzzOpen(f *testing.F) {
	f.Add([]byte(`{"C":[{"t":"2026-12-06T00:00:00Z","lag":3,"bytes":5,"secs":1,"ok":true}]}`))
	f.Add([]byte(`{"C":[],"D":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "h.json")
		os.WriteFile(p, data, 0o600)
		s, _ := Open(p)
		if s == nil {
			t.Fatal("nil store")
		}
		all := s.Since(time.Time{})
		if len(all) > MaxConnections {
			t.Fatalf("%d connections", len(all))
		}
		for _, pts := range all {
			if len(pts) == 0 || len(pts) > MaxPoints {
				t.Fatalf("%d points", len(pts))
			}
		}
		s.Append("C", Point{Finished: t0, OK: true})
	})
}
