package tunnel

// Throughput measurement, not a test: TUNNEL_MEASURE=1 go test -run
// TestMeasureThroughput -v ./internal/tunnel/ (without -race). It prints
// MiB/s through our tunnel and through OpenSSH (ssh -L to sshd) on the same
// box, one and four parallel streams, both directions, per cipher.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"backupsync/internal/ftptest"

	"github.com/jlaffaye/ftp"
)

// blobServer serves "get" and an 8-byte size (it sends that many bytes) or
// "put" (it reads until EOF and answers "ok") on every connection.
func blobServer(t testing.TB, host string) net.Listener {
	ln := listenOn(t, host)
	chunk := randomData(t, 1<<20)
	serveConns(t, ln, func(c net.Conn) {
		cmd := make([]byte, 3)
		if _, err := io.ReadFull(c, cmd); err != nil {
			return
		}
		if string(cmd) == "get" {
			var sb [8]byte
			if _, err := io.ReadFull(c, sb[:]); err != nil {
				return
			}
			size := int64(binary.BigEndian.Uint64(sb[:]))
			for left := size; left > 0; left -= int64(len(chunk)) {
				if _, err := c.Write(chunk[:min(left, int64(len(chunk)))]); err != nil {
					return
				}
			}
			return
		}
		io.Copy(io.Discard, c)
		c.Write([]byte("ok"))
	})
	return ln
}

// transfer runs streams parallel get or put transfers of size bytes each
// over dial and returns MiB/s in total.
func transfer(t testing.TB, dial func() (net.Conn, error), op string, streams int, size int64) float64 {
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	chunk := make([]byte, 256<<10)
	start := time.Now()
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial()
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			cmd := []byte(op)
			if op == "get" {
				cmd = binary.BigEndian.AppendUint64(cmd, uint64(size))
			}
			if _, err := c.Write(cmd); err != nil {
				errs <- err
				return
			}
			if op == "get" {
				n, err := io.Copy(io.Discard, c)
				if err == nil && n != size {
					err = fmt.Errorf("got %d of %d bytes", n, size)
				}
				errs <- err
				return
			}
			for left := size; left > 0; left -= int64(len(chunk)) {
				if _, err := c.Write(chunk[:min(left, int64(len(chunk)))]); err != nil {
					errs <- err
					return
				}
			}
			if cw, ok := c.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			b, err := io.ReadAll(c)
			if err == nil && string(b) != "ok" {
				err = fmt.Errorf("put answer %q", b)
			}
			errs <- err
		}()
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("%s x%d: %v", op, streams, err)
		}
	}
	return float64(size*int64(streams)) / (1 << 20) / d.Seconds()
}

func TestMeasureThroughput(t *testing.T) {
	if os.Getenv("TUNNEL_MEASURE") == "" {
		t.Skip("set TUNNEL_MEASURE=1 to measure throughput")
	}
	size := int64(512 << 20)
	if s := os.Getenv("TUNNEL_MEASURE_MIB"); s != "" {
		n, _ := strconv.Atoi(s)
		size = int64(n) << 20
	}
	fs := startFTP(t, ipFTP) // also makes sure the sshd login user exists
	blob := blobServer(t, ipLeak)
	p := newPair(t)
	// report prints, per direction and stream count, the best MiB/s of
	// three runs (the machine is shared: contention only ever lowers a
	// figure) and the CPU seconds spent per GiB moved, in this process and
	// in the processes pids returns (ssh, sshd): a figure that does not
	// depend on what else the machine is doing.
	report := func(name string, dial func() (net.Conn, error), pids func() []int) {
		var parts []string
		for _, op := range []string{"get", "put"} {
			for _, streams := range []int{1, 4} {
				mibs, cpu := 0.0, 0.0
				for range 3 {
					c0 := cpuSeconds(pids())
					mibs = max(mibs, transfer(t, dial, op, streams, size/int64(streams)))
					cpu += cpuSeconds(pids()) - c0
				}
				parts = append(parts, fmt.Sprintf("%s x%d %4.0f MiB/s %4.2f cpu-s/GiB", op, streams, mibs, cpu/3/(float64(size)/(1<<30))))
			}
		}
		t.Logf("%-40s %s", name, strings.Join(parts, " | "))
	}
	self := func() []int { return nil }

	// Ours: our client and our server.
	for _, cipher := range []string{"aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr"} {
		srv := startServer(t, listenOn(t, ipServer), p.server, blob.Addr().String(), func(cfg *ServerConfig) { cfg.Ciphers = []string{cipher} })
		c, _ := newClient(t, p.client, []string{srv.Addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipLeak; cfg.Ciphers = []string{cipher} })
		report("ours "+cipher, func() (net.Conn, error) { return c.DialContext(context.Background(), "tcp", blob.Addr().String()) }, self)
		if cipher == defaultCiphers[0] {
			// Four streams over two SSH connections instead of one.
			c2, _ := newClient(t, p.client, []string{srv.Addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipLeak; cfg.Ciphers = []string{cipher} })
			var mu sync.Mutex
			n := 0
			report("ours "+cipher+" 2 SSH conns", func() (net.Conn, error) {
				mu.Lock()
				n++
				cl := c
				if n%2 == 0 {
					cl = c2
				}
				mu.Unlock()
				return cl.DialContext(context.Background(), "tcp", blob.Addr().String())
			}, self)
			// FTP RETR and STOR through the tunnel to vsftpd.
			data := randomData(t, int(size))
			os.WriteFile(filepath.Join(fs.Dir, fs.Volume, "m.bin"), data, 0o644)
			srvF := startServer(t, listenOn(t, ipServer), p.server, fs.Addr(), nil)
			cf, _ := newClient(t, p.client, []string{srvF.Addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipFTP })
			ftpMeasure(t, "ours FTP via vsftpd", cf.DialContext, fs, size)
			ftpMeasure(t, "direct FTP to vsftpd (no tunnel)", (&net.Dialer{}).DialContext, fs, size)
		}
	}

	// OpenSSH: ssh -L to sshd, same box, same targets.
	sshd := startForwardingSSHD(t, p, ipLeak)
	for _, cipher := range []string{"", "aes128-gcm@openssh.com"} {
		before := descendants(os.Getpid())
		local := openSSHForward(t, p, sshd, sshd.Addr, blob.Addr().String(), cipher)
		name := "OpenSSH ssh -L " + cipher
		if cipher == "" {
			name += "(default cipher)"
		}
		// ssh and the sshd session processes serving it.
		pids := func() []int {
			var out []int
			for _, p := range descendants(os.Getpid()) {
				if !slices.Contains(before, p) {
					out = append(out, p)
				}
			}
			return out
		}
		report(name, func() (net.Conn, error) { return net.Dial("tcp", local) }, pids)
	}
}

