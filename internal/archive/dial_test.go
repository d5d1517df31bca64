package archive

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"backupsync/internal/faultproxy"
	"backupsync/internal/ftptest"
)

// noDeadlineConn behaves like an SSH channel: deadlines are unsupported and
// its address is not a TCP address.
type noDeadlineConn struct{ net.Conn }

func (noDeadlineConn) SetDeadline(time.Time) error      { return errors.New("deadline not supported") }
func (noDeadlineConn) SetReadDeadline(time.Time) error  { return errors.New("deadline not supported") }
func (noDeadlineConn) SetWriteDeadline(time.Time) error { return errors.New("deadline not supported") }
func (noDeadlineConn) RemoteAddr() net.Addr             { return &net.UnixAddr{Name: "tunnel", Net: "unix"} }

// tunnelDial dials like a tunnel would: it records the addresses asked for.
func tunnelDial(dials *atomic.Int32, addrs chan<- string) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		select {
		case addrs <- addr:
		default:
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return noDeadlineConn{c}, nil
	}
}

func TestDialFunc(t *testing.T) {
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		checkGoroutines(t)
		writeLocal(t, s, "DB/id_1/level_0/node_0/f", randBytes(1, 100000))
		var dials atomic.Int32
		addrs := make(chan string, 1000)
		opt := testOptions()
		opt.Dial = tunnelDial(&dials, addrs)
		v := openVolume(t, s, opt)
		l, err := v.ListNode(ctxT(t), "DB", 0)
		if err != nil || len(l.Files) != 1 {
			t.Fatalf("list through a dial func: %v %v", l, err)
		}
		if dials.Load() < 2 {
			t.Errorf("dial func used %d times; data connections must use it too", dials.Load())
		}
		close(addrs)
		for a := range addrs {
			if h, _, _ := net.SplitHostPort(a); h != s.Host {
				t.Errorf("dialled %s, outside the endpoint's host %s", a, s.Host)
			}
		}
	})
}

// TestWatchdogWithoutDeadlines: a stalled server is noticed through a
// connection that has no deadlines.
func TestWatchdogWithoutDeadlines(t *testing.T) {
	checkGoroutines(t)
	s := ftptest.Start(t, ftptest.KindEmbedded, kindHost[ftptest.KindEmbedded])
	writeLocal(t, s, "DB/id_1/level_0/node_0/f", []byte("x"))
	p := faultproxy.Start(t, faultproxy.FTP, proxyHost, s.Addr())
	ep := endpointOf(s)
	ep.Host, ep.Port = p.Host(), p.Port()
	var dials atomic.Int32
	opt := testOptions()
	opt.OpTimeout = 2 * time.Second
	opt.Dial = tunnelDial(&dials, nil)
	v := openEP(t, ep, opt)
	p.Add(faultproxy.Fault{Conn: faultproxy.Data, Dir: faultproxy.Downstream, Action: faultproxy.Stall}) // also the retry on a fresh connection
	start := time.Now()
	_, err := v.ListNode(ctxT(t), "DB", 0)
	if err == nil || !IsTransient(err) {
		t.Errorf("stalled data connection: %v", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("watchdog took %v", d)
	}
	p.Clear()
	if _, err := v.ListNode(ctxT(t), "DB", 0); err != nil {
		t.Errorf("after the stall: %v", err)
	}
}
