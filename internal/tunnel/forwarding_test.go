package tunnel

// The forwarding rule against a real OpenSSH client holding a paired key:
// the archive FTP's port and the data ports it announced on the same SSH
// connection, once; nothing else on the archive host.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// bannerServer answers every connection with banner and closes it: a
// stand-in for a service on the archive host.
func bannerServer(t testing.TB, ln net.Listener, banner string) {
	serveConns(t, ln, func(c net.Conn) { io.WriteString(c, banner) })
}

// fakeFTP is a scripted FTP control server: it greets, answers EPSV and
// PASV with its data listener's port (as pasv writes it), and 200 to
// anything else. Its data listener answers "DATA\n".
type fakeFTP struct {
	ln, data net.Listener
	dataPort int
	mu       sync.Mutex
	pasv     func(w io.Writer, port int) // writes the reply to PASV
}

func startFakeFTP(t testing.TB, host string) *fakeFTP {
	f := &fakeFTP{ln: listenOn(t, host), data: listenOn(t, host)}
	f.dataPort = f.data.Addr().(*net.TCPAddr).Port
	f.pasv = func(w io.Writer, port int) {
		fmt.Fprintf(w, "227 Entering Passive Mode (127,0,3,1,%d,%d).\r\n", port>>8, port&255)
	}
	bannerServer(t, f.data, "DATA\n")
	serveConns(t, f.ln, func(c net.Conn) {
		io.WriteString(c, "220 fake FTP\r\n")
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch strings.ToUpper(strings.TrimSpace(line)) {
			case "EPSV":
				fmt.Fprintf(c, "229 Entering Extended Passive Mode (|||%d|)\r\n", f.dataPort)
			case "PASV":
				f.mu.Lock()
				pasv := f.pasv
				f.mu.Unlock()
				pasv(c, f.dataPort)
			default:
				io.WriteString(c, "200 ok\r\n")
			}
		}
	})
	return f
}

func (f *fakeFTP) setPASV(w func(w io.Writer, port int)) {
	f.mu.Lock()
	f.pasv = w
	f.mu.Unlock()
}

// newOpenSSHToFake is our server in front of ftp (ArchiveFTP) with
// reserved ports, and the OpenSSH arguments of a paired client.
func newOpenSSHToFake(t *testing.T, ftpAddr string, reserved []int) (*ourServer, sshArgs, string) {
	t.Helper()
	needBinary(t, "ssh")
	p := newPair(t)
	srv := startServer(t, listenOn(t, ipServer), p.server, ftpAddr, func(cfg *ServerConfig) { cfg.ReservedPorts = reserved })
	_, port, _ := net.SplitHostPort(srv.Addr)
	return srv, opensshArgs(t, p, port), port
}

