package ftptest

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"
)

// Addresses of this package's tests: 127.0.4.x.
var hosts = map[string]string{
	KindEmbedded: "127.0.4.1",
	KindVsftpd:   "127.0.4.2",
	KindProftpd:  "127.0.4.3",
	KindPureFTPd: "127.0.4.4",
}

func allKinds() []string { return append([]string{KindEmbedded}, RealKinds()...) }

func dial(t *testing.T, s *Server) *ftp.ServerConn {
	t.Helper()
	c, err := ftp.Dial(s.Addr(), ftp.DialWithTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("dial %s: %v", s.Kind, err)
	}
	if err := c.Login(s.User, s.Password); err != nil {
		c.Quit()
		t.Fatalf("login %s: %v", s.Kind, err)
	}
	t.Cleanup(func() { c.Quit() })
	return c
}

func names(entries []*ftp.Entry) []string {
	var n []string
	for _, e := range entries {
		if e.Name != "." && e.Name != ".." {
			n = append(n, e.Name)
		}
	}
	sort.Strings(n)
	return n
}

func TestServers(t *testing.T) {
	for _, kind := range allKinds() {
		t.Run(kind, func(t *testing.T) {
			s := Start(t, kind, hosts[kind])
			if s.Kind != kind || s.Volume != DefaultVolume || s.Port == 0 {
				t.Fatalf("bad server fields: %+v", s)
			}
			if want := "ftp://" + s.User + ":" + s.Password + "@" + s.Addr() + "/v0003"; s.URL() != want {
				t.Errorf("URL() = %q, want %q", s.URL(), want)
			}
			// A file written by the test process (as root) ...
			vol := filepath.Join(s.Dir, s.Volume)
			if err := os.MkdirAll(filepath.Join(vol, "DB", "id_1"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(vol, "DB", "id_1", "local"), []byte("from the test"), 0o644); err != nil {
				t.Fatal(err)
			}

			c := dial(t, s)
			if err := c.ChangeDir("/" + s.Volume); err != nil {
				t.Fatalf("CWD: %v", err)
			}
			payload := bytes.Repeat([]byte("0123456789abcdef"), 4096)
			if err := c.Stor("DB/id_1/up.part", bytes.NewReader(payload)); err != nil {
				t.Fatalf("STOR: %v", err)
			}
			if err := c.Rename("DB/id_1/up.part", "DB/id_1/up"); err != nil {
				t.Fatalf("RNFR/RNTO: %v", err)
			}
			entries, err := c.List("DB/id_1")
			if err != nil {
				t.Fatalf("LIST: %v", err)
			}
			if got := strings.Join(names(entries), ","); got != "local,up" {
				t.Errorf("LIST names = %q, want local,up", got)
			}
			r, err := c.Retr("DB/id_1/up")
			if err != nil {
				t.Fatalf("RETR: %v", err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("RETR content differs (len %d, err %v)", len(got), err)
			}
			// ... is readable and deletable through FTP, and what the
			// server wrote is readable by the test process.
			r, err = c.Retr("DB/id_1/local")
			if err != nil {
				t.Fatalf("RETR local: %v", err)
			}
			got, _ = io.ReadAll(r)
			r.Close()
			if string(got) != "from the test" {
				t.Errorf("RETR local = %q", got)
			}
			if err := c.Delete("DB/id_1/local"); err != nil {
				t.Errorf("DELE of a file the test wrote: %v", err)
			}
			onDisk, err := os.ReadFile(filepath.Join(vol, "DB", "id_1", "up"))
			if err != nil || !bytes.Equal(onDisk, payload) {
				t.Errorf("file written through FTP differs on disk (err %v)", err)
			}
			if err := c.MakeDir("DB/id_2"); err != nil {
				t.Errorf("MKD: %v", err)
			}
			if err := c.RemoveDir("DB/id_2"); err != nil {
				t.Errorf("RMD: %v", err)
			}
		})
	}
}

func TestRestartAndStop(t *testing.T) {
	for _, kind := range allKinds() {
		t.Run(kind, func(t *testing.T) {
			s := Start(t, kind, "127.0.4.1"+strings.TrimPrefix(hosts[kind], "127.0.4.")) // 127.0.4.1x
			c := dial(t, s)
			addr := s.Addr()
			s.Restart(t)
			if s.Addr() != addr {
				t.Fatalf("restart moved the server from %s to %s", addr, s.Addr())
			}
			// The old session was cut.
			if err := c.NoOp(); err == nil {
				t.Errorf("old session survived a restart")
			}
			dial(t, s)
			s.Stop()
			s.Stop() // idempotent
			if c, err := ftp.Dial(addr, ftp.DialWithTimeout(time.Second)); err == nil {
				c.Quit()
				t.Errorf("server still answers after Stop")
			}
		})
	}
}

func TestStartRejectsNonLoopback(t *testing.T) {
	ft := &fakeTB{TB: t}
	func() {
		defer func() { recover() }()
		Start(ft, KindEmbedded, "192.0.2.1")
	}()
	if !ft.failed {
		t.Fatal("Start accepted a non-loopback host")
	}
}

// fakeTB records Fatalf instead of stopping the real test.
type fakeTB struct {
	testing.TB
	failed bool
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	panic("fatal")
}
