package tunnel

// Interoperability with OpenSSH: our client against sshd, OpenSSH's ssh and
// sftp against our server, FTP to a real vsftpd through both.

import (
	"context"
	"errors"
	"fmt"
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

	"backupsync/internal/ftptest"

	"github.com/jlaffaye/ftp"
	"golang.org/x/crypto/ssh"
)

// pinLine rewrites an OpenSSH public key line to a backupsync-host line.
func pinLine(pub, conn, node string) string {
	f := strings.Fields(pub)
	return f[0] + " " + f[1] + " backupsync-host:" + conn + "@" + node
}

func TestClientThroughOpenSSHToVsftpd(t *testing.T) {
	fs := startFTP(t, ipFTP)
	ks := newStoreTB(t, "n0011")
	line, err := ks.ClientKeyLine("C1", "")
	if err != nil {
		t.Fatal(err)
	}
	sshd := startSSHD(t, ipSSHD, `restrict,port-forwarding,permitopen="`+ipFTP+`:*" `+line+"\n")
	if _, err := ks.Upload([]byte(pinLine(sshd.HostPub, "C1", "n0021"))); err != nil {
		t.Fatal(err)
	}
	c, _ := newClient(t, ks, []string{sshd.Addr}, func(cfg *ClientConfig) {
		cfg.User = ftptest.SystemUser
		cfg.FTPHost = ipFTP
	})

	f := dialFTP(t, c.DialContext, fs.Addr(), fs)
	defer f.Quit()
	ftpRoundTrip(t, f, fs, "big.bin", randomData(t, 8<<20+123))

	// PASV instead of EPSV, on a second control connection over the same
	// SSH connection.
	f2 := dialFTP(t, c.DialContext, fs.Addr(), fs, ftp.DialWithDisabledEPSV(true))
	defer f2.Quit()
	ftpRoundTrip(t, f2, fs, "pasv.bin", randomData(t, 1<<20))

	// permitopen is enforced by sshd and reported as a refusal.
	_, err = c.DialContext(context.Background(), "tcp", ipOther+":21")
	if err == nil || !strings.Contains(err.Error(), "refused by peer") {
		t.Fatalf("dial to a host outside permitopen: %v", err)
	}
	// The SSH connection survives a refused channel.
	ftpRoundTrip(t, f, fs, "after-refusal.bin", randomData(t, 100<<10))
}

// opensshSetup is our server on ipServer in front of a vsftpd, and the
// OpenSSH client arguments of an authorized client node.
type opensshSetup struct {
	fs   *ftptest.Server
	srv  *ourServer
	args sshArgs
	port string
}

