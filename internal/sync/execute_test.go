package sync

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"
)

var errTransient = errors.New("421 service not available")

func content(p string, n int) []byte {
	return bytes.Repeat([]byte(p[len(p)-1:]), n)
}

// twoSets fills src with two backup sets of three data files and a metadata file each.
func twoSets(src *memVolume) {
	for _, dir := range []string{d0, d1} {
		for _, name := range []string{"data_a", "data_b", "data_c", "metadata"} {
			src.put(dir+name, content(dir+name, 1000), now.Add(-old))
		}
	}
}

func cycle(t *testing.T, src *memVolume, dst DestinationSide, edit func(*Cycle)) Report {
	t.Helper()
	c := &Cycle{Connection: "Connection1", Database: "DB", Node: 0, SettleTime: 2 * time.Minute, Delete: true,
		StateDir: t.TempDir(), IsTemp: isTemp, CanResume: true, Now: func() time.Time { return now },
		Exec: Options{Parallel: 3, Backoff: time.Millisecond, TempName: tempName,
			Transient: func(err error) bool { return errors.Is(err, errTransient) }}}
	if edit != nil {
		edit(c)
	}
	rep, _, err := c.Run(context.Background(), src, dst)
	if err != nil {
		t.Fatalf("cycle: %v", err)
	}
	return rep
}

func sameFiles(t *testing.T, src, dst *memVolume) {
	t.Helper()
	for _, p := range src.paths() {
		s, _ := src.get(p)
		d, ok := dst.get(p)
		if !ok || !bytes.Equal(s, d) {
			t.Errorf("%s differs at the destination", p)
		}
	}
	if got, want := len(dst.paths()), len(src.paths()); got != want {
		t.Errorf("destination holds %d files, source %d: %q", got, want, dst.paths())
	}
}

func TestFirstCopyThenNoOp(t *testing.T) {
	src, dst := newMem(), newMem()
	twoSets(src)
	rep := cycle(t, src, dst, nil)
	if rep.Copied != 8 || rep.Bytes != 8000 || !rep.OK() || rep.LagSeconds != 0 {
		t.Errorf("first cycle: %+v", rep)
	}
	sameFiles(t, src, dst)
	// Metadata of a set appeared only after all its data files.
	for _, dir := range []string{d0, d1} {
		seenData := 0
		for _, p := range dst.published {
			if strings.HasPrefix(p, dir) {
				if strings.HasSuffix(p, "metadata") && seenData != 3 {
					t.Errorf("%smetadata published after %d of 3 data files", dir, seenData)
				}
				seenData++
			}
		}
	}
	rep = cycle(t, src, dst, nil)
	if rep.Copied != 0 || rep.UpToDate != 8 || !rep.OK() {
		t.Errorf("second cycle: %+v", rep)
	}
}

func TestFailedDataFileHoldsMetadataAndOthersGoOn(t *testing.T) {
	src, dst := newMem(), newMem()
	twoSets(src)
	src.fail = func(op, p string) error {
		if op == "open" && p == d0+"data_b" {
			return errors.New("550 permission denied")
		}
		return nil
	}
	rep := cycle(t, src, dst, nil)
	if rep.Copied != 6 || len(rep.Failed) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	if _, ok := dst.get(d0 + "metadata"); ok {
		t.Error("metadata of an incomplete set was published")
	}
	if _, ok := dst.get(d1 + "metadata"); !ok {
		t.Error("the other set did not complete")
	}
	if !strings.Contains(rep.Failed[1].Error, "held back") && !strings.Contains(rep.Failed[0].Error, "held back") {
		t.Errorf("failures: %+v", rep.Failed)
	}
	if _, ok := dst.get(tempName(d0 + "data_b")); ok {
		t.Error("an empty temp file stayed for a source that could not be opened")
	}
	if rep.LagSeconds != old.Seconds() {
		t.Errorf("lag %v, want %v", rep.LagSeconds, old.Seconds())
	}
}

