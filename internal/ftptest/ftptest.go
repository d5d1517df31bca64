// Package ftptest starts FTP servers for tests: real vsftpd, proftpd and
// pure-ftpd processes, or an in-process embedded server, each on its own
// loopback address with a fresh login root.
//
// Every server kind serves the same shape: a login User/Password, a login root
// Dir (a t.TempDir) holding the archive volume directory Dir/Volume ("v0003"),
// passive mode on the same loopback address, writable. Tests write backup
// trees under Dir/Volume directly as root and read back what the server wrote.
//
// Ownership. So that files written by the test process (root) and files
// written through FTP are mutually readable, writable and deletable, the FTP
// sessions of the real servers act with root's file ownership:
//   - vsftpd authenticates the system user through PAM and maps the session to
//     root (guest_enable, guest_username=root);
//   - proftpd authenticates against its own AuthUserFile in which the login
//     has uid 0 (RootLogin on); no system account has uid 0 added;
//   - pure-ftpd refuses uid 0 logins, so it runs in a user namespace in which
//     the login's uid (that of the system user) maps to root outside.
//
// The servers are still chrooted to Dir and bound to one loopback address.
//
// The system user (SystemUser) is created once per machine with a fixed
// password, so concurrent test processes agree on it.
//
// Real server binaries are looked up on PATH, in /usr/sbin, and then under
// /opt/backupsync-test/<kind>/usr/sbin (where test/install-deps.sh unpacks the
// packages that conflict with vsftpd). A missing binary skips the test, or
// fails it when the environment variable CI is "true".
package ftptest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"backupsync/internal/freeport"

	"github.com/jlaffaye/ftp"
)

// Server kinds accepted by Start.
const (
	KindVsftpd   = "vsftpd"
	KindProftpd  = "proftpd"
	KindPureFTPd = "pure-ftpd"
	KindEmbedded = "embedded"
)

// SystemUser is the login name of every test server. It is also a system
// account (created on first use) because vsftpd authenticates through PAM.
const SystemUser = "bsyncftp"

// password is fixed so that concurrent test processes, which all set it on the
// same system account, never lock each other out. It only guards loopback
// servers that live for one test.
const password = "bsync-Test-pw1"

// DefaultVolume is the archive volume directory that Start creates in Dir.
const DefaultVolume = "v0003"

// Server is one running (or stopped) FTP server. Its fields describe how to
// reach it and must not be changed by the caller.
type Server struct {
	Kind     string // "vsftpd", "proftpd", "pure-ftpd" or "embedded"
	Host     string // loopback address it listens on, e.g. "127.0.1.5"
	Port     int
	User     string
	Password string
	Dir      string // local directory that is the FTP login root
	Volume   string // "v0003": subdirectory of Dir created by Start

	t       testing.TB
	confDir string
	variant

	mu      sync.Mutex
	running bool
	proc    *process  // real servers
	emb     *embedded // embedded server
}

// variant is how a vsftpd started by StartUnprivileged or
// StartUnprivilegedTLS differs from the default.
type variant struct {
	unprivileged bool   // sessions act as SystemUser, not root
	tlsCert      []byte // PEM; explicit TLS (AUTH TLS) is offered when set
	tlsKey       []byte
	pasvMin      int // passive port range; 0: any port
	pasvMax      int
}

// RealKinds lists the real server kinds in a stable order.
func RealKinds() []string { return []string{KindVsftpd, KindProftpd, KindPureFTPd} }

// Addr returns "host:port".
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// URL returns "ftp://user:password@host:port/<volume>". It contains the
// password: tests may use it, product code must never log it.
func (s *Server) URL() string {
	u := url.URL{Scheme: "ftp", User: url.UserPassword(s.User, s.Password), Host: s.Addr(), Path: "/" + s.Volume}
	return u.String()
}

// Start starts an FTP server of the given kind listening on host (a
// 127.0.0.0/8 address) and a free port, waits until it accepts a login, and
// registers Stop with t.Cleanup. It skips the test when a real server's binary
// is missing (fails it when CI=true) and fails it on any other problem.
func Start(t testing.TB, kind, host string) *Server {
	t.Helper()
	return StartPort(t, kind, host, 0)
}

// StartPort is Start on a given port (0: a free one). A cluster's archive
// FTP listens on the same port on every node, so tests of several nodes
// use one port on several addresses.
func StartPort(t testing.TB, kind, host string, port int) *Server {
	t.Helper()
	return startServer(t, kind, host, port, variant{})
}