// startForwardingSSHD starts OpenSSH's sshd on ipSSHD with p's client key
// authorized for port forwarding to targetHost only.
func startForwardingSSHD(t *testing.T, p pair, targetHost string) *sshdProc {
	t.Helper()
	line, err := p.client.ClientKeyLine("C1", "")
	if err != nil {
		t.Fatal(err)
	}
	return startSSHD(t, ipSSHD, `restrict,port-forwarding,permitopen="`+targetHost+`:*" `+line+"\n")
}

// openSSHForward runs ssh -N -L with p's client key against sshd, reached at
// addr (its own address or a link in front of it), forwarding a fresh local
// port to target, and returns the local address once it accepts. cipher ""
// leaves ssh its default.
func openSSHForward(t *testing.T, p pair, sshd *sshdProc, addr, target, cipher string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(sshd.HostPub)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte("["+host+"]:"+port+" "+f[0]+" "+f[1]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := sshArgs{identity: filepath.Join(p.client.Dir(), "conn", "C1", "id_ed25519"), knownHosts: kh, user: ftptest.SystemUser}
	local := net.JoinHostPort(ipLocal, strconv.Itoa(freePort(t, ipLocal)))
	a := append(args.common(port), "-N", "-o", "ExitOnForwardFailure=yes", "-L", local+":"+target)
	if cipher != "" {
		a = append(a, "-c", cipher)
	}
	startSSH(t, append(a, host))
	waitTCP(t, local, 10*time.Second)
	return local
}

func ftpMeasure(t *testing.T, name string, dial func(ctx context.Context, network, addr string) (net.Conn, error), fs *ftptest.Server, size int64) {
	var parts []string
	for _, streams := range []int{1, 4} {
		conns := make([]*ftp.ServerConn, streams)
		for i := range conns {
			conns[i] = dialFTP(t, dial, fs.Addr(), fs)
			defer conns[i].Quit()
		}
		start := time.Now()
		var wg sync.WaitGroup
		for i := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := conns[i].Retr("/" + fs.Volume + "/m.bin")
				if err != nil {
					t.Error(err)
					return
				}
				n, err := io.Copy(io.Discard, r)
				if err != nil || n != size {
					t.Errorf("RETR %d bytes: %v", n, err)
				}
				r.Close()
			}()
		}
		wg.Wait()
		parts = append(parts, fmt.Sprintf("RETR x%d %6.0f", streams, float64(size*int64(streams))/(1<<20)/time.Since(start).Seconds()))
		start = time.Now()
		for i := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pr, pw := io.Pipe()
				go func() {
					buf := make([]byte, 256<<10)
					for left := size / int64(streams); left > 0; left -= int64(len(buf)) {
						pw.Write(buf[:min(left, int64(len(buf)))])
					}
					pw.Close()
				}()
				if err := conns[i].Stor(fmt.Sprintf("/%s/s%d.bin", fs.Volume, i), pr); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		parts = append(parts, fmt.Sprintf("STOR x%d %6.0f", streams, float64(size)/(1<<20)/time.Since(start).Seconds()))
	}
	t.Logf("%-44s MiB/s: %s", name, strings.Join(parts, "  "))
}

// cpuSeconds returns the user+system CPU time of this process and of pids.
func cpuSeconds(pids []int) float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	total := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.Atoi(f[11])
		st, _ := strconv.Atoi(f[12])
		total += float64(ut+st) / 100 // USER_HZ
	}
	return total
}

// BenchmarkTunnelGet moves b.N MiB from a TCP source through our client and
// server (aes128-gcm, one stream), for profiling.
func BenchmarkTunnelGet(b *testing.B) {
	blob := blobServer(b, ipLeak)
	p := newPair(b)
	srv := startServer(b, listenOn(b, ipServer), p.server, blob.Addr().String(), nil)
	c, _ := newClient(b, p.client, []string{srv.Addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipLeak })
	b.SetBytes(1 << 20)
	b.ResetTimer()
	transfer(b, func() (net.Conn, error) { return c.DialContext(context.Background(), "tcp", blob.Addr().String()) }, "get", 1, int64(b.N)<<20)
}
