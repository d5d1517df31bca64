package linkemu

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A request and its answer through the link take at least one RTT, every
// time, and arrive intact.
func TestRoundTripTakesRTT(t *testing.T) {
	const rtt = 40 * time.Millisecond
	srv := startServer(t, echo)
	_, addr := Start(t, Config{RTT: rtt}, ipLink, srv.addr())
	c := dial(t, addr)
	buf := make([]byte, 16)
	for i := range 5 {
		msg := []byte{'p', byte('0' + i)}
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		if !bytes.Equal(buf[:len(msg)], msg) {
			t.Fatalf("round trip %d: got %q, want %q", i, buf[:len(msg)], msg)
		}
		if took < rtt {
			t.Fatalf("round trip %d took %v, less than the link's RTT %v", i, took, rtt)
		}
	}
}

// Over a transfer of n bytes a direction delivers at most Burst + Rate × T:
// so n bytes take at least (n - Burst) / Rate, up and down alike.
func TestRateBoundsEachDirection(t *testing.T) {
	const (
		rate = 2 << 20 // B/s
		n    = 2 << 20
	)
	up := startServer(t, sink)
	down := startServer(t, source)
	link, err := New(Config{Rate: rate, RTT: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	upAddr, err := link.Listen(ipLink+":0", up.addr())
	if err != nil {
		t.Fatal(err)
	}
	downAddr, err := link.Listen(ipLink+":0", down.addr())
	if err != nil {
		t.Fatal(err)
	}
	burst := link.Config().Burst
	least := time.Duration(float64(n-burst) / rate * float64(time.Second))

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // up
		defer wg.Done()
		c := dial(t, upAddr)
		start := time.Now()
		got, err := upload(c, n)
		took := time.Since(start)
		if err != nil || got != n {
			t.Errorf("upload: the sink read %d of %d bytes: %v", got, n, err)
			return
		}
		if took < least {
			t.Errorf("%d bytes up at %d B/s took %v, less than %v", n, rate, took, least)
		}
	}()
	go func() { // down
		defer wg.Done()
		c := dial(t, downAddr)
		start := time.Now()
		if _, err := c.Write(binary.BigEndian.AppendUint64(nil, n)); err != nil {
			t.Error(err)
			return
		}
		got, err := io.Copy(io.Discard, c)
		took := time.Since(start)
		if err != nil || got != n {
			t.Errorf("download: read %d of %d bytes: %v", got, n, err)
			return
		}
		if took < least {
			t.Errorf("%d bytes down at %d B/s took %v, less than %v", n, rate, took, least)
		}
	}()
	wg.Wait()
	if st := link.Stats(); st.Up < n || st.Down < n {
		t.Errorf("stats: %+v, want at least %d bytes each way", st, n)
	}
}

// Two connections share one direction's rate: together they take at least
// as long as their sum alone, and neither starves the other.
func TestConnectionsShareTheRate(t *testing.T) {
	const (
		rate = 2 << 20 // B/s
		n    = 1 << 20 // per connection
	)
	var got [2]atomic.Int64
	srv := startServer(t, func(c *net.TCPConn) {
		var id [1]byte
		if _, err := io.ReadFull(c, id[:]); err != nil || id[0] > 1 {
			return
		}
		buf := make([]byte, 32<<10)
		var total int64
		for {
			k, err := c.Read(buf)
			total += int64(k)
			got[id[0]].Add(int64(k))
			if err != nil {
				break
			}
		}
		c.Write(binary.BigEndian.AppendUint64(nil, uint64(total)))
	})
	link, addr := Start(t, Config{Rate: rate, RTT: 2 * time.Millisecond}, ipLink, srv.addr())
	burst := link.Config().Burst
	least := time.Duration(float64(2*n-burst) / rate * float64(time.Second))

	type result struct {
		id    int
		other int64 // what the other connection had delivered when this one finished
		err   error
	}
	results := make(chan result, 2)
	start := time.Now()
	for id := range 2 {
		c := dial(t, addr)
		go func() {
			if _, err := c.Write([]byte{byte(id)}); err != nil {
				results <- result{id: id, err: err}
				return
			}
			k, err := upload(c, n)
			if err == nil && k != n {
				err = errors.New("short upload")
			}
			results <- result{id: id, other: got[1-id].Load(), err: err}
		}()
	}
	first := <-results
	second := <-results
	took := time.Since(start)
	for _, r := range []result{first, second} {
		if r.err != nil {
			t.Fatalf("connection %d: %v", r.id, r.err)
		}
	}
	if took < least {
		t.Errorf("two uploads of %d bytes at %d B/s took %v, less than %v", n, rate, took, least)
	}
	if first.other < n/4 {
		t.Errorf("when connection %d finished the other had delivered %d of %d bytes: the rate is not shared", first.id, first.other, n)
	}
}

// A half-close travels both ways: the other direction keeps flowing.
func TestHalfClose(t *testing.T) {
	t.Run("client first", func(t *testing.T) {
		srv := startServer(t, echo)
		_, addr := Start(t, Config{RTT: 10 * time.Millisecond}, ipLink, srv.addr())
		c := dial(t, addr)
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "hello|done" {
			t.Fatalf("read %q, %v; want hello|done then EOF", b, err)
		}
	})
	t.Run("server first", func(t *testing.T) {
		late := make(chan string, 1)
		srv := startServer(t, func(c *net.TCPConn) {
			c.Write([]byte("greeting"))
			c.CloseWrite()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			b, err := io.ReadAll(c)
			if err != nil {
				late <- "error: " + err.Error()
				return
			}
			late <- string(b)
		})
		_, addr := Start(t, Config{RTT: 10 * time.Millisecond}, ipLink, srv.addr())
		c := dial(t, addr)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "greeting" {
			t.Fatalf("read %q, %v; want greeting then EOF", b, err)
		}
		if _, err := c.Write([]byte("late answer")); err != nil {
			t.Fatal(err)
		}
		c.CloseWrite()
		if got := <-late; got != "late answer" {
			t.Fatalf("the server read %q after its half-close, want %q", got, "late answer")
		}
	})
}

// A reader that does not read holds the writer back: the link holds at
// most Queue bytes of the connection, the writer blocks, and everything it
// wrote arrives once the reader reads.
func TestSlowReaderExertsBackPressure(t *testing.T) {
	const queue = 256 << 10
	release := make(chan struct{})
	received := make(chan int64, 1)
	srv := startServerWith(t, smallRcvBuf, func(c *net.TCPConn) {
		select {
		case <-release:
		case <-t.Context().Done(): // the test failed early
			return
		}
		n, _ := io.Copy(io.Discard, c)
		received <- n
	})
	link, addr := Start(t, Config{RTT: 4 * time.Millisecond, Queue: queue}, ipLink, srv.addr())
	c := dial(t, addr)
	c.SetWriteBuffer(64 << 10)

	// Far more than every buffer on the way (two sockets' kernel buffers
	// on each side, and Queue) can hold.
	const total = 512 << 20
	c.SetWriteDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1<<20)
	var written int64
	for written < total {
		n, err := c.Write(buf)
		written += int64(n)
		if st := link.Stats(); st.QueuedUp > queue+chunk {
			t.Fatalf("the link holds %d bytes of one connection, more than its queue %d", st.QueuedUp, queue)
		}
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal(err)
			}
			break
		}
	}
	if written >= total {
		t.Fatalf("wrote all %d bytes to a reader that reads nothing: no back-pressure", written)
	}
	close(release)
	c.SetWriteDeadline(time.Time{})
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-received:
		if n != written {
			t.Fatalf("the reader got %d bytes, the writer wrote %d", n, written)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the reader did not get the bytes within 30s")
	}
}

