package archive

import (
	"errors"
	"io"
	"testing"

	"backupsync/internal/ftptest"
)

// directSpy passes a DirectReader on and counts how its bytes moved.
type directSpy struct {
	r                DirectReader
	direct, readTail int64
	refused          int
}

func (s *directSpy) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.readTail += int64(n)
	return n, err
}

func (s *directSpy) DirectTo(w io.Writer, n int64) (int64, error) {
	m, err := s.r.DirectTo(w, n)
	s.direct += m
	if errors.Is(err, ErrNotDirect) {
		s.refused++
	}
	return m, err
}

// copyFile copies path from src to dst at dstPath through a spy, and checks
// the copy's bytes.
func copyFile(t *testing.T, src, dst *Volume, path, dstPath string, want []byte) *directSpy {
	t.Helper()
	r, err := src.Open(ctxT(t), path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	spy := &directSpy{r: r.(DirectReader)}
	if err := dst.Publish(ctxT(t), dstPath, spy, int64(len(want)), 0); err != nil {
		t.Fatalf("publish: %v", err)
	}
	got := readAll(t, dst, dstPath)
	if md5hex(got) != md5hex(want) {
		t.Fatalf("copy differs: %d bytes, want %d", len(got), len(want))
	}
	return spy
}

func readAll(t *testing.T, v *Volume, path string) []byte {
	t.Helper()
	r, err := v.Open(ctxT(t), path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Between two plain FTP servers a copy's bytes move socket to socket, but
// for a tail smaller than directMin, which is read.
func TestDirectCopyBetweenPlainFTPServers(t *testing.T) {
	checkGoroutines(t)
	for i, kind := range allKinds() {
		t.Run(kind, func(t *testing.T) {
			srcS := ftptest.Start(t, kind, kindHost[kind])
			dstS := ftptest.Start(t, kind, []string{"127.0.1.61", "127.0.1.62", "127.0.1.63", "127.0.1.64"}[i])
			src, dst := openVolume(t, srcS, testOptions()), openVolume(t, dstS, testOptions())
			for _, tc := range []struct{ size, direct int }{
				{0, 0}, {1, 0}, {directMin / 2, 0}, // too small to be worth it
				{directMin, directMin}, {directChunk, directChunk},
				{3*directChunk + directMin, 3*directChunk + directMin},
				{3*directChunk + 17, 3 * directChunk}, // the last 17 bytes are read
			} {
				data := randBytes(int64(tc.size), tc.size)
				writeLocal(t, srcS, "DB/f", data)
				spy := copyFile(t, src, dst, "DB/f", "DB/copy", data)
				if spy.direct != int64(tc.direct) || spy.readTail != int64(tc.size-tc.direct) {
					t.Errorf("%d bytes: %d moved directly, %d read; want %d directly", tc.size, spy.direct, spy.readTail, tc.direct)
				}
			}
			// A source larger than the size given to Publish: the extra byte
			// is caught and nothing stays behind.
			data := randBytes(7, 2*directChunk)
			writeLocal(t, srcS, "DB/g", data)
			r, err := src.Open(ctxT(t), "DB/g", 0)
			if err != nil {
				t.Fatal(err)
			}
			err = dst.Publish(ctxT(t), "DB/g", r, int64(len(data)-1), 0)
			r.Close()
			if !errors.Is(err, ErrSizeMismatch) {
				t.Errorf("publish of a larger source: %v", err)
			}
			for _, p := range []string{"DB/g", TempName("DB/g")} {
				if exists(volPath(dstS, p)) {
					t.Errorf("%s left at the destination", p)
				}
			}
		})
	}
}
