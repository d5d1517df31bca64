package farend

import (
	"bytes"
	"io"
	"sync"
	"testing"
	"time"
)

// TestReorderBound: chunks ahead of the one awaited are held up to
// stripes × stripeWindow bytes (plus one chunk); the sender of one more
// waits; once the awaited chunk comes, every chunk reaches the feed in
// order. The feed holds at most feedBuffer bytes its reader has not taken.
func TestReorderBound(t *testing.T) {
	const stripes = 2
	const chunk = MaxData - chunkHeader
	total := (stripes*stripeWindow)/chunk*2 + 3 // twice what the buffer holds
	fd := newFeed(int64(total * chunk))
	fd.striped = true
	p := (&Host{cfg: HostConfig{MaxStriped: 1}}).NewPeer(nil, nil)
	var tok chunkToken
	a, err := p.register(tok, stripes, fd)
	if err != nil {
		t.Fatal(err)
	}
	data := func(seq int) []byte { return bytes.Repeat([]byte{byte(seq)}, chunk) }

	// The later chunks, in order, from one sender (as one channel would).
	var sent sync.WaitGroup
	var mu sync.Mutex
	done := 0
	sent.Add(1)
	go func() {
		defer sent.Done()
		for seq := 1; seq < total; seq++ {
			if err := a.put(uint64(seq), data(seq), time.Minute); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			done++
			mu.Unlock()
		}
	}()
	// It stops when the reorder buffer is full.
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.mu.Lock()
		buffered := a.buffered
		a.mu.Unlock()
		if buffered > stripes*stripeWindow+chunk {
			t.Fatalf("reorder buffer holds %d bytes, bound %d", buffered, stripes*stripeWindow+chunk)
		}
		mu.Lock()
		n := done
		mu.Unlock()
		if buffered+chunk > stripes*stripeWindow && n == buffered/chunk {
			break // full, and the next put waits
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sender did not fill the buffer: %d chunks, %d bytes", n, buffered)
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	if done >= total-1 {
		t.Fatal("every chunk was taken with the first missing")
	}
	mu.Unlock()

	// The awaited chunk comes; a reader drains the feed in order.
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(fd, int64(total*chunk)))
		got <- b
	}()
	if err := a.put(0, data(0), time.Minute); err != nil {
		t.Fatal(err)
	}
	sent.Wait()
	b := <-got
	if len(b) != total*chunk {
		t.Fatalf("fed %d bytes, want %d", len(b), total*chunk)
	}
	for seq := range total {
		if b[seq*chunk] != byte(seq) || b[(seq+1)*chunk-1] != byte(seq) {
			t.Fatalf("chunk %d out of order", seq)
		}
	}
}
