package sync

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"testing"

	"golang.org/x/time/rate"

	"backupsync/internal/archive"
)

// fakeDirect is a source that moves its bytes to a bytes.Buffer "directly",
// at most max per call.
type fakeDirect struct {
	data   []byte
	off    int
	max    int64
	asked  []int64
	closed bool
}

func (f *fakeDirect) Read(p []byte) (int, error) {
	if f.off == len(f.data) {
		return 0, io.EOF
	}
	n := copy(p, f.data[f.off:])
	f.off += n
	return n, nil
}

func (f *fakeDirect) DirectTo(w io.Writer, n int64) (int64, error) {
	f.asked = append(f.asked, n)
	if _, ok := w.(*bytes.Buffer); !ok {
		return 0, archive.ErrNotDirect
	}
	n = min(n, f.max, int64(len(f.data)-f.off))
	w.Write(f.data[f.off : f.off+int(n)])
	f.off += int(n)
	if f.off == len(f.data) && n < f.max {
		return n, io.EOF
	}
	return n, nil
}

func (f *fakeDirect) Close() error { f.closed = true; return nil }

// drainDirect moves everything it can with DirectTo, then reads the rest,
// as archive's Publish does.
func drainDirect(r archive.DirectReader, w *bytes.Buffer) (direct int64, err error) {
	for {
		m, err := r.DirectTo(w, 1<<20)
		direct += m
		if err == io.EOF {
			return direct, nil
		}
		if errors.Is(err, archive.ErrNotDirect) {
			break
		}
		if err != nil {
			return direct, err
		}
	}
	_, err = io.Copy(w, struct{ io.Reader }{r})
	return direct, err
}

func TestGuardedReaderDirect(t *testing.T) {
	data := bytes.Repeat([]byte("backup"), 1000)
	for _, tc := range []struct {
		name   string
		source []byte
		listed int64
		hash   bool
		limit  int
		want   error
		direct int64
	}{
		{"whole file", data, int64(len(data)), false, 0, nil, int64(len(data))},
		{"source grew", append(data, 'x'), int64(len(data)), false, 0, errSourceChanged, int64(len(data))},
		{"source shrank", data[:100], int64(len(data)), false, 0, errSourceChanged, 100},
		{"hashing reads", data, int64(len(data)), true, 0, nil, 0},
		{"rate limit chunks", data, int64(len(data)), false, 1000, nil, int64(len(data))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &fakeDirect{data: tc.source, max: 1 << 30}
			g := &guardedReader{r: src, left: tc.listed, ctx: context.Background()}
			if tc.hash {
				sum := md5.Sum(data)
				g.hash, g.want = md5.New(), hex.EncodeToString(sum[:])
			}
			if tc.limit > 0 {
				g.limiter = rate.NewLimiter(rate.Inf, tc.limit)
			}
			var out bytes.Buffer
			direct, err := drainDirect(g, &out)
			if !errors.Is(err, tc.want) && !errors.Is(g.err, tc.want) || (tc.want == nil) != (err == nil && g.err == nil) {
				t.Fatalf("error %v (sticky %v), want %v", err, g.err, tc.want)
			}
			if direct != tc.direct {
				t.Errorf("%d bytes moved directly, want %d", direct, tc.direct)
			}
			if tc.want == nil && !bytes.Equal(out.Bytes(), data) {
				t.Errorf("copy differs")
			}
			for _, n := range src.asked {
				if n > tc.listed || tc.limit > 0 && n > int64(tc.limit) {
					t.Errorf("asked for %d bytes: more than listed (%d) or than the burst (%d)", n, tc.listed, tc.limit)
				}
			}
		})
	}
}

func TestReadAheadStepsAsideForADirectCopy(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 3*readAheadChunk)
	src := &fakeDirect{data: data, max: readAheadChunk}
	r := newReadAhead(src)
	var out bytes.Buffer
	direct, err := drainDirect(r, &out)
	if err != nil || direct != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("direct copy through read-ahead: %d bytes direct, %v", direct, err)
	}
	if r.started {
		t.Errorf("the read-ahead goroutine started for a direct copy")
	}
	r.Close()
	if !src.closed {
		t.Errorf("source not closed")
	}

	// Once it has read ahead, it refuses: the bytes are in its buffers.
	src = &fakeDirect{data: data, max: readAheadChunk}
	r = newReadAhead(src)
	defer r.Close()
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if m, err := r.DirectTo(&out, 100); m != 0 || !errors.Is(err, archive.ErrNotDirect) {
		t.Errorf("DirectTo after Read: %d, %v", m, err)
	}
}
