package archive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
)

// TempSuffix marks temporary upload files: TempName(p) is p + TempSuffix.
const TempSuffix = ".backupsync-part"

// TempName returns the temporary name Publish writes path to before
// renaming it: the same directory, the same name plus TempSuffix.
func TempName(path string) string { return path + TempSuffix }

// IsTemp reports whether name (a path or a base name) is a temporary upload
// file, and the final name it stands for.
func IsTemp(name string) (final string, ok bool) {
	final, ok = strings.CutSuffix(name, TempSuffix)
	if !ok || final == "" || strings.HasSuffix(final, "/") {
		return "", false
	}
	return final, true
}

// checkPath accepts a clean volume-relative path: components separated by
// single slashes, none empty, ".", ".." or otherwise unsafe (see ListNode).
func checkPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w: %q", ErrBadPath, p)
	}
	for _, part := range strings.Split(p, "/") {
		if err := checkName(part); err != nil {
			return fmt.Errorf("%w: %q", ErrBadPath, p)
		}
	}
	return nil
}

// Publish writes size bytes from src to path (volume-relative) so that path
// never holds a partial file:
//
//   - With a working rename, it writes TempName(path) in the same directory
//     (creating missing directories), continuing from resumeFrom when that
//     is > 0 (src then yields the bytes from resumeFrom on; the temporary
//     file must hold exactly resumeFrom bytes, else ErrResumeMismatch), checks
//     that the temporary file has size bytes, and renames it to path,
//     replacing an existing file.
//   - Without rename it calls Options.Journal.Begin(path), uploads directly
//     to path, checks the size, removes path on a mismatch, and calls
//     Journal.End(path) once path is verified or removed. resumeFrom must be 0.
//
// On failure the temporary file is kept for a later resume, unless its
// content is known bad (the source gave more or fewer bytes than size, or
// the server holds a wrong size after a complete transfer), in which case it
// is removed. src is read exactly once and never buffered whole.
func (v *Volume) Publish(ctx context.Context, path string, src io.Reader, size int64, resumeFrom int64) error {
	if v.opt.ReadOnly {
		return v.wrap("publish", path, ErrReadOnly)
	}
	if err := checkPath(path); err != nil {
		return v.wrap("publish", path, err)
	}
	if size < 0 || resumeFrom < 0 || resumeFrom > size {
		return v.wrap("publish", path, fmt.Errorf("%w: size %d, resume from %d", ErrBadPath, size, resumeFrom))
	}
	if resumeFrom > 0 && !v.caps.CanResume() {
		return v.wrap("publish", path, ErrResumeUnsupported)
	}
	if !v.caps.Rename {
		return v.wrap("publish", path, v.publishDirect(ctx, path, src, size))
	}
	var body *countReader
	writeFailed := false
	err := v.withConn(ctx, func(c *conn) error {
		writeFailed = false
		if err := v.ensureDir(c, parent(path)); err != nil {
			return err
		}
		tmpRel := TempName(path)
		tmp := v.abs(tmpRel)
		if resumeFrom > 0 {
			n, err := v.statSize(c, tmpRel)
			if err != nil {
				return err
			}
			if n != resumeFrom {
				return fmt.Errorf("%w: %s holds %d bytes, resume from %d", ErrResumeMismatch, tmpRel, n, resumeFrom)
			}
		}
		want := size - resumeFrom
		body = &countReader{r: src, limit: want + 1}
		var err error
		switch {
		case resumeFrom == 0:
			err = c.sc.Stor(tmp, body)
		case v.caps.Append == AppendAPPE:
			err = c.sc.Append(tmp, body)
		default:
			err = c.sc.StorFrom(tmp, body, uint64(resumeFrom))
		}
		if err != nil {
			if body.err != nil {
				return fmt.Errorf("reading source: %w", body.err)
			}
			writeFailed = maybeFull(err)
			return err // the temporary file is kept for resume
		}
		if body.n != want {
			_ = c.sc.Delete(tmp)
			return fmt.Errorf("%w: source gave %d bytes, want %d", ErrSizeMismatch, body.n, want)
		}
		n, err := v.statSize(c, tmpRel)
		if err != nil {
			return err
		}
		if n != size {
			_ = c.sc.Delete(tmp)
			return fmt.Errorf("%w: %s holds %d bytes, want %d", ErrSizeMismatch, tmpRel, n, size)
		}
		final := v.abs(path)
		if err = c.sc.Rename(tmp, final); err != nil && connUsable(err) {
			// Some servers refuse to rename onto an existing file.
			if derr := c.sc.Delete(final); derr == nil || connUsable(derr) {
				err = c.sc.Rename(tmp, final)
			}
		}
		return err
	}, untouched(&body))
	if writeFailed {
		err = v.confirmFull(ctx, parent(path), err)
	}
	return v.wrap("publish", path, err)
}

