package tunnel

// Throughput over a link with a round-trip time, not a test:
// TUNNEL_MEASURE=1 go test -run TestMeasureRoundTrip -v ./internal/tunnel/
// (without -race). The disaster-recovery cluster is usually at another site;
// an SSH channel carries at most one window of data per round trip, so this
// prints what one and four streams move through our tunnel and through
// OpenSSH (ssh -L to sshd) when every byte takes half the round-trip time
// each way.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"backupsync/internal/archive"
)

// startDelayLink listens on host and forwards every connection to target,
// delivering each byte oneWay after it arrived, in both directions, at any
// rate: a long link of unlimited bandwidth. Only the endpoints' windows bound
// what is in flight (TCP's on loopback are far larger than an SSH channel's),
// so a transfer through it shows the SSH channel window's limit.
func startDelayLink(t testing.TB, host, target string, oneWay time.Duration) string {
	ln := listenOn(t, host)
	serveConns(t, ln, func(c net.Conn) {
		s, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err != nil {
			return
		}
		defer s.Close()
		done := make(chan struct{})
		go func() { defer close(done); delayCopy(s, c, oneWay) }()
		delayCopy(c, s, oneWay)
		<-done
	})
	return ln.Addr().String()
}

// delayCopy copies src to dst, writing each chunk delay after it was read.
// At src's end it half-closes dst; when reading src or writing dst fails, it
// closes both, so a broken side breaks the other.
func delayCopy(dst, src net.Conn, delay time.Duration) {
	type chunk struct {
		b   []byte
		due time.Time
	}
	q := make(chan chunk, 8192)
	var readErr error
	go func() {
		defer close(q)
		for {
			b := make([]byte, 64<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{b[:n], time.Now().Add(delay)}
			}
			if err != nil {
				readErr = err
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.b); err != nil {
			src.Close()
			dst.Close()
			for range q { // let the reader end
			}
			return
		}
	}
	if readErr != io.EOF {
		dst.Close()
		return
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

func TestMeasureRoundTrip(t *testing.T) {
	if os.Getenv("TUNNEL_MEASURE") == "" {
		t.Skip("set TUNNEL_MEASURE=1 to measure throughput")
	}
	fs := startFTP(t, ipFTP) // also makes sure the sshd login user exists
	blob := blobServer(t, ipLeak)
	p := newPair(t)
	srv := startServer(t, listenOn(t, ipServer), p.server, blob.Addr().String(), nil)
	srvFTP := startServer(t, listenOn(t, ipServer2), p.server, fs.Addr(), nil)

	sshd := startForwardingSSHD(t, p, ipLeak)

	for _, rtt := range []time.Duration{0, 2 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond} {
		// Enough bytes for about a second at one window per round trip.
		size := int64(256 << 20)
		if rtt > 0 {
			size = min(size, int64(float64(2<<20)/rtt.Seconds()))
		}
		ourAddr, sshdAddr := srv.Addr, sshd.Addr
		if rtt > 0 {
			ourAddr = startDelayLink(t, ipProxy, srv.Addr, rtt/2)
			sshdAddr = startDelayLink(t, ipProxy, sshd.Addr, rtt/2)
		}

		c, _ := newClient(t, p.client, []string{ourAddr}, func(cfg *ClientConfig) { cfg.FTPHost = ipLeak })
		ours := func() (net.Conn, error) { return c.DialContext(context.Background(), "tcp", blob.Addr().String()) }

		local := openSSHForward(t, p, sshd, sshdAddr, blob.Addr().String(), defaultCiphers[0])
		openssh := func() (net.Conn, error) { return net.Dial("tcp", local) }

		var parts []string
		for _, tool := range []struct {
			name string
			dial func() (net.Conn, error)
		}{{"ours", ours}, {"OpenSSH", openssh}} {
			for _, streams := range []int{1, 4} {
				perStream := size
				if streams > 1 {
					perStream = size / 2 // four streams move twice the bytes in half the time
				}
				best := 0.0
				for range 2 { // the box is shared: contention only lowers a figure
					best = max(best, transfer(t, tool.dial, "put", streams, perStream))
				}
				parts = append(parts, fmt.Sprintf("%s x%d %4.0f", tool.name, streams, best))
			}
		}
		t.Logf("RTT %4v: put MiB/s  %s  (one 2 MiB window per RTT: %4.0f)", rtt, strings.Join(parts, "  "), windowRate(rtt))
		c.Close()

		// Small files: archive.Publish (what a copy does at the destination)
		// through the tunnel to vsftpd, one at a time on one connection.
		ftpAddr := srvFTP.Addr
		if rtt > 0 {
			ftpAddr = startDelayLink(t, ipProxy, srvFTP.Addr, rtt/2)
		}
		cf, _ := newClient(t, p.client, []string{ftpAddr}, func(cfg *ClientConfig) { cfg.FTPHost = ipFTP })
		ep := archive.Endpoint{Host: fs.Host, Port: fs.Port, User: fs.User, Password: fs.Password, Root: "/" + fs.Volume}
		ctx := context.Background()
		v, err := archive.Open(ctx, ep, archive.Options{Dial: cf.DialContext, MaxConns: 1})
		if err != nil {
			t.Fatal(err)
		}
		data := randomData(t, 16<<10)
		files := 200
		if rtt > 0 {
			files = max(10, int(time.Second/(10*rtt)))
		}
		dir := fmt.Sprintf("rtt%v", rtt)
		if err := v.Publish(ctx, dir+"/first", bytes.NewReader(data), int64(len(data)), 0); err != nil {
			t.Fatal(err) // it also creates dir: not timed
		}
		start := time.Now()
		for i := range files {
			name := fmt.Sprintf("%s/f%04d", dir, i)
			if err := v.Publish(ctx, name, bytes.NewReader(data), int64(len(data)), 0); err != nil {
				t.Fatalf("publish %s: %v", name, err)
			}
		}
		per := time.Since(start) / time.Duration(files)
		trips := ""
		if rtt > 0 {
			trips = fmt.Sprintf(" = %.1f round trips", per.Seconds()/rtt.Seconds())
		}
		t.Logf("RTT %4v: publish 16 KiB through the tunnel, one connection: %v per file%s", rtt, per.Round(10*time.Microsecond), trips)
		v.Close()
		cf.Close()
	}
}

// windowRate is one x/crypto/ssh channel window (2 MiB) per round trip, in
// MiB/s, or 0 for no round trip.
func windowRate(rtt time.Duration) float64 {
	if rtt == 0 {
		return 0
	}
	return 2 / rtt.Seconds()
}
