package archive

import (
	"crypto/md5"
	"encoding/hex"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"backupsync/internal/ftptest"
)

// genReader yields n pseudo-random bytes without holding them.
type genReader struct {
	n, off int64
	state  uint64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	if rem := g.n - g.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	for i := range p {
		g.state = g.state*6364136223846793005 + 1442695040888963407
		p[i] = byte(g.state >> 56)
	}
	g.off += int64(len(p))
	return len(p), nil
}

// TestStreamingConstantMemory publishes and reads back a file much larger
// than the heap is allowed to grow, comparing md5 sums.
func TestStreamingConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 128 MiB")
	}
	checkGoroutines(t)
	const size = 128 << 20
	kind := ftptest.KindVsftpd
	s := ftptest.Start(t, kind, kindHost[kind])
	v := openVolume(t, s, testOptions())

	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	want := md5.New()
	src := io.TeeReader(&genReader{n: size, state: 42}, want)
	if err := v.Publish(ctxT(t), "DB/id_1/level_0/node_0/big", src, size, 0); err != nil {
		t.Fatal(err)
	}
	r, err := v.Open(ctxT(t), "DB/id_1/level_0/node_0/big", 0)
	if err != nil {
		t.Fatal(err)
	}
	got := md5.New()
	n, err := io.Copy(got, r)
	r.Close()
	close(stop)
	wg.Wait()
	if err != nil || n != size || hex.EncodeToString(got.Sum(nil)) != hex.EncodeToString(want.Sum(nil)) {
		t.Fatalf("read back %d bytes, err %v, md5 equal %v", n, err, hex.EncodeToString(got.Sum(nil)) == hex.EncodeToString(want.Sum(nil)))
	}
	growth := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("heap in use grew by at most %d KiB while moving %d MiB", growth>>10, size>>20)
	if growth > 32<<20 {
		t.Errorf("heap grew by %d MiB: the transfer is buffered", growth>>20)
	}
}
