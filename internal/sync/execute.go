package sync

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	gosync "sync"
	"time"

	"golang.org/x/time/rate"

	"backupsync/internal/archive"
)

// Source is the side backups are read from.
type Source interface {
	// Open reads path from offset on; the caller closes the reader.
	Open(ctx context.Context, path string, offset int64) (io.ReadCloser, error)
}

// Destination is the side backups are published to.
type Destination interface {
	Source // to read back a resumed file's prefix for digest checks
	// Publish writes src (size bytes in all, of which resumeFrom are already
	// in the temp file) and makes it appear under path only when complete.
	// It never leaves a partial file under path.
	Publish(ctx context.Context, path string, src io.Reader, size, resumeFrom int64) error
	Delete(ctx context.Context, path string) error
	// RemoveDir removes an empty directory; a non-empty one is an error.
	RemoveDir(ctx context.Context, path string) error
}

// Pipeliner is a Destination that takes a publish's bytes at once and
// tells its result later: a worker then reads and sends the next file while
// the far end still publishes the last, so that a long link's round trip
// per file no longer holds a worker (see package farend).
type Pipeliner interface {
	// StartPublish is Publish in two halves. It returns once src has been
	// read to its end, or has failed; wait then returns what Publish
	// would have. The caller calls wait exactly once.
	StartPublish(ctx context.Context, path string, src io.Reader, size, resumeFrom int64) (wait func() error)
}

// pipelineDepth is how many results each worker may leave pending at a
// Pipeliner: 16 × PARALLEL 4 keeps 64 small files in flight, which fills a
// 50 ms link at about 1,000 files/s.
const pipelineDepth = 16

// Options tune one execution.
type Options struct {
	Parallel       int   // workers; default 4
	BandwidthLimit int64 // bytes per second for all workers; 0: none
	Retries        int   // attempts after the first for transient failures; default 3
	Backoff        time.Duration
	// Transient tells a failure worth retrying (a 4xx reply, a reset, a
	// timeout) from a permanent one.
	Transient func(error) bool
	// Digests maps a path to the md5 (hex) its set's manifest lists.
	Digests map[string]string
	// TempName is the destination's temp path of a final path.
	TempName func(final string) string
	// Event receives progress, one call per finished action; it must be
	// safe for concurrent use. Nil is fine.
	Event func(Event)
	// Drain, when done, stops the cycle gently: files in flight finish,
	// nothing new starts, no deletion runs. Nil never drains.
	Drain <-chan struct{}
	// Progress, if set, counts the copies' files and bytes as they move.
	Progress *Progress
}

// An Event reports one finished action.
type Event struct {
	Action Action
	Bytes  int64 // bytes transferred for a copy
	Err    error
}

// Failure is a file that could not be copied or deleted this cycle.
type Failure struct {
	Path  string `json:"path"`
	Op    string `json:"op"`
	Error string `json:"error"`
}

// ErrDigestMismatch is a copy whose md5 differs from its manifest's.
var ErrDigestMismatch = errors.New("md5 differs from the set's manifest")

// errSourceChanged is a source that delivered more or fewer bytes than listed.
var errSourceChanged = errors.New("source file changed size while it was copied")