func newOpenSSHSetup(t *testing.T) opensshSetup {
	t.Helper()
	needBinary(t, "ssh")
	fs := startFTP(t, ipFTP)
	p := newPair(t)
	srv := startServer(t, listenOn(t, ipServer), p.server, fs.Addr(), nil)
	_, port, _ := net.SplitHostPort(srv.Addr)
	hl, err := p.server.HostKeyLine("C1", "")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(hl)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte("["+ipServer+"]:"+port+" "+f[0]+" "+f[1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return opensshSetup{
		fs:  fs,
		srv: srv,
		args: sshArgs{
			identity:   filepath.Join(p.client.Dir(), "conn", "C1", "id_ed25519"),
			knownHosts: kh,
			user:       "backupsync",
		},
		port: port,
	}
}

// runSSH runs ssh (or sftp) with args, bounded in time, and returns its exit
// code and stderr.
func runSSH(t *testing.T, bin string, args []string, stdin string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, needBinary(t, bin), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr logBuf
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v hung: %s", bin, args, stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", bin, err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// startSSH starts a long-running ssh (forwarding only) and stops it at the
// end of the test.
func startSSH(t *testing.T, args []string) *logBuf {
	t.Helper()
	cmd := exec.Command(needBinary(t, "ssh"), args...)
	out := &logBuf{}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	return out
}

func TestOpenSSHClientForwardsToArchiveFTP(t *testing.T) {
	s := newOpenSSHSetup(t)
	lp := freePort(t, ipLocal)
	dp := freePort(t, ipLocal)
	control := net.JoinHostPort(ipLocal, strconv.Itoa(lp))
	socks := net.JoinHostPort(ipLocal, strconv.Itoa(dp))
	args := append(s.args.common(s.port), "-N", "-o", "ExitOnForwardFailure=yes",
		"-L", control+":"+s.fs.Addr(), "-D", socks, ipServer)
	out := startSSH(t, args)
	waitTCP(t, control, 10*time.Second)
	waitTCP(t, socks, 10*time.Second)

	// Control connection through ssh -L, passive data connections through
	// ssh -D: every byte crosses our server.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == control {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		pn, _ := strconv.Atoi(port)
		return socksDial(socks, ipFTP, pn)
	}
	f := dialFTP(t, dial, control, s.fs)
	defer f.Quit()
	before := s.srv.Log.count("tunnel: forwarding")
	ftpRoundTrip(t, f, s.fs, "via-openssh.bin", randomData(t, 3<<20+7))
	if n := s.srv.Log.count("tunnel: forwarding", "target="+ipFTP+":") - before; n < 3 {
		t.Fatalf("only %d data connections crossed our server; ssh said: %s\nserver log:\n%s", n, out.String(), s.srv.Log.String())
	}
	if n := s.srv.Log.count("SSH connection accepted", "connection=C1"); n != 1 {
		t.Fatalf("%d SSH connections accepted, want 1:\n%s", n, s.srv.Log.String())
	}
}

func TestOpenSSHClientRefusals(t *testing.T) {
	s := newOpenSSHSetup(t)
	host := ipServer
	common := s.args.common(s.port)
	mustFail := func(t *testing.T, code int, out string, wantOut string) {
		t.Helper()
		if code == 0 {
			t.Fatalf("exit status 0, want failure; output: %s", out)
		}
		if wantOut != "" && !strings.Contains(out, wantOut) {
			t.Fatalf("output lacks %q: %s", wantOut, out)
		}
	}
	waitLog := func(t *testing.T, subs ...string) {
		t.Helper()
		s.srv.Log.waitFor(t, 5*time.Second, subs...)
	}

	t.Run("shell", func(t *testing.T) {
		n := s.srv.Log.count("refused session channel")
		code, out := runSSH(t, "ssh", append(common, "-T", host), "")
		mustFail(t, code, out, "administratively prohibited")
		waitLog(t, "refused session channel")
		if s.srv.Log.count("refused session channel") <= n {
			t.Fatal("no new refusal logged")
		}
	})
	t.Run("exec", func(t *testing.T) {
		n := s.srv.Log.count("refused session channel")
		code, out := runSSH(t, "ssh", append(common, host, "id"), "")
		mustFail(t, code, out, "administratively prohibited")
		if strings.Contains(out, "uid=") {
			t.Fatal("command ran")
		}
		waitLog(t, "refused session channel")
		if s.srv.Log.count("refused session channel") <= n {
			t.Fatal("no new refusal logged")
		}
	})
	t.Run("sftp", func(t *testing.T) {
		n := s.srv.Log.count("refused session channel")
		code, out := runSSH(t, "sftp", append(common, "-b", "-", host), "ls /\n")
		mustFail(t, code, out, "")
		if s.srv.Log.count("refused session channel") <= n {
			s.srv.Log.waitFor(t, 5*time.Second, "refused session channel")
		}
	})
	t.Run("agent forwarding", func(t *testing.T) {
		// Agent forwarding is requested on a session; the session itself is
		// refused, so no agent request can ever be made.
		agent := exec.Command(needBinary(t, "ssh-agent"), "-D", "-a", filepath.Join(t.TempDir(), "agent.sock"))
		agent.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := agent.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { agent.Process.Kill(); agent.Wait() }()
		n := s.srv.Log.count("refused session channel")
		code, out := runSSH(t, "ssh", append(common, "-A", "-o", "IdentityAgent="+agent.Args[3], host, "true"), "")
		mustFail(t, code, out, "administratively prohibited")
		waitLog(t, "refused session channel")
		if s.srv.Log.count("refused session channel") <= n {
			t.Fatal("no new refusal logged")
		}
		if s.srv.Log.count("auth-agent") > 0 {
			t.Fatal("an agent request reached the server")
		}
	})
	t.Run("remote forward", func(t *testing.T) {
		rp := freePort(t, ipServer)
		code, out := runSSH(t, "ssh", append(common, "-N", "-o", "ExitOnForwardFailure=yes",
			"-R", fmt.Sprintf("%s:%d:%s", ipServer, rp, s.fs.Addr()), host), "")
		mustFail(t, code, out, "remote port forwarding failed")
		waitLog(t, "refused remote forwarding request", "request=tcpip-forward")
	})
	t.Run("local forward elsewhere", func(t *testing.T) {
		_, ftpPort, _ := net.SplitHostPort(s.fs.Addr())
		refused := []string{
			ipFTP + ":22",           // the FTP host, another port
			ipOther + ":22",         // another host, another port
			ipServer + ":" + s.port, // our own SSH port
			"localhost:8563",        // Exasol's database port, by name
		}
		// Whatever host is asked for, the archive FTP host is reached: a
		// node reached through NAT or a relay is asked for the address
		// the client dialled.
		reached := []string{
			ipOther + ":" + ftpPort,
			"127.0.0.1:" + ftpPort,
			"localhost:" + ftpPort,
			"[::1]:" + ftpPort,
		}
		args := append([]string{}, common...)
		args = append(args, "-N")
		var locals []string
		for _, tg := range append(append([]string{}, refused...), reached...) {
			lp := net.JoinHostPort(ipLocal, strconv.Itoa(freePort(t, ipLocal)))
			locals = append(locals, lp)
			args = append(args, "-L", lp+":"+tg)
		}
		out := startSSH(t, append(args, host))
		for i, lp := range locals {
			waitTCP(t, lp, 10*time.Second)
			c, err := net.DialTimeout("tcp", lp, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			b := make([]byte, 64)
			n, err := io.ReadAtLeast(c, b, 4)
			c.Close()
			if i < len(refused) {
				if err == nil || n > 0 {
					t.Fatalf("forward to %s: read %q, %v: the target was reached", refused[i], b[:n], err)
				}
				continue
			}
			if err != nil || !strings.HasPrefix(string(b[:n]), "220") {
				t.Fatalf("forward to %s: read %q, %v: want the archive FTP's greeting", reached[i-len(refused)], b[:n], err)
			}
		}
		waitLog(t, "refused forwarding", "target="+ipFTP+":22", "nor a data port it announced")
		waitLog(t, "refused forwarding", "reserved port")
		if !strings.Contains(out.String(), "administratively prohibited") {
			t.Fatalf("ssh did not report the refusal: %s", out.String())
		}
	})
	t.Run("password", func(t *testing.T) {
		code, out := runSSH(t, "ssh", append(common, "-o", "PubkeyAuthentication=no",
			"-o", "PreferredAuthentications=password,keyboard-interactive", host, "true"), "")
		mustFail(t, code, out, "Permission denied (publickey)")
		// OpenSSH does not even try a method the server does not offer.
		for _, m := range []ssh.AuthMethod{
			ssh.Password("secret-password"),
			ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) { return []string{"secret-password"}, nil }),
		} {
			cfg := &ssh.ClientConfig{User: "backupsync", Auth: []ssh.AuthMethod{m}, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second}
			c, err := ssh.Dial("tcp", s.srv.Addr, cfg)
			if err == nil {
				c.Close()
				t.Fatal("password-style login accepted")
			}
		}
		// Neither does x/crypto's client: the server never offers them.
		waitLog(t, "refused connection: authentication failed")
		if strings.Contains(s.srv.Log.String(), "secret-password") {
			t.Fatal("password logged")
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		key := filepath.Join(t.TempDir(), "id_ed25519")
		if out, err := exec.Command(needBinary(t, "ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
		fp, err := exec.Command("ssh-keygen", "-l", "-f", key+".pub").Output()
		if err != nil {
			t.Fatal(err)
		}
		a := s.args
		a.identity = key
		code, out := runSSH(t, "ssh", append(a.common(s.port), "-N", host), "")
		mustFail(t, code, out, "Permission denied (publickey)")
		waitLog(t, "refused public key", strings.Fields(string(fp))[1])
		pub, _ := os.ReadFile(key + ".pub")
		if strings.Contains(s.srv.Log.String(), strings.Fields(string(pub))[1][:30]) {
			t.Fatal("key material logged")
		}
	})
	t.Run("pending key", func(t *testing.T) {
		// Uploaded but not activated: still refused.
		other := newStoreTB(t, "n0012")
		line, _ := other.ClientKeyLine("C1", "")
		if _, err := s.srv.Keys.Upload([]byte(line)); err != nil {
			t.Fatal(err)
		}
		a := s.args
		a.identity = filepath.Join(other.Dir(), "conn", "C1", "id_ed25519")
		code, out := runSSH(t, "ssh", append(a.common(s.port), "-N", host), "")
		mustFail(t, code, out, "Permission denied (publickey)")
	})
}

func TestClientRefusesChangedOpenSSHHostKey(t *testing.T) {
	fs := startFTP(t, ipFTP) // also creates the login user sshd needs
	ks := newStoreTB(t, "n0011")
	line, err := ks.ClientKeyLine("C1", "")
	if err != nil {
		t.Fatal(err)
	}
	ak := `restrict,port-forwarding,permitopen="` + ipFTP + `:*" ` + line + "\n"
	old := startSSHD(t, ipSSHD, ak)
	if _, err := ks.Upload([]byte(pinLine(old.HostPub, "C1", "n0021"))); err != nil {
		t.Fatal(err)
	}
	old.stop()
	// The "same" node comes back with another host key.
	changed := startSSHD(t, ipSSHD, ak)
	c, lb := newClient(t, ks, []string{changed.Addr}, func(cfg *ClientConfig) { cfg.User = ftptest.SystemUser })
	_, err = c.DialContext(context.Background(), "tcp", ipFTP+":21")
	var hk *HostKeyError
	if !errors.As(err, &hk) {
		t.Fatalf("dial with a changed host key: %v", err)
	}
	wantFP := fingerprintOfLine(t, changed.HostPub)
	if hk.Fingerprint != wantFP || !strings.Contains(err.Error(), wantFP) || hk.Pinned != 1 {
		t.Fatalf("error %q (%+v), want fingerprint %s", err, hk, wantFP)
	}
	lb.waitFor(t, time.Second, "refused host key", wantFP)
	if !strings.Contains(err.Error(), "UPLOAD_KEY") {
		t.Fatalf("error does not say what to do: %v", err)
	}
	// Pinning the new key (as the admin would) makes it work.
	if _, err := ks.Upload([]byte(pinLine(changed.HostPub, "C1", "n0021"))); err != nil {
		t.Fatal(err)
	}
	f := dialFTP(t, c.DialContext, fs.Addr(), fs)
	defer f.Quit()
	ftpRoundTrip(t, f, fs, "pinned.bin", randomData(t, 64<<10))
}

func fingerprintOfLine(t *testing.T, line string) string {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return ssh.FingerprintSHA256(k)
}

func TestOpenSSHServerKilledMidTransfer(t *testing.T) {
	fs := startFTP(t, ipFTP)
	data := randomData(t, 32<<20)
	if err := os.WriteFile(filepath.Join(fs.Dir, fs.Volume, "large.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	ks := newStoreTB(t, "n0011")
	line, _ := ks.ClientKeyLine("C1", "")
	sshd := startSSHD(t, ipSSHD, `restrict,port-forwarding,permitopen="`+ipFTP+`:*" `+line+"\n")
	ks.Upload([]byte(pinLine(sshd.HostPub, "C1", "n0021")))
	c, lb := newClient(t, ks, []string{sshd.Addr}, func(cfg *ClientConfig) {
		cfg.User = ftptest.SystemUser
		cfg.FTPHost = ipFTP
	})
	f := dialFTP(t, c.DialContext, fs.Addr(), fs)
	r := retrPartly(t, f, "/"+fs.Volume+"/large.bin", 1<<20)
	sshd.stop() // SIGKILL to sshd and its session processes
	err, d := finishRetr(r)
	if err == nil || d > 20*time.Second {
		t.Fatalf("RETR after sshd was killed: %v after %v", err, d)
	}
	if !errors.Is(err, ErrConnectionLost) && !strings.Contains(err.Error(), "connection lost") {
		t.Logf("RETR error (not ErrConnectionLost, acceptable): %v", err)
	}
	t.Logf("RETR failed after %v: %v", d, err)
	f.Quit()
	lb.waitFor(t, 5*time.Second, "SSH connection lost")

	sshd.start(t) // same port, same host key
	f = dialFTP(t, c.DialContext, fs.Addr(), fs)
	defer f.Quit()
	ftpRoundTrip(t, f, fs, "after-restart.bin", data[:2<<20])
}