// maybeFull reports a failure of the server to write an upload, which may
// mean a full volume: servers often answer 451 without saying why.
func maybeFull(err error) bool {
	switch replyCode(err) {
	case 450, 451, 452, 552:
		return true
	}
	return false
}

// confirmFull checks whether a failed upload ran out of space, with a
// 64 KiB test write in dir, and if so turns err into ErrVolumeFull.
func (v *Volume) confirmFull(ctx context.Context, dir string, err error) error {
	if errors.Is(err, ErrVolumeFull) || isFull(err) {
		return err
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	name := TempName("backupsync-space-check-" + hex.EncodeToString(rnd[:]))
	if dir != "" {
		name = dir + "/" + name
	}
	full := false
	_ = v.withConn(ctx, func(c *conn) error {
		werr := c.sc.Stor(v.abs(name), io.LimitReader(zeros{}, 64<<10))
		_ = c.sc.Delete(v.abs(name))
		full = werr != nil && isReply(werr)
		return werr
	}, always)
	if full {
		return &fullError{err: err, note: "a 64 KiB test write failed too"}
	}
	return err
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// publishDirect uploads to the final name where rename is missing.
func (v *Volume) publishDirect(ctx context.Context, p string, src io.Reader, size int64) error {
	j := v.opt.Journal
	if j != nil {
		if err := j.Begin(p); err != nil {
			return fmt.Errorf("journal begin: %w", err)
		}
	}
	cleaned := false // p is verified complete or removed
	var body *countReader
	writeFailed := false
	err := v.withConn(ctx, func(c *conn) error {
		writeFailed = false
		if err := v.ensureDir(c, parent(p)); err != nil {
			return err
		}
		final := v.abs(p)
		remove := func() {
			if err := c.sc.Delete(final); err == nil || replyCode(err) == 550 {
				cleaned = true
			}
		}
		_ = c.sc.Delete(final) // a server may refuse to overwrite
		body = &countReader{r: src, limit: size + 1}
		if err := c.sc.Stor(final, body); err != nil {
			if connUsable(err) {
				remove()
			}
			if body.err != nil {
				return fmt.Errorf("reading source: %w", body.err)
			}
			writeFailed = maybeFull(err)
			return err
		}
		if body.n != size {
			remove()
			return fmt.Errorf("%w: source gave %d bytes, want %d", ErrSizeMismatch, body.n, size)
		}
		n, err := v.statSize(c, p)
		if err != nil {
			if connUsable(err) {
				remove()
			}
			return err
		}
		if n != size {
			remove()
			return fmt.Errorf("%w: %s holds %d bytes, want %d", ErrSizeMismatch, p, n, size)
		}
		cleaned = true
		return nil
	}, untouched(&body))
	if err != nil && !cleaned && ctx.Err() == nil {
		// The upload's connection broke: remove the partial file over a
		// fresh one, so that nothing partial stays under the final name.
		derr := v.withConn(ctx, func(c *conn) error { return c.sc.Delete(v.abs(p)) }, always)
		if derr == nil || (isReply(derr) && !isNetwork(derr)) {
			cleaned = true
		}
	}
	if writeFailed {
		err = v.confirmFull(ctx, parent(p), err)
	}
	if cleaned && j != nil {
		if jerr := j.End(p); jerr != nil && err == nil {
			err = fmt.Errorf("journal end: %w", jerr)
		}
	}
	return err
}

func parent(p string) string {
	d := path.Dir(p)
	if d == "." {
		return ""
	}
	return d
}

// statSize returns the size of a volume-relative file: SIZE where it works,
// else from a listing of its directory.
func (v *Volume) statSize(c *conn, rel string) (int64, error) {
	if v.caps.Size {
		return c.sc.FileSize(v.abs(rel))
	}
	items, err := v.listDir(c, parent(rel))
	if err != nil {
		return 0, err
	}
	base := path.Base(rel)
	for _, it := range items {
		if it.name == base && !it.dir {
			return it.size, nil
		}
	}
	return 0, fmt.Errorf("%s not found in its directory listing", rel)
}

// ensureDir creates dir (volume-relative) and its missing parents.
func (v *Volume) ensureDir(c *conn, dir string) error {
	if dir == "" || v.knownDir(dir) {
		return nil
	}
	parts := strings.Split(dir, "/")
	var mkErr error
	for i := range parts {
		d := strings.Join(parts[:i+1], "/")
		if v.knownDir(d) {
			continue
		}
		if err := c.sc.MakeDir(v.abs(d)); err != nil {
			if !connUsable(err) {
				return err
			}
			mkErr = err // usually "exists"; checked below
		}
	}
	if err := c.sc.ChangeDir(v.abs(dir)); err != nil {
		if mkErr != nil && connUsable(err) {
			return fmt.Errorf("create directory %s: %w", dir, mkErr)
		}
		return err
	}
	v.dirMu.Lock()
	for i := range parts {
		v.dirs[strings.Join(parts[:i+1], "/")] = true
	}
	v.dirMu.Unlock()
	return nil
}

func (v *Volume) knownDir(d string) bool {
	v.dirMu.Lock()
	defer v.dirMu.Unlock()
	return v.dirs[d]
}

func (v *Volume) forgetDir(d string) {
	v.dirMu.Lock()
	defer v.dirMu.Unlock()
	for k := range v.dirs {
		if k == d || strings.HasPrefix(k, d+"/") {
			delete(v.dirs, k)
		}
	}
}

// Delete removes one file (volume-relative path).
func (v *Volume) Delete(ctx context.Context, path string) error {
	if v.opt.ReadOnly {
		return v.wrap("delete", path, ErrReadOnly)
	}
	if err := checkPath(path); err != nil {
		return v.wrap("delete", path, err)
	}
	return v.wrap("delete", path, v.withConn(ctx, func(c *conn) error {
		return c.sc.Delete(v.abs(path))
	}, always))
}

// RemoveDir removes a directory (volume-relative path) if it is empty; the
// server refuses a directory that is not.
func (v *Volume) RemoveDir(ctx context.Context, path string) error {
	if v.opt.ReadOnly {
		return v.wrap("rmdir", path, ErrReadOnly)
	}
	if err := checkPath(path); err != nil {
		return v.wrap("rmdir", path, err)
	}
	v.forgetDir(path)
	return v.wrap("rmdir", path, v.withConn(ctx, func(c *conn) error {
		// Some servers remove a directory with its content: look first.
		items, err := v.listDirRaw(c, path, false)
		if err != nil {
			return err
		}
		if len(items) > 0 {
			return fmt.Errorf("%w: directory not empty (%d entries)", ErrNotEmpty, len(items))
		}
		return c.sc.RemoveDir(v.abs(path))
	}, always))
}

// Open opens a file (volume-relative path) for reading from offset, which
// needs Capabilities.Rest when > 0. The reader holds one pooled connection
// until Close. Read reports io.EOF only after the server confirmed the
// transfer (its final reply); a reset connection or a failure reply is an
// error. A connection closed cleanly after the server sent its last byte
// cannot be told from the end of the file: callers compare the byte count
// with the size they expect.
func (v *Volume) Open(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	if err := checkPath(path); err != nil {
		return nil, v.wrap("read", path, err)
	}
	if offset < 0 || offset > 0 && !v.caps.Rest {
		return nil, v.wrap("read", path, fmt.Errorf("%w: cannot read from offset %d", ErrResumeUnsupported, offset))
	}
	c, err := v.get(ctx)
	if err != nil {
		return nil, v.wrap("read", path, err)
	}
	stop := c.watch(ctx)
	resp, err := c.sc.RetrFrom(v.abs(path), uint64(offset))
	if err != nil {
		stopped := stop()
		v.put(c, !stopped || !connUsable(err))
		if ctx.Err() != nil {
			err = errors.Join(ctx.Err(), err)
		}
		return nil, v.wrap("read", path, err)
	}
	return &reader{v: v, c: c, ctx: ctx, resp: resp, stop: stop, path: path}, nil
}

type reader struct {
	v    *Volume
	c    *conn
	ctx  context.Context
	resp io.ReadCloser
	stop func() bool
	path string

	mu     sync.Mutex
	done   bool  // the transfer ended (completely or not)
	broken bool  // the connection is in an unknown state
	err    error // sticky error
	closed bool
}

func (r *reader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.ready(); err != nil {
		return 0, err
	}
	n, err := r.resp.Read(p)
	if err == nil {
		return n, nil
	}
	_, err = r.finish(0, err)
	return n, err
}

// ready is nil while r can move bytes, else why not.
func (r *reader) ready() error {
	if r.err != nil {
		return r.err
	}
	if r.closed {
		return errors.New("read after close")
	}
	return nil
}

// finish ends the transfer after its last n bytes with err: at io.EOF the
// server's final reply decides whether this was the end; any other error
// leaves the connection in an unknown state.
func (r *reader) finish(n int64, err error) (int64, error) {
	r.done = true
	if err == io.EOF {
		if cerr := r.resp.Close(); cerr != nil {
			r.broken = !connUsable(cerr)
			r.err = r.fail(cerr)
			return n, r.err
		}
		r.err = io.EOF
		return n, io.EOF
	}
	r.broken = true
	r.err = r.fail(err)
	return n, r.err
}

func (r *reader) fail(err error) error {
	if r.ctx.Err() != nil {
		err = errors.Join(r.ctx.Err(), err)
	}
	return r.v.wrap("read", r.path, err)
}

// Close ends the transfer and returns the connection to the pool (or
// discards it when the transfer was abandoned before its end).
func (r *reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if !r.done {
		// Abandoned mid-transfer: the control connection's state is
		// unknown, so drop it rather than wait for the server.
		r.broken = true
		r.c.kill()
	}
	stopped := r.stop()
	r.v.put(r.c, r.broken || !stopped)
	return nil
}