// Close stops accepting, closes every relayed connection (idle, sending,
// stalled on a reader that does not read, half-closed, waiting in the
// delay queue) and leaves no goroutine behind.
func TestCloseEndsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	stall := make(chan struct{})
	stalled := startServerWith(t, smallRcvBuf, func(c *net.TCPConn) {
		select {
		case <-stall:
		case <-t.Context().Done(): // the test failed early
		}
	})
	echoes := startServer(t, echo)
	link, err := New(Config{RTT: 200 * time.Millisecond, Rate: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	toStalled, err := link.Listen(ipLink+":0", stalled.addr())
	if err != nil {
		t.Fatal(err)
	}
	toEcho, err := link.Listen(ipLink+":0", echoes.addr())
	if err != nil {
		t.Fatal(err)
	}
	var clients []*net.TCPConn
	dialLink := func(addr string) *net.TCPConn {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c.(*net.TCPConn))
		return c.(*net.TCPConn)
	}
	dialLink(toEcho) // idle
	inDelay := dialLink(toEcho)
	inDelay.Write([]byte("still on the wire when the link closes"))
	half := dialLink(toStalled)
	half.Write([]byte("x"))
	half.CloseWrite()
	pusher := dialLink(toStalled)
	pushed := make(chan error, 1)
	go func() { // blocks once the stalled reader's buffers are full
		buf := make([]byte, 256<<10)
		for {
			if _, err := pusher.Write(buf); err != nil {
				pushed <- err
				return
			}
		}
	}()
	waitFor(t, 10*time.Second, "every connection relayed", func() bool { return link.Stats().Active == 4 })
	waitFor(t, 10*time.Second, "the stalled connection's queue filling", func() bool { return link.Stats().QueuedUp > 1<<20 })

	closed := make(chan error, 1)
	go func() { closed <- link.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return within 10s")
	}
	if st := link.Stats(); st.Active != 0 || st.QueuedUp != 0 || st.QueuedDown != 0 {
		t.Fatalf("after Close: %+v", st)
	}
	for _, a := range []string{toStalled, toEcho} {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Fatalf("%s still accepts after Close", a)
		}
	}
	for i, c := range clients {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("client %d: its connection stayed open after Close", i)
		}
	}
	select {
	case <-pushed:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer to the stalled reader is still blocked after Close")
	}
	if err := link.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := link.Listen(ipLink+":0", echoes.addr()); err == nil {
		t.Fatal("Listen on a closed link succeeded")
	}
	close(stall)
	for _, c := range clients {
		c.Close()
	}
	stalled.close()
	echoes.close()
	waitGoroutines(t, before)
}

