package tunnel

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func TestWatchdogClosesStalledRead(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	var idled atomic.Int32
	cc := newChanConn(a, &net.TCPAddr{IP: net.IPv4(127, 0, 3, 1), Port: 21}, 200*time.Millisecond, nil, nil, func(*chanConn) { idled.Add(1) })
	start := time.Now()
	_, err := cc.Read(make([]byte, 10))
	if !errors.Is(err, ErrIdle) {
		t.Fatalf("read error %v, want ErrIdle", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Fatalf("watchdog fired after %v", d)
	}
	if idled.Load() != 1 {
		t.Fatalf("onIdle called %d times", idled.Load())
	}
	if err := cc.Close(); err != nil {
		t.Fatalf("close after idle: %v", err)
	}
}

func TestWatchdogSparesProgressAndRestingConns(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	cc := newChanConn(a, &net.TCPAddr{}, 150*time.Millisecond, nil, nil, nil)
	defer cc.Close()
	// Resting with no operation pending for several idle periods is fine.
	time.Sleep(400 * time.Millisecond)
	// A slow but steady writer keeps a long read alive.
	go func() {
		for i := 0; i < 6; i++ {
			time.Sleep(60 * time.Millisecond)
			b.Write([]byte{byte(i)})
		}
	}()
	buf := make([]byte, 1)
	for i := 0; i < 6; i++ {
		if _, err := io.ReadFull(cc, buf); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
}

func TestChanConnAddrDeadlinesAndClose(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	raddr := &net.TCPAddr{IP: net.IPv4(127, 0, 3, 1), Port: 2021}
	cc := newChanConn(a, raddr, 0, nil, nil, nil)
	if ta, ok := cc.RemoteAddr().(*net.TCPAddr); !ok || ta.String() != "127.0.3.1:2021" {
		t.Fatalf("RemoteAddr %v", cc.RemoteAddr())
	}
	if err := cc.SetDeadline(time.Now().Add(time.Second)); !errors.Is(err, ErrDeadlineUnsupported) {
		t.Fatalf("SetDeadline: %v", err)
	}
	if err := cc.SetReadDeadline(time.Time{}); err != nil {
		t.Fatalf("clearing a deadline: %v", err)
	}
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
}
