// Package sshtest starts OpenSSH's sshd for tests, from a configuration of
// its own on a loopback address: the real peer our SSH client must work with.
package sshtest

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"backupsync/internal/freeport"
	"backupsync/internal/proctree"
)

// Binary is where Debian's openssh-server installs sshd.
const Binary = "/usr/sbin/sshd"

// Need skips the test when a binary is missing, or fails it under CI, and
// returns its path.
func Need(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found (CI=true): %v", name, err)
		}
		t.Skipf("%s not found: %v", name, err)
	}
	return p
}

func freePort(t testing.TB, host string) int {
	t.Helper()
	p, err := freeport.On(host)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// SSHD is an OpenSSH sshd started by a test from its own config.
type SSHD struct {
	Addr    string
	dir     string
	conf    string
	HostPub string // host public key, "ssh-ed25519 AAAA… comment"
	Log     io.Writer
	cmd     *exec.Cmd
	done    chan struct{}
}

// Start starts sshd on host at a free port with authorizedKeys as its only
// authorized keys file and a fresh ed25519 host key, logging to log. It
// skips the test without sshd or root (fails it when CI=true) and stops
// sshd with t.Cleanup.
func Start(t testing.TB, host, authorizedKeys string, log io.Writer) *SSHD {
	t.Helper()
	Need(t, Binary)
	keygen := Need(t, "ssh-keygen")
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("sshd tests need root (CI=true)")
		}
		t.Skip("sshd tests need root")
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "sshd-test", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	// sshd reads authorized_keys as the login user (not root): make it
	// and the directories above it readable (public keys only).
	ak := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(ak, []byte(authorizedKeys), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	port := freePort(t, host)
	conf := filepath.Join(dir, "sshd_config")
	text := strings.Join([]string{
		"ListenAddress " + net.JoinHostPort(host, strconv.Itoa(port)),
		"HostKey " + hostKey,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + ak,
		"UsePAM no",
		"StrictModes no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"AllowTcpForwarding yes",
		"MaxStartups 100",
		"LogLevel VERBOSE",
		"",
	}, "\n")
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &SSHD{Addr: net.JoinHostPort(host, strconv.Itoa(port)), dir: dir, conf: conf, HostPub: strings.TrimSpace(string(pub)), Log: log}
	s.Start(t)
	t.Cleanup(s.Stop)
	return s
}

// Start starts sshd again (after Stop) on the same port with the same host key.
func (s *SSHD) Start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(Binary, "-f", s.conf, "-D", "-e")
	cmd.Stdout = s.Log
	cmd.Stderr = s.Log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			b := make([]byte, 8)
			_, err = io.ReadFull(c, b)
			c.Close()
			if err == nil && string(b) == "SSH-2.0-" {
				return
			}
		}
		select {
		case <-s.done:
			t.Fatalf("sshd exited")
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			t.Fatalf("sshd not ready on %s: %v", s.Addr, err)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// Stop kills sshd and every session process it forked, and waits.
func (s *SSHD) Stop() {
	if s.cmd == nil {
		return
	}
	pid := s.cmd.Process.Pid
	for _, d := range proctree.Descendants(pid) {
		syscall.Kill(d, syscall.SIGKILL)
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}
