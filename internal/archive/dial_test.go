package archive

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
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

// A listing of many directories logs in at most ListConns times, whatever
// MaxConns allows the copies: a login costs the server more than a listing.
func TestListingLogsInAtMostListConns(t *testing.T) {
	s := ftptest.Start(t, ftptest.KindVsftpd, kindHost[ftptest.KindVsftpd])
	for i := range 12 {
		writeLocal(t, s, fmt.Sprintf("DB/id_%d/level_0/node_0/data_000", i), randBytes(int64(i), 100))
	}
	for _, tc := range []struct{ maxConns, listConns, wantMax int }{
		{8, 0, defaultListConns},
		{8, 3, 3},
		{1, 0, 1},
	} {
		t.Run(fmt.Sprintf("MaxConns %d ListConns %d", tc.maxConns, tc.listConns), func(t *testing.T) {
			var controls atomic.Int32
			control := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
			opt := testOptions()
			opt.MaxConns, opt.ListConns = tc.maxConns, tc.listConns
			opt.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
				if addr == control {
					controls.Add(1)
				}
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			}
			v := openVolume(t, s, opt)
			l, err := v.ListNode(ctxT(t), "DB", 0)
			if err != nil || len(l.Files) != 12 {
				t.Fatalf("listing: %d files, %v", len(l.Files), err)
			}
			if n := int(controls.Load()); n > tc.wantMax || n < 1 {
				t.Errorf("%d logins for the listing, want 1 to %d", n, tc.wantMax)
			}
		})
	}
}
