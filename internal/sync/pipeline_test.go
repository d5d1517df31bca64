package sync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	gosync "sync"
	"testing"
	"time"
)

// farMem is a destination at the end of a long link: StartPublish takes a
// file's bytes at once and its result comes when the test lets it (the
// round trip), as on the far-end path.
type farMem struct {
	*memVolume
	gate chan struct{} // results wait until it is closed

	mu      gosync.Mutex
	pending int // started, result not yet given
	most    int
	// late returns an error the far end reports for a publish after its
	// bytes came, or nil.
	late func(path string) error
}

func newFar() *farMem { return &farMem{memVolume: newMem(), gate: make(chan struct{})} }

func (f *farMem) StartPublish(ctx context.Context, p string, src io.Reader, size, from int64) func() error {
	data, rerr := io.ReadAll(src)
	f.mu.Lock()
	f.pending++
	f.most = max(f.most, f.pending)
	f.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		select {
		case <-f.gate:
		case <-ctx.Done():
			done <- ctx.Err()
			return
		}
		var err error
		if rerr != nil {
			err = fmt.Errorf("source failed: %w", rerr) // the far end abandons it
		} else if f.late != nil {
			err = f.late(p)
		}
		if err == nil {
			err = f.memVolume.Publish(ctx, p, bytes.NewReader(data), size, from)
		}
		f.mu.Lock()
		f.pending--
		f.mu.Unlock()
		done <- err
	}()
	return func() error { return <-done }
}

func manySmallFiles(src *memVolume, sets, files int) {
	for s := range sets {
		dir := fmt.Sprintf("DB/id_%d/level_0/node_0/", s+1)
		for i := range files {
			p := fmt.Sprintf("%sdata_%03d", dir, i)
			src.put(p, content(p, 100+i), now.Add(-old))
		}
		src.put(dir+"metadata", content(dir+"metadata", 50), now.Add(-old))
	}
}

// Across a long link a worker does not wait for a file's result before it
// sends the next: many files are in flight at once, and a set's metadata
// still appears only after every data file of the set was published.
func TestFarDestinationKeepsManyFilesInFlight(t *testing.T) {
	src, dst := newMem(), newFar()
	manySmallFiles(src, 2, 40)
	go func() {
		// The round trip ends when every worker has filled its pipeline.
		for {
			dst.mu.Lock()
			full := dst.pending >= 2*pipelineDepth
			dst.mu.Unlock()
			if full {
				close(dst.gate)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	rep := runFar(t, src, dst, 2)
	if rep.Copied != 82 || !rep.OK() {
		t.Fatalf("report %+v", rep)
	}
	sameFiles(t, src, dst.memVolume)
	if dst.most < 2*pipelineDepth {
		t.Errorf("at most %d files were in flight, want %d (2 workers × %d)", dst.most, 2*pipelineDepth, pipelineDepth)
	}
	if dst.most > 2*pipelineDepth {
		t.Errorf("%d files in flight, more than 2 workers × %d", dst.most, pipelineDepth)
	}
	for s := range 2 {
		dir := fmt.Sprintf("DB/id_%d/", s+1)
		data := 0
		for _, p := range dst.published {
			if strings.HasPrefix(p, dir) {
				if strings.HasSuffix(p, "metadata") && data != 40 {
					t.Errorf("%s metadata published after %d of 40 data files", dir, data)
				}
				data++
			}
		}
	}
}

// runFar runs a cycle against the far destination (a Pipeliner).
func runFar(t *testing.T, src *memVolume, dst *farMem, parallel int) Report {
	t.Helper()
	return cycle(t, src, dst, func(c *Cycle) { c.Exec.Parallel = parallel })
}

// The far end refuses a file after its bytes came (disk full, a rename
// that failed): a permanent failure fails the file and holds its set's
// metadata back; a transient one is sent again and succeeds.
func TestFarDestinationLateFailures(t *testing.T) {
	src, dst := newMem(), newFar()
	close(dst.gate)
	manySmallFiles(src, 2, 10)
	var mu gosync.Mutex
	tries := map[string]int{}
	dst.late = func(p string) error {
		mu.Lock()
		defer mu.Unlock()
		tries[p]++
		switch {
		case p == "DB/id_1/level_0/node_0/data_003":
			return errors.New("552 disk quota exceeded")
		case p == "DB/id_2/level_0/node_0/data_007" && tries[p] == 1:
			return fmt.Errorf("far end: %w", errTransient)
		}
		return nil
	}
	// A retry goes through Publish, as the first attempt's late verdict
	// came; farMem's Publish is the memVolume's, which consults nothing.
	rep := runFar(t, src, dst, 3)
	if rep.Copied != 20 || len(rep.Failed) != 2 {
		t.Fatalf("report %+v", rep)
	}
	if _, ok := dst.get("DB/id_1/level_0/node_0/metadata"); ok {
		t.Error("metadata of a set with a failed file was published")
	}
	if _, ok := dst.get("DB/id_2/level_0/node_0/metadata"); !ok {
		t.Error("the other set did not complete")
	}
	if _, ok := dst.get("DB/id_2/level_0/node_0/data_007"); !ok {
		t.Error("the transient failure was not retried")
	}
}

// A file whose bytes do not match its manifest is not published, and its
// temp file is removed, on the pipelined path too.
func TestFarDestinationDigestMismatch(t *testing.T) {
	src, dst := newMem(), newFar()
	close(dst.gate)
	src.put(d0+"data_a", []byte("hello"), now.Add(-old))
	c := &Cycle{Database: "DB", IsTemp: isTemp, Now: func() time.Time { return now }, SettleTime: time.Minute, StateDir: t.TempDir(),
		Exec: Options{TempName: tempName, Digests: map[string]string{d0 + "data_a": strings.Repeat("0", 32)}}}
	rep, _, err := c.Run(context.Background(), src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed) != 1 || !strings.Contains(rep.Failed[0].Error, "md5 differs") {
		t.Fatalf("report %+v", rep)
	}
	if len(dst.paths()) != 0 {
		t.Errorf("the destination holds %v", dst.paths())
	}
}