// A target that cannot be dialled closes the client's connection and is
// counted.
func TestDialFailureClosesClient(t *testing.T) {
	ln, err := net.Listen("tcp4", ipTarget+":0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	link, addr := Start(t, Config{RTT: 2 * time.Millisecond, DialTimeout: 2 * time.Second}, ipLink, dead)
	c := dial(t, addr)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the client's connection stayed open though the target is down")
	}
	waitFor(t, 5*time.Second, "the failed dial counted", func() bool { return link.Stats().DialErrors == 1 })
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, tc := range []struct{ listen, target, want string }{
		{"10.1.2.3:0", ipTarget + ":21", "not a loopback address"},
		{"0.0.0.0:0", ipTarget + ":21", "not a loopback address"},
		{"[::]:0", ipTarget + ":21", "not a loopback address"},
		{"localhost:0", ipTarget + ":21", "not an IP address"},
		{ipLink, ipTarget + ":21", "want a loopback IP and a port"},
		{ipLink + ":0", "192.168.1.10:22", "not a loopback address"},
		{ipLink + ":0", "8.8.8.8:53", "not a loopback address"},
		{ipLink + ":0", "[2001:db8::1]:22", "not a loopback address"},
		{ipLink + ":0", "example.com:21", "not an IP address"},
		{ipLink + ":0", ipTarget + ":99999", "not a number"},
		{ipLink + ":0", ipTarget + ":ftp", "not a number"},
	} {
		l, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		addr, err := l.Listen(tc.listen, tc.target)
		l.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Listen(%q, %q) = %q, %v; want an error with %q", tc.listen, tc.target, addr, err, tc.want)
		}
	}
	if err := checkLoopback("[::1]:22"); err != nil {
		t.Errorf("::1 refused: %v", err)
	}
	if err := checkLoopback("127.255.0.9:22"); err != nil {
		t.Errorf("127.255.0.9 refused: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{RTT: -time.Millisecond}, "negative"},
		{Config{Rate: -1}, "negative"},
		{Config{Burst: 100}, "below one packet"},
		{Config{Queue: -1}, "negative"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
	for _, tc := range []struct {
		cfg          Config
		queue, burst int
	}{
		{Config{}, 16 << 20, 64 << 10},
		{Config{Rate: 125_000_000, RTT: 50 * time.Millisecond}, 125_000_000/40 + 4<<20, 500_000},
		{Config{Rate: 1 << 20, Queue: 1000}, 64 << 10, 64 << 10},
	} {
		l, err := New(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Config(); got.Queue != tc.queue || got.Burst != tc.burst || got.DialTimeout != 5*time.Second {
			t.Errorf("New(%+v).Config() = queue %d burst %d dial %v; want queue %d, burst %d, dial 5s", tc.cfg, got.Queue, got.Burst, got.DialTimeout, tc.queue, tc.burst)
		}
		l.Close()
	}
}
