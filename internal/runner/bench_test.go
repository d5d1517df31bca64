package runner

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCopyLarge copies 8 × 32 MiB between two vsftpd servers through
// the real path (archive, sync, runner), one full copy per iteration.
// bench/compare.sh compares the same against rclone and lftp.
func BenchmarkCopyLarge(b *testing.B) { benchCopy(b, 8, 32<<20) }

// BenchmarkCopySmall copies 2,000 files of 16 KiB in an Exasol layout.
func BenchmarkCopySmall(b *testing.B) { benchCopy(b, 2000, 16<<10) }

func benchCopy(b *testing.B, files, size int) {
	e := newDirectEnv(b, "vsftpd")
	e.parallel = 4
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 13)
	}
	for i := range files {
		p := filepath.Join(e.srcDir(), fmt.Sprintf("DB/id_%d/level_0/node_0/data_%04d", i/100, i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, data, 0o644)
		old := time.Now().Add(-time.Hour)
		os.Chtimes(p, old, old)
	}
	b.SetBytes(int64(files * size))
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		os.RemoveAll(filepath.Join(e.dstDir(), "DB"))
		b.StartTimer()
		rep, err := e.cycle()
		if err != nil || rep.Copied != files {
			b.Fatalf("%v %s", err, rep.Summary())
		}
	}
}
