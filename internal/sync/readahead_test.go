package sync

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
	"time"
)

type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

func TestReadAheadDeliversEverythingInOrder(t *testing.T) {
	data := make([]byte, 3*readAheadChunk+12345)
	for i := range data {
		data[i] = byte(i * 31)
	}
	for name, src := range map[string]io.Reader{
		"whole":    bytes.NewReader(data),
		"one byte": iotest.OneByteReader(bytes.NewReader(data[:readAheadChunk+7])),
		"half":     iotest.HalfReader(bytes.NewReader(data)),
		"data+EOF": iotest.DataErrReader(bytes.NewReader(data)),
	} {
		t.Run(name, func(t *testing.T) {
			cc := &closeCounter{Reader: src}
			r := newReadAhead(cc)
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			want := data
			if name == "one byte" {
				want = data[:readAheadChunk+7]
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, want %d (content differs: %v)", len(got), len(want), len(got) == len(want))
			}
			r.Close()
			r.Close()
			if cc.closed != 1 {
				t.Errorf("source closed %d times", cc.closed)
			}
		})
	}
}

func TestReadAheadPassesErrorsAndLeaksNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	boom := errors.New("connection reset")
	r := newReadAhead(&closeCounter{Reader: io.MultiReader(bytes.NewReader(make([]byte, 1000)), iotest.ErrReader(boom))})
	if _, err := io.ReadAll(r); !errors.Is(err, boom) {
		t.Errorf("err %v", err)
	}
	r.Close()
	// Closing early, with the goroutine blocked on a full queue.
	for range 20 {
		r := newReadAhead(&closeCounter{Reader: bytes.NewReader(make([]byte, 8*readAheadChunk))})
		buf := make([]byte, 10)
		r.Read(buf)
		r.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines, %d before", n, before)
	}
}
