package farend

// Test harness: vsftpd (ftptest) on the package's loopback addresses
// 127.0.19.x, far-end channels over in-memory pipes or through our SSH
// tunnel.
//
// Addresses: 127.0.19.1 vsftpd, 127.0.19.2 our SSH server, 127.0.19.3
// the link emulator, 127.0.19.4 OpenSSH sshd, 127.0.19.5 a relay address.

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"backupsync/internal/ftptest"
)

const (
	ipFTP   = "127.0.19.1"
	ipSSH   = "127.0.19.2"
	ipLink  = "127.0.19.3"
	ipSSHD  = "127.0.19.4"
	ipRelay = "127.0.19.5"
)

// logBuf captures a component's log for assertions.
type logBuf struct {
	mu  gosync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func startFTP(t testing.TB) *ftptest.Server {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("vsftpd tests need root (CI=true)")
		}
		t.Skip("vsftpd tests need root")
	}
	return ftptest.Start(t, ftptest.KindVsftpd, ipFTP)
}

// pipeEnd is a far end served over in-memory pipes.
type pipeEnd struct {
	host *Host
	peer *Peer
	log  *logBuf
	wg   gosync.WaitGroup
	ctx  context.Context
}

func newPipeEnd(t testing.TB, srv *ftptest.Server, mod func(*HostConfig)) *pipeEnd {
	t.Helper()
	lb := &logBuf{}
	cfg := HostConfig{ArchiveFTP: srv.Addr(), Logger: lb.logger()}
	if mod != nil {
		mod(&cfg)
	}
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &pipeEnd{host: h, peer: h.NewPeer(lb.logger(), nil), log: lb, ctx: ctx}
	t.Cleanup(func() {
		cancel()
		e.wg.Wait()
		if t.Failed() {
			t.Logf("far end's log:\n%s", lb.String())
		}
	})
	return e
}

// open is an OpenFunc: a pipe whose far side the peer serves.
func (e *pipeEnd) open(ctx context.Context) (io.ReadWriteCloser, error) {
	a, b := net.Pipe()
	if !e.peer.Admit() {
		a.Close()
		b.Close()
		return nil, io.ErrClosedPipe
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer e.peer.Leave()
		e.peer.Serve(e.ctx, b)
	}()
	return a, nil
}

func login(srv *ftptest.Server) Login {
	return Login{User: srv.User, Password: srv.Password, Root: "/" + srv.Volume}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// volumeFiles lists every file under the FTP server's volume directory,
// relative to it, with its content's md5.
func volumeFiles(t testing.TB, srv *ftptest.Server) map[string]string {
	t.Helper()
	root := filepath.Join(srv.Dir, srv.Volume)
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = md5hex(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writeTree writes files (path → content) under the FTP server's volume.
func writeTree(t testing.TB, srv *ftptest.Server, files map[string][]byte) {
	t.Helper()
	for p, data := range files {
		full := filepath.Join(srv.Dir, srv.Volume, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Hour)
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(full, old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// noTemps fails the test when a temp file is left in the volume.
func noTemps(t testing.TB, srv *ftptest.Server) {
	t.Helper()
	for p := range volumeFiles(t, srv) {
		if strings.HasSuffix(p, ".backupsync-part") {
			t.Errorf("temp file left: %s", p)
		}
	}
}
