package tunnel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.3.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// Packets written by many goroutines at once (as x/crypto/ssh's channels
// do) arrive whole, each writer's in its order, none lost.
func TestGatheredWritesKeepEveryPacketWholeAndInOrder(t *testing.T) {
	a, b := tcpPair(t)
	tc := newTransportConn(a)
	const writers, packets = 8, 2000
	received := make(chan error, 1)
	go func() {
		next := make([]uint32, writers)
		hdr := make([]byte, 12)
		for n := 0; n < writers*packets; n++ {
			if _, err := io.ReadFull(b, hdr); err != nil {
				received <- err
				return
			}
			w, seq, size := binary.BigEndian.Uint32(hdr), binary.BigEndian.Uint32(hdr[4:]), binary.BigEndian.Uint32(hdr[8:])
			body := make([]byte, size)
			if _, err := io.ReadFull(b, body); err != nil {
				received <- err
				return
			}
			if w >= writers || seq != next[w] || !bytes.Equal(body, bytes.Repeat([]byte{byte(w)}, int(size))) {
				received <- errors.New("packet out of order or torn")
				return
			}
			next[w]++
		}
		received <- nil
	}()
	var mu sync.Mutex // x/crypto/ssh serialises its packet writes the same way
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range packets {
				size := 1 + (seq*7919+w*31)%40000 // small packets and large ones
				p := make([]byte, 12+size)
				binary.BigEndian.PutUint32(p, uint32(w))
				binary.BigEndian.PutUint32(p[4:], uint32(seq))
				binary.BigEndian.PutUint32(p[8:], uint32(size))
				copy(p[12:], bytes.Repeat([]byte{byte(w)}, size))
				mu.Lock()
				_, err := tc.Write(p)
				mu.Unlock()
				if err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-received:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("reader did not get every packet")
	}
	if err := tc.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// What was written before Close reaches the peer: the last packets of a
// connection (channel close, disconnect) are not dropped.
func TestCloseSendsWhatWasWrittenBefore(t *testing.T) {
	a, b := tcpPair(t)
	tc := newTransportConn(a)
	want := bytes.Repeat([]byte("last words "), 50000) // more than one send
	if _, err := tc.Write(want); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		all, _ := io.ReadAll(b)
		got <- all
	}()
	if err := tc.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if g := <-got; !bytes.Equal(g, want) {
		t.Fatalf("peer got %d bytes, want %d", len(g), len(want))
	}
	if !tc.lost() {
		t.Fatal("a closed transport must count as lost for its channels")
	}
	if _, err := tc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v, want net.ErrClosed", err)
	}
}

// A peer that reads nothing holds neither Close nor the writers for long:
// writers wait once maxPending bytes are queued, Close gives up flushing
// after flushOnClose, and every goroutine ends.
func TestStalledPeerHoldsNeitherCloseNorWriters(t *testing.T) {
	before := runtime.NumGoroutine()
	a, b := net.Pipe() // nothing reads b: every send blocks
	defer b.Close()
	tc := newTransportConn(a)
	if _, err := tc.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			_, err = tc.Write(make([]byte, 64<<10))
		}
		blocked <- err
	}()
	select {
	case err := <-blocked:
		t.Fatalf("writes to a stalled peer did not wait for room: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	start := time.Now()
	if err := tc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("close: %v", err)
	}
	if d := time.Since(start); d < flushOnClose/2 || d > flushOnClose+2*time.Second {
		t.Fatalf("close took %v, want about %v", d, flushOnClose)
	}
	if err := <-blocked; !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("waiting writer got %v, want a closed-connection error", err)
	}
	waitGoroutines(t, before, "close")
}