// Execute carries out plan's actions: copies with opt.Parallel workers,
// then deletions. A worker whose destination is a Pipeliner sends its next
// file while up to pipelineDepth results of its earlier ones are pending; a
// file counts as copied, and its set's metadata may follow, only once its
// result came. A failed file never stops the others; metadata of a set
// waits until every data file of the set has been copied, and is held back
// when one failed. Cancelling ctx stops the workers after their current
// read; temp files stay for resume.
func Execute(ctx context.Context, plan Plan, src Source, dst Destination, opt Options) Result {
	if opt.Parallel < 1 {
		opt.Parallel = 4
	}
	if opt.Retries == 0 {
		opt.Retries = 3
	}
	if opt.Backoff == 0 {
		opt.Backoff = time.Second
	}
	if opt.Transient == nil {
		opt.Transient = func(error) bool { return false }
	}
	e := &executor{src: src, dst: dst, opt: opt}
	if opt.BandwidthLimit > 0 {
		burst := int(min(opt.BandwidthLimit, 1<<20))
		e.limiter = rate.NewLimiter(rate.Limit(opt.BandwidthLimit), burst)
	}
	var copies, removals []Action
	for _, a := range plan.Actions {
		switch a.Op {
		case OpCopy, OpResume, OpReplace:
			copies = append(copies, a)
		case OpDefer:
			e.res.Deferred = append(e.res.Deferred, a)
		default:
			removals = append(removals, a)
		}
	}
	var total int64
	for _, a := range copies {
		total += a.Size - a.From
	}
	opt.Progress.Begin(len(copies), total, time.Now())
	s := newScheduler(ctx, copies, opt.Drain)
	defer context.AfterFunc(ctx, s.stop)()
	if opt.Drain != nil {
		finished := make(chan struct{})
		defer close(finished)
		go func() {
			select {
			case <-opt.Drain:
				s.stop()
			case <-finished:
			}
		}()
	}
	var wg gosync.WaitGroup
	pipe, pipelined := dst.(Pipeliner)
	// At most Parallel copies send at once; with a Pipeliner each worker
	// may leave pipelineDepth results pending.
	e.sending = make(chan struct{}, opt.Parallel)
	pending := make(chan struct{}, opt.Parallel*pipelineDepth)
	for range opt.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				a, ok := s.next()
				if !ok {
					return
				}
				if !pipelined {
					n, err := e.copyWithRetry(ctx, a)
					s.done(a, err)
					e.record(a, n, err)
					continue
				}
				pending <- struct{}{}
				e.sending <- struct{}{}
				finish := e.startCopy(ctx, a, pipe)
				<-e.sending
				wg.Add(1)
				go func() {
					defer wg.Done()
					n, err := finish()
					n, err = e.retry(ctx, a, n, err)
					s.done(a, err)
					e.record(a, n, err)
					<-pending
				}()
			}
		}()
	}
	wg.Wait()
	for _, a := range s.held() {
		e.record(a, 0, fmt.Errorf("held back: a data file of set %s failed", a.Set))
	}
	for _, a := range removals {
		if ctx.Err() != nil || drained(opt.Drain) {
			break
		}
		e.remove(ctx, a)
	}
	return e.res
}

func drained(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Result is what an execution did.
type Result struct {
	Copied, Resumed, Replaced, Verified int
	Bytes                               int64
	Deleted, DeletedTemps, RemovedDirs  int
	Deferred                            []Action
	Failed                              []Failure
	// Completed are the paths copied, resumed or replaced successfully.
	Completed map[string]bool
}

type executor struct {
	src     Source
	dst     Destination
	opt     Options
	limiter *rate.Limiter
	// sending is held while a copy reads its source and sends it.
	sending chan struct{}

	mu  gosync.Mutex
	res Result
}

func (e *executor) record(a Action, n int64, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		// Escaped: a Failure is only ever shown (logs, STATUS, terminals).
		e.res.Failed = append(e.res.Failed, Failure{Path: archive.DisplayName(a.Path), Op: a.Op.String(), Error: archive.DisplayName(err.Error())})
	} else {
		if a.Op == OpCopy || a.Op == OpResume || a.Op == OpReplace {
			e.opt.Progress.FileDone()
		}
		if a.Op == OpCopy || a.Op == OpResume || a.Op == OpReplace {
			if e.res.Completed == nil {
				e.res.Completed = map[string]bool{}
			}
			e.res.Completed[a.Path] = true
		}
		switch a.Op {
		case OpCopy:
			e.res.Copied++
		case OpResume:
			e.res.Resumed++
		case OpReplace:
			e.res.Replaced++
		case OpDelete:
			e.res.Deleted++
		case OpDeleteTemp:
			e.res.DeletedTemps++
		case OpRemoveDir:
			e.res.RemovedDirs++
		}
		if _, ok := e.opt.Digests[a.Path]; ok && n > 0 {
			e.res.Verified++
		}
		e.res.Bytes += n
	}
	if e.opt.Event != nil {
		e.opt.Event(Event{Action: a, Bytes: n, Err: err})
	}
}