// StartUnprivileged starts vsftpd (the one kind that can) with sessions
// that act as the unprivileged SystemUser instead of root: they read what
// the test writes with world-readable modes, write nothing, and a chmod in
// the test makes a directory unreadable to them. For scenarios of a
// volume's permissions gone wrong.
func StartUnprivileged(t testing.TB, host string) *Server {
	t.Helper()
	return startServer(t, KindVsftpd, host, 0, variant{unprivileged: true})
}

// StartUnprivilegedTLS is StartUnprivileged with explicit TLS (FTPS)
// offered with the PEM certificate and key given (plain logins stay
// allowed, so that readiness is checked as for the others).
func StartUnprivilegedTLS(t testing.TB, host string, certPEM, keyPEM []byte) *Server {
	t.Helper()
	return startServer(t, KindVsftpd, host, 0, variant{unprivileged: true, tlsCert: certPEM, tlsKey: keyPEM})
}

// StartTLS starts vsftpd offering explicit TLS (FTPS) with the PEM
// certificate and key given, with sessions that act as root like Start's,
// and passive data ports from pasvMin to pasvMax only (a tunnel that cannot
// read an encrypted control connection allows that range).
func StartTLS(t testing.TB, host string, certPEM, keyPEM []byte, pasvMin, pasvMax int) *Server {
	t.Helper()
	return startServer(t, KindVsftpd, host, 0, variant{tlsCert: certPEM, tlsKey: keyPEM, pasvMin: pasvMin, pasvMax: pasvMax})
}

func startServer(t testing.TB, kind, host string, port int, vr variant) *Server {
	t.Helper()
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		t.Fatalf("ftptest: host %q is not an IPv4 loopback address", host)
	}
	s := &Server{Kind: kind, Host: host, User: SystemUser, Password: password, Volume: DefaultVolume, t: t, variant: vr}
	switch kind {
	case KindEmbedded:
	case KindVsftpd, KindProftpd, KindPureFTPd:
		if _, err := findBinary(kind); err != nil {
			missing(t, err)
		}
		if err := ensureSystemUser(); err != nil {
			t.Fatalf("ftptest: %v", err)
		}
	default:
		t.Fatalf("ftptest: unknown server kind %q", kind)
	}
	base := t.TempDir()
	if vr.unprivileged {
		// vsftpd enters Dir as the session user before its chroot: the
		// temporary directories above it (mode 0700) must let it pass.
		for _, d := range []string{filepath.Dir(base), base} {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatalf("ftptest: %v", err)
			}
		}
	}
	s.Dir = filepath.Join(base, "root")
	s.confDir = filepath.Join(base, "conf")
	for _, d := range []string{filepath.Join(s.Dir, s.Volume), s.confDir, filepath.Join(s.confDir, "empty")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("ftptest: %v", err)
		}
	}
	// A few attempts: another process may take the free port between our
	// probe and the server's bind.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		s.Port = port
		if port == 0 {
			if s.Port, err = freeport.On(host); err != nil {
				break
			}
		}
		if err = s.start(); err == nil || port != 0 {
			break
		}
	}
	if err != nil {
		t.Fatalf("ftptest: start %s on %s: %v", kind, host, err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the server and waits until it is gone, including every session
// it was serving. It is idempotent and is registered with t.Cleanup by Start.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	s.running = false
	if s.proc != nil {
		s.proc.stop()
		s.proc = nil
	}
	if s.emb != nil {
		s.emb.stop()
		s.emb = nil
	}
}

// Restart stops the server (cutting every session, like a crash) and starts
// it again on the same address, port and Dir.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err = s.start(); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("ftptest: restart %s on %s: %v", s.Kind, s.Addr(), err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return errors.New("already running")
	}
	switch s.Kind {
	case KindEmbedded:
		e, err := startEmbedded(s)
		if err != nil {
			return err
		}
		s.emb = e
	default:
		p, err := startReal(s)
		if err != nil {
			return err
		}
		s.proc = p
	}
	s.running = true
	return nil
}

// missing skips (or, under CI, fails) a test whose server binary is absent.
func missing(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("ftptest: %v (CI=true: run test/install-deps.sh)", err)
	}
	t.Skipf("ftptest: %v (run test/install-deps.sh)", err)
}

// waitLogin waits until the server at addr accepts a login, or alive reports
// that it has exited, or the timeout passes.
func waitLogin(addr, user, pass string, alive func() error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if err := alive(); err != nil {
			return err
		}
		c, err := ftp.Dial(addr, ftp.DialWithTimeout(2*time.Second))
		if err == nil {
			err = c.Login(user, pass)
			_ = c.Quit()
			if err == nil {
				return nil
			}
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no login within %v: %v", timeout, last)
}