// A send that fails is reported by the next Write and closes the
// connection, so that x/crypto/ssh's reader, and every channel with it,
// sees the transport fail instead of waiting for replies that never come.
func TestFailedSendFailsLaterWritesAndTheReader(t *testing.T) {
	a, b := net.Pipe()
	tc := newTransportConn(a)
	b.Close() // the peer is gone: the flusher's send fails
	if _, err := tc.Write([]byte("hello")); err != nil {
		t.Fatalf("first write only queues: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		_, err = tc.Write([]byte("again"))
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write after a failed send: %v, want the send's error", err)
	}
	if _, err := tc.Read(make([]byte, 1)); err == nil {
		t.Fatal("read on a transport whose send failed succeeded")
	}
	if !tc.lost() {
		t.Fatal("failed send not recorded as lost")
	}
	tc.Close()
}

// A transport that never wrote runs no goroutine: the server drops the
// connections it refuses (too many) without closing their transport.
func TestUnusedTransportRunsNoGoroutine(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	before := runtime.NumGoroutine()
	_ = newTransportConn(a)
	if n := runtime.NumGoroutine(); n != before {
		t.Fatalf("%d goroutines before, %d after", before, n)
	}
}

// abort, the server's close under its lock, does not wait for a peer that
// reads nothing, and its flusher ends too.
func TestAbortDoesNotWaitForAStalledPeer(t *testing.T) {
	before := runtime.NumGoroutine()
	a, b := net.Pipe()
	defer b.Close()
	tc := newTransportConn(a)
	if _, err := tc.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tc.abort()
	if d := time.Since(start); d > flushOnClose/2 {
		t.Fatalf("abort took %v", d)
	}
	if _, err := tc.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after abort: %v, want net.ErrClosed", err)
	}
	waitGoroutines(t, before, "abort")
}

// gatedConn counts its Writes and holds each until gate is closed.
type gatedConn struct {
	net.Conn
	gate   chan struct{}
	writes atomic.Int32
}

func (g *gatedConn) Write(p []byte) (int, error) {
	g.writes.Add(1)
	<-g.gate
	return g.Conn.Write(p)
}

// What is written while a send is under way goes out together in the next
// send, not with one system call per packet.
func TestPacketsWrittenDuringASendGoOutTogether(t *testing.T) {
	a, b := tcpPair(t)
	g := &gatedConn{Conn: a, gate: make(chan struct{})}
	tc := newTransportConn(g)
	defer tc.Close()
	const packets, size = 100, 60 // a channel's small control messages
	got := make(chan int, 1)
	go func() {
		n, _ := io.ReadFull(b, make([]byte, (packets+1)*size))
		got <- n
	}()
	if _, err := tc.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.writes.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for range packets { // while the first send is held
		if _, err := tc.Write(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	close(g.gate)
	if n := <-got; n != (packets+1)*size {
		t.Fatalf("peer got %d bytes, want %d", n, (packets+1)*size)
	}
	if w := g.writes.Load(); w != 2 {
		t.Fatalf("%d packets went out in %d sends, want 2 (the first, then the rest together)", packets+1, w)
	}
}

// countingConn counts its Writes.
type countingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// Packets written by goroutines that are ready to run when the flusher
// wakes go out in one send: the flusher does not run ahead of them just
// because the first writer woke it. One processor makes the order of the
// goroutines the scheduler's, not the machine's.
func TestPacketsOfReadyWritersGoOutTogether(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	a, b := tcpPair(t)
	c := &countingConn{Conn: a}
	tc := newTransportConn(c)
	defer tc.Close()
	const writers, size = 16, 60
	got := make(chan int, 1)
	go func() {
		n, _ := io.ReadFull(b, make([]byte, writers*size))
		got <- n
	}()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := tc.Write(make([]byte, size)); err != nil {
				t.Error(err)
			}
		}()
	}
	runtime.Gosched() // every writer waits on start
	close(start)
	wg.Wait()
	if n := <-got; n != writers*size {
		t.Fatalf("peer got %d bytes, want %d", n, writers*size)
	}
	if w := c.writes.Load(); w > 2 {
		t.Fatalf("%d packets of ready writers went out in %d sends, want at most 2", writers, w)
	}
}