func (e *executor) remove(ctx context.Context, a Action) {
	var err error
	switch a.Op {
	case OpDelete, OpDeleteTemp:
		err = e.dst.Delete(ctx, a.Path)
	case OpRemoveDir:
		// A directory another node still fills is not empty: not a failure.
		if e.dst.RemoveDir(ctx, a.Path) != nil {
			return
		}
	}
	e.record(a, 0, err)
}

func (e *executor) copyWithRetry(ctx context.Context, a Action) (int64, error) {
	n, err := e.copyOnce(ctx, a)
	return e.retry(ctx, a, n, err)
}

// retry copies a again after its first attempt failed with err, while the
// failure is transient and attempts are left; it returns the last
// attempt's outcome. Each attempt waits for a sending slot, if there are
// any.
func (e *executor) retry(ctx context.Context, a Action, n int64, err error) (int64, error) {
	for attempt := 0; ; attempt++ {
		if err == nil || ctx.Err() != nil || attempt >= e.opt.Retries || !e.opt.Transient(err) {
			return n, err
		}
		// A retry resumes nothing: the temp file is rewritten from the
		// action's offset, which is known good.
		select {
		case <-ctx.Done():
			return n, err
		case <-time.After(e.opt.Backoff << attempt):
		}
		if e.sending != nil {
			e.sending <- struct{}{}
		}
		n, err = e.copyOnce(ctx, a)
		if e.sending != nil {
			<-e.sending
		}
	}
}

// copyOnce copies a once and returns what it moved.
func (e *executor) copyOnce(ctx context.Context, a Action) (int64, error) {
	return e.startCopy(ctx, a, nil)()
}

// startCopy opens a's source and publishes it. With pipe, it returns once
// the bytes are sent, and finish waits for the destination's result;
// without, the copy is over when it returns. finish returns the bytes moved
// and the copy's error.
func (e *executor) startCopy(ctx context.Context, a Action, pipe Pipeliner) (finish func() (int64, error)) {
	want, digest := e.opt.Digests[a.Path]
	var h hash.Hash
	if digest {
		h = md5.New()
		if a.From > 0 && e.opt.TempName != nil {
			// Hash the prefix already at the destination, as it is there.
			if err := e.hashPrefix(ctx, h, e.opt.TempName(a.Path), a.From); err != nil {
				return func() (int64, error) { return 0, err }
			}
		}
	}
	var r io.ReadCloser
	var early *earlyOpen
	if a.From == 0 && a.Size < readAheadMin {
		early = openEarly(ctx, e.src, a.Path)
		r = early
	} else {
		var err error
		if r, err = e.src.Open(ctx, a.Path, a.From); err != nil {
			return func() (int64, error) { return 0, err }
		}
		if a.Size-a.From >= readAheadMin {
			r = newReadAhead(r)
		}
	}
	body := &guardedReader{r: r, left: a.Size - a.From, hash: h, want: want, ctx: ctx, limiter: e.limiter, progress: e.opt.Progress}
	var wait func() error
	if pipe != nil {
		wait = pipe.StartPublish(ctx, a.Path, body, a.Size, a.From)
	} else {
		err := e.dst.Publish(ctx, a.Path, body, a.Size, a.From)
		wait = func() error { return err }
	}
	// Publish has read the source to its end, or stopped reading it.
	r.Close()
	return func() (int64, error) { return e.finishCopy(ctx, a, body, early, wait()) }
}

// finishCopy turns the destination's verdict err on a's copy from body
// into the copy's outcome, and removes a temp file that must not be
// resumed from.
func (e *executor) finishCopy(ctx context.Context, a Action, body *guardedReader, early *earlyOpen, err error) (int64, error) {
	if err != nil {
		e.opt.Progress.Moved(-body.n) // a retry moves them again
		if early != nil && early.failed() {
			// The source could not be opened: whatever Publish began at the
			// destination holds nothing.
			e.dropTemp(ctx, a.Path)
			return 0, early.err
		}
		if errors.Is(body.err, ErrDigestMismatch) || errors.Is(body.err, errSourceChanged) {
			// Known bad content, or content of a source that has changed
			// since (rewritten, not only appended to, for all we know):
			// never resume from it.
			e.dropTemp(ctx, a.Path)
			return body.n, fmt.Errorf("copy %s: %w", a.Path, body.err)
		}
		if body.err != nil {
			return body.n, fmt.Errorf("copy %s: %w", a.Path, body.err)
		}
		return body.n, fmt.Errorf("copy %s: %w", a.Path, err)
	}
	if body.left != 0 || !body.eof {
		// Publish must read to EOF; anything else is a bug worth shouting about.
		return body.n, fmt.Errorf("copy %s: published before the source was read to its end", a.Path)
	}
	return body.n, nil
}