// readAll reads what a connection through a local forward answers within
// a bounded time; a refused forward answers nothing.
func readAll(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

// TestOpenSSHReachesOnlyTheArchiveFTP: with a paired key, ssh -W and -L to
// the archive host's database port, control plane, metrics and a port no
// FTP server announced are refused and reach nothing; -W to the FTP port
// reaches the FTP server, whatever host is named.
func TestOpenSSHReachesOnlyTheArchiveFTP(t *testing.T) {
	ftp := startFakeFTP(t, ipFTP)
	db, err := net.Listen("tcp4", net.JoinHostPort(ipFTP, strconv.Itoa(ExasolDatabasePort)))
	if err != nil {
		t.Fatalf("a stand-in database on %s:%d: %v", ipFTP, ExasolDatabasePort, err)
	}
	bannerServer(t, db, "DATABASE\n")
	services := map[string]net.Listener{"database": db, "control plane": listenOn(t, ipFTP), "metrics": listenOn(t, ipFTP), "unannounced": listenOn(t, ipFTP)}
	for name, ln := range services {
		if name != "database" {
			bannerServer(t, ln, strings.ToUpper(name)+"\n")
		}
	}
	port := func(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }
	srv, args, sshPort := newOpenSSHToFake(t, ftp.ln.Addr().String(), []int{port(services["control plane"]), port(services["metrics"])})
	common := args.common(sshPort)

	for name, ln := range services {
		t.Run("-W "+name, func(t *testing.T) {
			code, out := runSSH(t, "ssh", append(common, "-W", ln.Addr().String(), ipServer), "")
			if code == 0 || !strings.Contains(out, "administratively prohibited") || strings.Contains(out, strings.ToUpper(name)) {
				t.Fatalf("ssh -W %s (%s): exit %d: %s", ln.Addr(), name, code, out)
			}
		})
	}
	t.Run("-L", func(t *testing.T) {
		a := append([]string{}, common...)
		a = append(a, "-N")
		var locals []string
		for _, name := range []string{"database", "control plane", "metrics", "unannounced"} {
			lp := net.JoinHostPort(ipLocal, strconv.Itoa(freePort(t, ipLocal)))
			locals = append(locals, lp)
			a = append(a, "-L", lp+":"+services[name].Addr().String())
		}
		ctrl := net.JoinHostPort(ipLocal, strconv.Itoa(freePort(t, ipLocal)))
		a = append(a, "-L", ctrl+":"+ftp.ln.Addr().String())
		startSSH(t, append(a, ipServer))
		waitTCP(t, ctrl, 10*time.Second)
		for _, lp := range locals {
			if got := readAll(t, lp); got != "" {
				t.Fatalf("forward %s answered %q", lp, got)
			}
		}
	})
	t.Run("-W the FTP port by another host's name", func(t *testing.T) {
		_, fp, _ := net.SplitHostPort(ftp.ln.Addr().String())
		code, out := runSSH(t, "ssh", append(common, "-W", "127.0.0.1:"+fp, ipServer), "QUIT\r\n")
		if !strings.Contains(out, "220 fake FTP") {
			t.Fatalf("ssh -W 127.0.0.1:%s: exit %d: %s", fp, code, out)
		}
	})
	for _, reason := range []string{"reserved port", "nor a data port it announced"} {
		srv.Log.waitFor(t, 5*time.Second, "refused forwarding", reason)
	}
	if !strings.Contains(srv.Log.String(), "asked=127.0.0.1:") {
		t.Errorf("the asked host is not logged:\n%s", srv.Log.String())
	}
}

// TestOpenSSHDataPortOnceWhenAnnounced: one ssh with a control forward and
// a data forward: the data port answers only after the FTP server
// announced it on the control connection (EPSV, then PASV split across
// writes), once per announcement; an announcement does not open the port
// to another SSH connection; a 227 longer than the tracker's bound passes
// through whole and opens nothing.
func TestOpenSSHDataPortOnceWhenAnnounced(t *testing.T) {
	ftp := startFakeFTP(t, ipFTP)
	srv, args, sshPort := newOpenSSHToFake(t, ftp.ln.Addr().String(), nil)
	common := args.common(sshPort)
	ctrl := net.JoinHostPort(ipLocal, strconv.Itoa(freePort(t, ipLocal)))
	data := net.JoinHostPort(ipLocal, strconv.Itoa(freePort(t, ipLocal)))
	dataTarget := ftp.data.Addr().String()
	startSSH(t, append(append([]string{}, common...), "-N",
		"-L", ctrl+":"+ftp.ln.Addr().String(), "-L", data+":"+dataTarget, ipServer))
	waitTCP(t, ctrl, 10*time.Second)

	if got := readAll(t, data); got != "" {
		t.Fatalf("data port before any announcement: %q", got)
	}
	c, err := net.DialTimeout("tcp", ctrl, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	ask := func(cmd string) string {
		t.Helper()
		if _, err := io.WriteString(c, cmd+"\r\n"); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		return line
	}
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "220") {
		t.Fatalf("greeting %q %v", line, err)
	}
	onceOnly := func(how string) {
		t.Helper()
		if got := readAll(t, data); got != "DATA\n" {
			t.Fatalf("data port announced by %s: %q", how, got)
		}
		if got := readAll(t, data); got != "" {
			t.Fatalf("data port announced by %s opened twice: %q", how, got)
		}
	}

	if line := ask("EPSV"); !strings.HasPrefix(line, "229") {
		t.Fatalf("EPSV: %q", line)
	}
	onceOnly("EPSV")

	// A 227 split across three writes.
	ftp.setPASV(func(w io.Writer, port int) {
		for _, part := range []string{"227 Entering Pass", fmt.Sprintf("ive Mode (127,0,3,1,%d", port>>8), fmt.Sprintf(",%d).\r\n", port&255)} {
			io.WriteString(w, part)
			time.Sleep(50 * time.Millisecond)
		}
	})
	if line := ask("PASV"); !strings.HasPrefix(line, "227") {
		t.Fatalf("PASV: %q", line)
	}
	onceOnly("a PASV reply split across writes")

	// Announced on this SSH connection, asked for on another: refused, and
	// the announcement stays for this one.
	if line := ask("EPSV"); !strings.HasPrefix(line, "229") {
		t.Fatalf("EPSV: %q", line)
	}
	code, out := runSSH(t, "ssh", append(common, "-W", dataTarget, ipServer), "")
	if code == 0 || strings.Contains(out, "DATA") || !strings.Contains(out, "administratively prohibited") {
		t.Fatalf("ssh -W to a port announced on another SSH connection: exit %d: %s", code, out)
	}
	onceOnly("EPSV, after another connection asked")

	// A reply line longer than the bound: passed on whole, opens nothing.
	long := fmt.Sprintf("227 Entering Passive Mode %s (127,0,3,1,%d,%d).\r\n", strings.Repeat("x", 2*maxFTPLine), ftp.dataPort>>8, ftp.dataPort&255)
	ftp.setPASV(func(w io.Writer, _ int) { io.WriteString(w, long) })
	if line := ask("PASV"); line != long {
		t.Fatalf("long 227 changed on the way: %d bytes, want %d", len(line), len(long))
	}
	if got := readAll(t, data); got != "" {
		t.Fatalf("data port after a 227 longer than the bound: %q", got)
	}
	srv.Log.waitFor(t, 5*time.Second, "refused forwarding", "nor a data port it announced")
}

// TestOpenSSHWrongUserRefused: the paired key with another user name is
// refused at authentication, with a log line naming the user.
func TestOpenSSHWrongUserRefused(t *testing.T) {
	ftp := startFakeFTP(t, ipFTP)
	srv, args, sshPort := newOpenSSHToFake(t, ftp.ln.Addr().String(), nil)
	args.user = "root"
	code, out := runSSH(t, "ssh", append(args.common(sshPort), "-W", ftp.ln.Addr().String(), ipServer), "")
	if code == 0 || !strings.Contains(out, "Permission denied (publickey)") || strings.Contains(out, "220") {
		t.Fatalf("user root: exit %d: %s", code, out)
	}
	srv.Log.waitFor(t, 5*time.Second, "refused public key", "user=root", "is not the tunnel user")
}

// TestFTPThroughTunnelAskingAnotherHost: the client asks for an address
// that is not the archive FTP's (as behind NAT or a relay); the server
// connects to its archive FTP all the same, control and data.
func TestFTPThroughTunnelAskingAnotherHost(t *testing.T) {
	fs := startFTP(t, ipFTP)
	p := newPair(t)
	srv := startServer(t, listenOn(t, ipServer), p.server, fs.Addr(), nil)
	const asked = "127.0.3.77" // nothing listens there
	c, _ := newClient(t, p.client, []string{srv.Addr}, func(cfg *ClientConfig) { cfg.FTPHost = asked })
	f := dialFTP(t, c.DialContext, net.JoinHostPort(asked, strconv.Itoa(fs.Port)), fs)
	defer f.Quit()
	ftpRoundTrip(t, f, fs, "asked-elsewhere.bin", randomData(t, 1<<20+3))
	srv.Log.waitFor(t, time.Second, "tunnel: forwarding", "target="+fs.Addr(), "asked="+asked)
}

// opensshArgs are the OpenSSH client arguments of p's client node for our
// server on ipServer:port.
func opensshArgs(t *testing.T, p pair, port string) sshArgs {
	t.Helper()
	hl, err := p.server.HostKeyLine("C1", "")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(hl)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte("["+ipServer+"]:"+port+" "+f[0]+" "+f[1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return sshArgs{identity: filepath.Join(p.client.Dir(), "conn", "C1", "id_ed25519"), knownHosts: kh, user: DefaultUser}
}