func TestTransientFailuresAreRetriedPermanentAreNot(t *testing.T) {
	src, dst := newMem(), newMem()
	twoSets(src)
	tries := map[string]int{}
	src.fail = func(op, p string) error {
		if op != "open" {
			return nil
		}
		tries[p]++ // a single worker below: no race
		switch {
		case p == d0+"data_a" && tries[p] <= 2:
			return fmt.Errorf("retr: %w", errTransient)
		case p == d1+"data_a":
			return errors.New("550 no such file")
		}
		return nil
	}
	rep := cycle(t, src, dst, func(c *Cycle) { c.Exec.Parallel = 1 })
	if tries[d0+"data_a"] != 3 || tries[d1+"data_a"] != 1 {
		t.Errorf("tries %v", tries)
	}
	if rep.Copied != 6 || len(rep.Failed) != 2 {
		t.Errorf("report %+v", rep)
	}
}

func TestDigestMismatchDeletesTempAndFails(t *testing.T) {
	src, dst := newMem(), newMem()
	src.put(d0+"data_a", []byte("hello"), now.Add(-old))
	src.put(d0+"data_b", []byte("world"), now.Add(-old))
	sum := md5.Sum([]byte("hello"))
	rep := cycle(t, src, dst, func(c *Cycle) {
		c.Exec.Digests = map[string]string{d0 + "data_a": hex.EncodeToString(sum[:]), d0 + "data_b": strings.Repeat("0", 32)}
	})
	if rep.Copied != 1 || rep.Verified != 1 || len(rep.Failed) != 1 || !strings.Contains(rep.Failed[0].Error, "md5 differs") {
		t.Fatalf("report %+v", rep)
	}
	if _, ok := dst.get(d0 + "data_b"); ok {
		t.Error("a file with the wrong md5 was published")
	}
	if _, ok := dst.get(tempName(d0 + "data_b")); ok {
		t.Error("the bad temp file was kept for resume")
	}
}

func TestSourceGrowingDuringCopyIsNotPublished(t *testing.T) {
	src, dst := newMem(), newMem()
	src.put(d0+"data_a", []byte("12345"), now.Add(-old))
	c := &Cycle{Database: "DB", IsTemp: isTemp, Now: func() time.Time { return now }, SettleTime: time.Minute}
	src2 := &growingSource{memVolume: src, extra: []byte("678")}
	rep, _, err := c.Run(context.Background(), src2, dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed) != 1 || !strings.Contains(rep.Failed[0].Error, "changed size") {
		t.Fatalf("report %+v", rep)
	}
	if _, ok := dst.get(d0 + "data_a"); ok {
		t.Error("a file that grew while copied was published under its final name")
	}
}

// growingSource lists a file at one size and delivers more bytes.
type growingSource struct {
	*memVolume
	extra []byte
}

func (g *growingSource) Open(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	d, _ := g.get(p)
	return io.NopCloser(io.MultiReader(bytes.NewReader(d[off:]), bytes.NewReader(g.extra))), nil
}

func TestResumeKeepsThePrefix(t *testing.T) {
	src, dst := newMem(), newMem()
	data := []byte("0123456789")
	src.put(d0+"data_a", data, now.Add(-old))
	dst.put(tempName(d0+"data_a"), data[:4], now)
	sum := md5.Sum(data)
	rep := cycle(t, src, dst, func(c *Cycle) { c.Exec.Digests = map[string]string{d0 + "data_a": hex.EncodeToString(sum[:])} })
	if rep.Resumed != 1 || rep.Bytes != 6 || rep.Verified != 1 || !rep.OK() {
		t.Fatalf("report %+v", rep)
	}
	sameFiles(t, src, dst)
}