// dropTemp removes the temp file of path, whose content must not be resumed
// from, even when ctx has ended. It is best effort: a temp file left behind
// is deleted by a later cycle's plan, or resumed there and verified whole.
func (e *executor) dropTemp(ctx context.Context, path string) {
	if e.opt.TempName != nil {
		_ = e.dst.Delete(context.WithoutCancel(ctx), e.opt.TempName(path))
	}
}

func (e *executor) hashPrefix(ctx context.Context, h hash.Hash, temp string, n int64) error {
	r, err := e.dst.Open(ctx, temp, 0)
	if err != nil {
		return fmt.Errorf("read back %s: %w", temp, err)
	}
	defer r.Close()
	if _, err := io.CopyN(h, r, n); err != nil {
		return fmt.Errorf("read back %s: %w", temp, err)
	}
	return nil
}

// guardedReader streams a source file into Publish and refuses to let a
// wrong copy end well: at EOF it reports an error instead when the source
// delivered more or fewer bytes than listed or its md5 differs from the
// manifest, so that Publish never renames such a file to its final name.
type guardedReader struct {
	r       io.Reader
	ctx     context.Context
	left    int64
	n       int64
	hash    hash.Hash
	want    string
	limiter *rate.Limiter
	eof     bool
	err     error
	// progress counts the bytes read; a failed attempt gives them back.
	progress *Progress
}

func (g *guardedReader) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.limiter != nil && len(p) > g.limiter.Burst() {
		p = p[:g.limiter.Burst()]
	}
	n, err := g.r.Read(p)
	if int64(n) > g.left {
		g.err = errSourceChanged
		return 0, g.err
	}
	g.left -= int64(n)
	g.n += int64(n)
	g.progress.Moved(int64(n))
	if g.hash != nil {
		g.hash.Write(p[:n])
	}
	if g.limiter != nil && n > 0 {
		if werr := g.limiter.WaitN(g.ctx, n); werr != nil {
			g.err = werr
			return n, werr
		}
	}
	if err == io.EOF {
		switch {
		case g.left != 0:
			g.err = errSourceChanged
		case g.hash != nil && hex.EncodeToString(g.hash.Sum(nil)) != g.want:
			g.err = ErrDigestMismatch
		default:
			g.eof = true
			return n, io.EOF
		}
		return n, g.err
	}
	if err != nil {
		g.err = err
	}
	return n, err
}

// DirectTo passes a direct copy (see archive.DirectReader) through the same
// checks as Read. A copy that hashes cannot: the bytes must pass through
// here. At the listed size it stops, so that the end is read, and checked,
// with Read.
func (g *guardedReader) DirectTo(w io.Writer, n int64) (int64, error) {
	if g.err != nil {
		return 0, g.err
	}
	d, ok := g.r.(archive.DirectReader)
	if !ok || g.hash != nil || g.left == 0 {
		return 0, archive.ErrNotDirect
	}
	n = min(n, g.left)
	if g.limiter != nil {
		n = min(n, int64(g.limiter.Burst()))
	}
	m, err := d.DirectTo(w, n)
	g.left -= m
	g.n += m
	g.progress.Moved(m)
	if g.limiter != nil && m > 0 {
		if werr := g.limiter.WaitN(g.ctx, int(m)); werr != nil {
			g.err = werr
			return m, werr
		}
	}
	switch {
	case err == io.EOF && g.left != 0:
		g.err = errSourceChanged // it ended before the listed size
		return m, g.err
	case err == io.EOF:
		g.eof = true
		return m, io.EOF
	case errors.Is(err, archive.ErrNotDirect):
		return m, err
	case err != nil:
		g.err = err
	}
	return m, err
}
