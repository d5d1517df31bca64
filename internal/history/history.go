// Package history keeps, per connection on one node, a bounded record of
// its finished cycles — when each ended, the lag after it, the bytes it
// copied, how long it ran and whether it succeeded — for the status page's
// charts of lag and throughput over the last day and week.
//
// The record is bounded in time and size: points older than Keep (a week)
// are dropped, and once a connection holds more than MaxPoints the older
// ones are merged (points older than a day into 30-minute buckets, the
// last day's into 1-minute buckets), so a connection never holds more than
// about 1,730 points (under 200 KiB of JSON) whatever its schedule.
// Merging keeps what the charts need: the largest lag, the sum of bytes
// and seconds, and how many cycles failed.
//
// The points live in one JSON file under state_dir, rewritten atomically
// after every cycle but not synced: a power cut may lose the newest point,
// which only leaves a gap in a chart. A file larger than MaxFileBytes or
// unreadable is reported and ignored, since history must not stop the
// daemon.
package history

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	gosync "sync"
	"time"

	"backupsync/internal/atomicfile"
)

// Bounds of the record.
const (
	// Keep is how long a point is kept.
	Keep = 7 * 24 * time.Hour
	// MaxPoints is how many points a connection may hold before its
	// points are merged into buckets.
	MaxPoints = 2000
	// MaxFileBytes bounds the file read at start.
	MaxFileBytes = 16 << 20
	// MaxConnections bounds how many connections the record keeps: the
	// ones with the oldest newest point are forgotten first.
	MaxConnections = 256
)

// Buckets of merged points: recent ones finer.
const (
	recent       = 24 * time.Hour
	recentBucket = time.Minute
	olderBucket  = 30 * time.Minute
)

// Point is one finished cycle, or several merged ones.
type Point struct {
	// Finished is when the (last merged) cycle ended.
	Finished time.Time `json:"t"`
	// LagSeconds is the connection's lag after the cycle (the largest of
	// merged cycles); negative when not known.
	LagSeconds float64 `json:"lag"`
	// Bytes the cycle copied (the sum of merged cycles).
	Bytes int64 `json:"bytes"`
	// Seconds the cycle ran (the sum of merged cycles).
	Seconds float64 `json:"secs"`
	// OK is true when the cycle (every merged cycle) succeeded.
	OK bool `json:"ok"`
	// Cycles is how many cycles the point holds; 0 means 1.
	Cycles int `json:"n,omitempty"`
	// Failed is how many of them failed.
	Failed int `json:"failed,omitempty"`
}

// Count is how many cycles p holds.
func (p Point) Count() int { return max(p.Cycles, 1) }

// Failures is how many of p's cycles failed.
func (p Point) Failures() int {
	if p.Cycles == 0 && p.Failed == 0 && !p.OK {
		return 1
	}
	return p.Failed
}

// merge folds q (later) into p.
func (p Point) merge(q Point) Point {
	fails := p.Failures() + q.Failures()
	return Point{
		Finished:   q.Finished,
		LagSeconds: max(p.LagSeconds, q.LagSeconds),
		Bytes:      p.Bytes + q.Bytes,
		Seconds:    p.Seconds + q.Seconds,
		OK:         p.OK && q.OK,
		Cycles:     p.Count() + q.Count(),
		Failed:     fails,
	}
}

// Store is the record of one node. Its methods are safe for concurrent use.
type Store struct {
	path string

	mu     gosync.Mutex
	points map[string][]Point
}

// Open returns the store kept in path (a JSON file under state_dir),
// loading what an earlier run left. A missing file is a fresh start; an
// unreadable or oversized one is reported and ignored. An empty path keeps
// nothing on disk.
func Open(path string) (*Store, error) {
	s := &Store{path: path, points: map[string][]Point{}}
	if path == "" {
		return s, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("history: %s not loaded, starting afresh: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err == nil && len(data) > MaxFileBytes {
		err = fmt.Errorf("larger than %d bytes", MaxFileBytes)
	}
	if err == nil && len(data) > 0 {
		err = json.Unmarshal(data, &s.points)
	}
	if err != nil || s.points == nil {
		s.points = map[string][]Point{}
		if err != nil {
			return s, fmt.Errorf("history: %s not loaded, starting afresh: %w", path, err)
		}
	}
	// A file written by hand or by another version is held to the bounds.
	for conn, pts := range s.points {
		slices.SortStableFunc(pts, func(a, b Point) int { return a.Finished.Compare(b.Finished) })
		if len(pts) > 0 {
			s.points[conn] = compact(pts, pts[len(pts)-1].Finished)
		}
	}
	s.limitConnections()
	return s, nil
}

// Append records a finished cycle of conn and saves the record. Points
// are kept in the order of Finished; one that ends before the newest is
// put in its place.
func (s *Store) Append(conn string, p Point) error {
	s.mu.Lock()
	pts := append(s.points[conn], p)
	if n := len(pts); n > 1 && pts[n-1].Finished.Before(pts[n-2].Finished) {
		slices.SortStableFunc(pts, func(a, b Point) int { return a.Finished.Compare(b.Finished) })
	}
	s.points[conn] = compact(pts, pts[len(pts)-1].Finished)
	s.limitConnections()
	if s.path == "" {
		s.mu.Unlock()
		return nil
	}
	data, err := json.Marshal(s.points)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("history: save: %w", err)
	}
	// Not synced: a power cut may lose the newest point, a gap in a chart.
	if err := atomicfile.WriteUnsynced(s.path, data, 0o600); err != nil {
		return fmt.Errorf("history: save: %w", err)
	}
	return nil
}

// Since returns a copy of every connection's points that ended after
// from, oldest first.
func (s *Store) Since(from time.Time) map[string][]Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]Point, len(s.points))
	for conn, pts := range s.points {
		i, _ := slices.BinarySearchFunc(pts, from, func(p Point, t time.Time) int {
			if p.Finished.After(t) {
				return 1
			}
			return -1
		})
		if i < len(pts) {
			out[conn] = slices.Clone(pts[i:])
		}
	}
	return out
}

// compact drops pts older than Keep before now and, when more than
// MaxPoints remain, merges them into buckets. pts is sorted by Finished.
func compact(pts []Point, now time.Time) []Point {
	cut := now.Add(-Keep)
	i := 0
	for i < len(pts) && !pts[i].Finished.After(cut) {
		i++
	}
	pts = pts[i:]
	if len(pts) <= MaxPoints {
		return pts
	}
	out := make([]Point, 0, MaxPoints)
	var key time.Time
	for _, p := range pts {
		size := olderBucket
		if now.Sub(p.Finished) < recent {
			size = recentBucket
		}
		k := p.Finished.Truncate(size)
		if len(out) > 0 && k.Equal(key) {
			out[len(out)-1] = out[len(out)-1].merge(p)
			continue
		}
		key = k
		out = append(out, p)
	}
	return out
}

// limitConnections forgets the connections with the oldest newest point
// beyond MaxConnections, and those without points.
func (s *Store) limitConnections() {
	for conn, pts := range s.points {
		if len(pts) == 0 {
			delete(s.points, conn)
		}
	}
	if len(s.points) <= MaxConnections {
		return
	}
	conns := make([]string, 0, len(s.points))
	for conn := range s.points {
		conns = append(conns, conn)
	}
	newest := func(c string) time.Time { p := s.points[c]; return p[len(p)-1].Finished }
	slices.SortFunc(conns, func(a, b string) int { return newest(b).Compare(newest(a)) })
	for _, conn := range conns[MaxConnections:] {
		delete(s.points, conn)
	}
}