func TestCancelledCycleStopsAndKeepsNothingPartial(t *testing.T) {
	src, dst := newMem(), newMem()
	twoSets(src)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	dst.fail = func(op, p string) error {
		if op == "publish" {
			if n++; n == 2 {
				cancel()
			}
		}
		return nil
	}
	c := &Cycle{Database: "DB", IsTemp: isTemp, Now: func() time.Time { return now }, SettleTime: time.Minute,
		Exec: Options{Parallel: 1, TempName: tempName}}
	rep, _, err := c.Run(ctx, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Copied >= 8 || !strings.Contains(rep.Error, "cancelled") {
		t.Errorf("report %+v", rep)
	}
	for _, p := range dst.paths() {
		s, _ := src.get(p)
		d, _ := dst.get(p)
		if !strings.HasSuffix(p, suffix) && !bytes.Equal(s, d) {
			t.Errorf("partial file under final name %s", p)
		}
	}
}

func TestListingFailureChangesNothing(t *testing.T) {
	src, dst := newMem(), newMem()
	dst.put(d0+"a", []byte("x"), now)
	src.fail = func(op, p string) error {
		if op == "list" {
			return errors.New("dial tcp 127.0.2.1:21: connection refused")
		}
		return nil
	}
	c := &Cycle{Connection: "C", Database: "DB", IsTemp: isTemp, Delete: true, StateDir: t.TempDir()}
	rep, _, err := c.Run(context.Background(), src, dst)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(rep.Error, "list source") {
		t.Fatalf("err %v, report %+v", err, rep)
	}
	if _, ok := dst.get(d0 + "a"); !ok {
		t.Error("a failed listing deleted destination files")
	}
	reps, err := LoadReports(c.StateDir, "C", 0)
	if err != nil || len(reps) != 1 || reps[0].Error == "" {
		t.Errorf("persisted reports %+v, %v", reps, err)
	}
}

func TestManifestDigestsVerifyCopies(t *testing.T) {
	src, dst := newMem(), newMem()
	sumA, sumB := md5.Sum([]byte("aaa")), md5.Sum([]byte("bbb"))
	src.put(d0+"data_a", []byte("aaa"), now.Add(-old))
	src.put(d0+"data_b", []byte("bXb"), now.Add(-old)) // corrupt at the source
	src.put(d0+"metadata.md5", []byte(fmt.Sprintf("%x  data_a\n%x *data_b\n", sumA, sumB)), now.Add(-old))
	rep := cycle(t, src, dst, nil)
	if rep.Verified != 1 || len(rep.Failed) != 2 {
		t.Fatalf("report %+v", rep)
	}
	if _, ok := dst.get(d0 + "metadata.md5"); ok {
		t.Error("the manifest (metadata) was published although its set is incomplete")
	}
}

func TestManifestErrors(t *testing.T) {
	for _, bad := range []string{"nothex  a\n", "0123  a\n", fmt.Sprintf("%032x  ../../x\n", 1), fmt.Sprintf("%032x\n", 1)} {
		if err := parseManifest(strings.NewReader(bad), "DB/id_1/level_0/node_0", map[string]string{}); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestJournalRepairsInterruptedDirectUpload(t *testing.T) {
	src, dst := newMem(), newMem()
	src.put(d0+"data_a", []byte("complete"), now.Add(-old))
	dst.put(d0+"data_a", []byte("compl"), now) // a crash left it partial under its final name
	j := NewJournal(t.TempDir() + "/journal.json")
	if err := j.Begin(d0 + "data_a"); err != nil {
		t.Fatal(err)
	}
	rep := cycle(t, src, dst, func(c *Cycle) { c.Journal = j })
	if rep.Copied != 1 || rep.Replaced != 0 || !rep.OK() {
		t.Fatalf("report %+v", rep)
	}
	sameFiles(t, src, dst)
	if left, _ := NewJournal(j.file).InFlight(); len(left) != 0 {
		t.Errorf("journal still lists %q", left)
	}
}

func TestDrainFinishesFilesInFlightAndStartsNoMore(t *testing.T) {
	src, dst := newMem(), newMem()
	twoSets(src)
	dst.put("DB/id_1/level_0/node_0/expired", []byte("x"), now)
	drain := make(chan struct{})
	published := 0
	dst.fail = func(op, p string) error {
		if op == "publish" {
			if published++; published == 2 {
				close(drain)
			}
		}
		return nil
	}
	rep := cycle(t, src, dst, func(c *Cycle) { c.Exec.Parallel = 1; c.Exec.Drain = drain })
	if rep.Copied != 2 || len(rep.Failed) != 0 || rep.Deleted != 0 {
		t.Errorf("report %+v", rep)
	}
	// The six files never started still count: pending and late.
	if rep.PendingBytes != 6000 || rep.LagSeconds != old.Seconds() {
		t.Errorf("pending %d bytes, lag %vs", rep.PendingBytes, rep.LagSeconds)
	}
	for _, p := range dst.paths() {
		if strings.HasSuffix(p, suffix) {
			t.Errorf("drain left a temp file %s", p)
		}
	}
}

// The snapshot and the reports are written without a sync: a power cut may
// leave them empty. The next cycle reads them as absent and goes on.
func TestStateEmptiedByAPowerCutIsReadAsAbsent(t *testing.T) {
	src, dst := newMem(), newMem()
	twoSets(src)
	dir := t.TempDir()
	c := &Cycle{Connection: "Connection1", Node: 0, StateDir: dir}
	for _, kind := range []string{"snapshot", "reports"} {
		p := c.stateFile(kind)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rep := cycle(t, src, dst, func(c *Cycle) { c.StateDir = dir })
	if rep.Copied != 8 || !rep.OK() {
		t.Fatalf("cycle after a power cut: %+v", rep)
	}
	sameFiles(t, src, dst)
	reps, err := LoadReports(dir, "Connection1", 0)
	if err != nil || len(reps) != 1 || reps[0].Copied != 8 {
		t.Fatalf("reports after the cycle: %d, %v", len(reps), err)
	}
}

// publishEntered is a destination that reports when a Publish begins.
type publishEntered struct {
	Destination
	once    gosync.Once
	entered chan struct{}
}

func (p *publishEntered) Publish(ctx context.Context, path string, src io.Reader, size, from int64) error {
	p.once.Do(func() { close(p.entered) })
	return p.Destination.Publish(ctx, path, src, size, from)
}

// A small file's source is opened while the destination begins its upload,
// not before: the source here opens only once a Publish has begun.
func TestSmallFileSourceOpensWhileTheUploadBegins(t *testing.T) {
	src, mem := newMem(), newMem()
	src.put(d0+"data_a", []byte("hello"), now.Add(-old))
	dst := &publishEntered{Destination: mem, entered: make(chan struct{})}
	src.fail = func(op, p string) error {
		if op != "open" {
			return nil
		}
		select {
		case <-dst.entered:
			return nil
		case <-time.After(5 * time.Second):
			return errors.New("the source was opened before the upload began, and alone")
		}
	}
	plan := Plan{Actions: []Action{{Op: OpCopy, Path: d0 + "data_a", Size: 5, Set: SetKey("DB/id_1/level_0")}}}
	res := Execute(context.Background(), plan, src, dst, Options{Parallel: 1, TempName: tempName})
	if res.Copied != 1 || len(res.Failed) != 0 {
		t.Fatalf("result %+v", res)
	}
	if got, _ := mem.get(d0 + "data_a"); string(got) != "hello" {
		t.Fatalf("copied %q", got)
	}
}

// A cycle reads only the manifests of sets it copies into: a set already at
// the destination (every no-op cycle) costs no read of its manifest.
func TestManifestReadOnlyWhereFilesAreCopied(t *testing.T) {
	src, dst := newMem(), newMem()
	sum := md5.Sum([]byte("aaa"))
	manifest := []byte(fmt.Sprintf("%x  data_a\n", sum))
	for _, d := range []string{d0, d1} {
		src.put(d+"data_a", []byte("aaa"), now.Add(-old))
		src.put(d+"metadata.md5", manifest, now.Add(-old))
	}
	dst.put(d0+"data_a", []byte("aaa"), now.Add(-old)) // d0 is copied already
	dst.put(d0+"metadata.md5", manifest, now.Add(-old))
	var mu gosync.Mutex
	opened := map[string]int{}
	src.fail = func(op, p string) error {
		if op == "open" {
			mu.Lock()
			opened[p]++
			mu.Unlock()
		}
		return nil
	}
	rep := cycle(t, src, dst, nil)
	if rep.Copied != 2 || rep.Verified != 1 || !rep.OK() {
		t.Fatalf("report %+v", rep)
	}
	if opened[d0+"metadata.md5"] != 0 {
		t.Errorf("the manifest of a set already copied was read %d times", opened[d0+"metadata.md5"])
	}
	if opened[d1+"metadata.md5"] == 0 {
		t.Error("the manifest of the set being copied was not read")
	}
	sameFiles(t, src, dst)
}
