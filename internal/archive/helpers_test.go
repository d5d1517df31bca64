package archive

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"backupsync/internal/ftptest"
)

// This package's tests use 127.0.1.x: each kind its own address.
var kindHost = map[string]string{
	ftptest.KindEmbedded: "127.0.1.1",
	ftptest.KindVsftpd:   "127.0.1.2",
	ftptest.KindProftpd:  "127.0.1.3",
	ftptest.KindPureFTPd: "127.0.1.4",
}

// proxyHost is where faultproxy instances of this package listen.
const proxyHost = "127.0.1.100"

func allKinds() []string { return append([]string{ftptest.KindEmbedded}, ftptest.RealKinds()...) }

// forEachKind runs f against a fresh server of every kind.
func forEachKind(t *testing.T, f func(t *testing.T, s *ftptest.Server)) {
	for _, kind := range allKinds() {
		t.Run(kind, func(t *testing.T) {
			f(t, ftptest.Start(t, kind, kindHost[kind]))
		})
	}
}

func endpointOf(s *ftptest.Server) Endpoint {
	return Endpoint{Host: s.Host, Port: s.Port, User: s.User, Password: s.Password, Root: "/" + s.Volume}
}

func testOptions() Options {
	return Options{MaxConns: 4, ConnectTimeout: 5 * time.Second, OpTimeout: 10 * time.Second, IdleTimeout: 5 * time.Second}
}

// openVolume opens the server's volume (optionally through addr) and closes
// it at the end of the test.
func openVolume(t *testing.T, s *ftptest.Server, opt Options) *Volume {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := Open(ctx, endpointOf(s), opt)
	if err != nil {
		t.Fatalf("Open %s: %v", s.Kind, err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// volPath is the local path of a volume-relative path on the server.
func volPath(s *ftptest.Server, rel string) string {
	return filepath.Join(s.Dir, s.Volume, filepath.FromSlash(rel))
}

func writeLocal(t *testing.T, s *ftptest.Server, rel string, data []byte) {
	t.Helper()
	p := volPath(s, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func randBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func md5hex(b []byte) string {
	h := md5.Sum(b)
	return hex.EncodeToString(h[:])
}

func md5File(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return md5hex(b)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// checkGoroutines fails the test when goroutines started during it are
// still running shortly after it ends.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("goroutines leaked: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}
