package tunnel

import (
	"strings"
	"testing"
	"time"
)

func TestParsePassiveReplies(t *testing.T) {
	for _, tc := range []struct {
		text string
		want int
	}{
		{"Entering Passive Mode (127,0,3,1,156,64).", 156<<8 | 64},
		{"Entering Passive Mode 127,0,3,1,4,1", 1025},
		{"=127,0,0,1,0,21", 21},
		{"Entering Passive Mode (127,0,3,1,256,1)", 0},
		{"Entering Passive Mode (127,0,3,1,1)", 0},
		{"Entering Passive Mode (127,0,3,1,1,1000)", 0},
		{"Entering Passive Mode (127,0,3,1,0,0)", 0},
		{"Entering Passive Mode", 0},
		{"", 0},
	} {
		if got := parse227([]byte(tc.text)); got != tc.want {
			t.Errorf("parse227(%q) = %d, want %d", tc.text, got, tc.want)
		}
	}
	for _, tc := range []struct {
		text string
		want int
	}{
		{"Entering Extended Passive Mode (|||6446|)", 6446},
		{"Extended Passive Mode Entered (!!!40001!)", 40001},
		{"(|||65535|)", 65535},
		{"(|||65536|)", 0},
		{"(|||0|)", 0},
		{"(|||123456|)", 0},
		{"(||1|6446|)", 0},
		{"(11164461)", 0},
		{"(|||6446)", 0},
		{"(|||6446|", 0},
		{"(|||", 0},
		{"no parenthesis |||6446|", 0},
	} {
		if got := parse229([]byte(tc.text)); got != tc.want {
			t.Errorf("parse229(%q) = %d, want %d", tc.text, got, tc.want)
		}
	}
}

// session plays a control connection through a tracker: each step is the
// client's or the server's bytes, in order.
type step struct {
	client bool
	data   string
}

func c(s string) step { return step{true, s} }
func r(s string) step { return step{false, s} }

func play(tr *ftpTrack, steps ...step) {
	for _, s := range steps {
		if s.client {
			tr.client([]byte(s.data))
		} else {
			tr.server([]byte(s.data))
		}
	}
}

func TestFTPTrackAnnouncements(t *testing.T) {
	greet := r("220 welcome\r\n")
	login := []step{c("USER u\r\n"), r("331 password\r\n"), c("PASS p\r\n"), r("230 ok\r\n")}
	for _, tc := range []struct {
		name  string
		steps []step
		open  []int // ports that must be open (each once)
		shut  []int // ports that must stay shut
		tls   bool
	}{
		{"EPSV", append(append([]step{greet}, login...), c("EPSV\r\n"), r("229 Entering Extended Passive Mode (|||40001|)\r\n")),
			[]int{40001}, []int{40002}, false},
		{"PASV", []step{greet, c("PASV\r\n"), r("227 Entering Passive Mode (127,0,3,1,156,64).\r\n")},
			[]int{156<<8 | 64}, nil, false},
		{"lower-case command, pipelined",
			[]step{greet, c("noop\r\npasv\r\nepsv\r\n"), r("200 ok\r\n227 =127,0,0,1,100,1\r\n229 (|||30001|)\r\n")},
			[]int{100<<8 | 1, 30001}, nil, false},
		{"227 split across reads",
			[]step{greet, c("PA"), c("SV\r"), c("\n"), r("22"), r("7 Entering Passive Mode (127,0,3,1,15"), r("6,64)\r"), r("\n")},
			[]int{156<<8 | 64}, nil, false},
		{"commands sent before the greeting",
			[]step{c("USER u\r\nPASS p\r\nEPSV\r\n"), r("220 hi\r\n331 pw\r\n230 ok\r\n229 (|||40003|)\r\n")},
			[]int{40003}, nil, false},
		{"preliminary replies do not answer",
			[]step{greet, c("RETR x\r\nEPSV\r\n"), r("150 opening\r\n226 done\r\n229 (|||40004|)\r\n")},
			[]int{40004}, nil, false},
		{"a 227 that answers no PASV",
			[]step{greet, c("NOOP\r\n"), r("227 Entering Passive Mode (127,0,3,1,156,64)\r\n")},
			nil, []int{156<<8 | 64}, false},
		{"a 229 answering PASV, a 227 answering EPSV",
			[]step{greet, c("PASV\r\nEPSV\r\n"), r("229 (|||40005|)\r\n227 (127,0,3,1,156,70)\r\n")},
			nil, []int{40005, 156<<8 | 70}, false},
		{"the greeting announces nothing",
			[]step{r("227 Entering Passive Mode (127,0,3,1,156,64)\r\n")},
			nil, []int{156<<8 | 64}, false},
		{"227 inside a multi-line reply",
			[]step{greet, c("STAT /\r\nPASV\r\n"),
				r("213-Status of /:\r\n227 Entering Passive Mode (127,0,3,1,33,99)\r\n213-more\r\n213 End\r\n227 (127,0,3,1,156,71)\r\n")},
			[]int{156<<8 | 71}, []int{33<<8 | 99}, false},
		{"a reply line longer than the bound",
			[]step{greet, c("PASV\r\n"), r("227 Entering Passive Mode " + strings.Repeat("x", 600) + " (127,0,3,1,156,72)\r\n"),
				c("EPSV\r\n"), r("229 (|||40006|)\r\n")},
			[]int{40006}, []int{156<<8 | 72}, false},
		{"the numbers past the bound",
			[]step{greet, c("EPSV\r\n"), r("229 " + strings.Repeat(" ", 520) + "(|||40007|)\r\n")},
			nil, []int{40007}, false},
		{"AUTH TLS: nothing read after 234",
			[]step{greet, c("AUTH TLS\r\n"), r("234 go\r\n"), c("EPSV\r\n"), r("229 (|||40008|)\r\n")},
			nil, []int{40008}, true},
		{"AUTH TLS refused: still read",
			[]step{greet, c("AUTH TLS\r\n"), r("504 no\r\n"), c("EPSV\r\n"), r("229 (|||40009|)\r\n")},
			[]int{40009}, nil, false},
		{"binary from the client",
			[]step{greet, c("\x16\x03\x01\x02\x00\x01\x00\r\nEPSV\r\n"), r("229 (|||40010|)\r\n")},
			nil, []int{40010}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp := newExpectations(time.Minute)
			tr := newFTPTrack(exp)
			play(tr, tc.steps...)
			for _, p := range tc.open {
				if !exp.take(p) {
					t.Errorf("port %d not announced", p)
				}
				if exp.take(p) {
					t.Errorf("port %d opens twice", p)
				}
			}
			for _, p := range tc.shut {
				if exp.take(p) {
					t.Errorf("port %d announced", p)
				}
			}
			if exp.inTLS() != tc.tls {
				t.Errorf("in TLS: %v, want %v", exp.inTLS(), tc.tls)
			}
			tr.close()
			if tc.tls && !exp.inTLS() {
				t.Error("the passive range closed with the control connection, not after the window")
			}
		})
	}
}

func TestFTPTrackBounds(t *testing.T) {
	exp := newExpectations(time.Minute)
	tr := newFTPTrack(exp)
	play(tr, r("220 hi\r\n"))
	// More unanswered commands than the bound: no announcement counts on
	// that control connection any more.
	play(tr, c(strings.Repeat("NOOP\r\n", maxPendingCommands)+"EPSV\r\n"))
	play(tr, r(strings.Repeat("200 ok\r\n", maxPendingCommands)+"229 (|||40001|)\r\n"))
	if exp.take(40001) {
		t.Error("announcement counted after the command queue overflowed")
	}
	// An endless line is read in bounded memory.
	tr2 := newFTPTrack(exp)
	for range 1000 {
		tr2.server([]byte(strings.Repeat("2", 4096)))
	}
	if len(tr2.dn.buf) > maxFTPLine {
		t.Fatalf("line buffer %d bytes, bound %d", len(tr2.dn.buf), maxFTPLine)
	}
}

func TestExpectationsWindowAndBound(t *testing.T) {
	now := time.Unix(1000, 0)
	exp := newExpectations(30 * time.Second)
	exp.now = func() time.Time { return now }
	exp.announce(40001)
	now = now.Add(31 * time.Second)
	if exp.take(40001) {
		t.Error("announcement usable after the window")
	}
	for p := range maxExpected + 10 {
		exp.announce(41000 + p)
		now = now.Add(time.Millisecond)
	}
	if len(exp.ports) > maxExpected {
		t.Fatalf("%d expectations kept, bound %d", len(exp.ports), maxExpected)
	}
	if exp.take(41000) || !exp.take(41000+maxExpected+9) {
		t.Error("the oldest announcement should go first")
	}
	exp.tlsStarted()
	if !exp.inTLS() {
		t.Fatal("not in TLS")
	}
	exp.tlsEnded()
	now = now.Add(29 * time.Second)
	if !exp.inTLS() {
		t.Error("range closed before the window")
	}
	now = now.Add(2 * time.Second)
	if exp.inTLS() {
		t.Error("range open after the window")
	}
}

// FuzzFTPTrack: any bytes in any split, both directions: no panic, and
// every buffer stays within its bound.
func FuzzFTPTrack(f *testing.F) {
	f.Add([]byte("USER u\r\nEPSV\r\n"), []byte("220 hi\r\n331 x\r\n229 (|||40001|)\r\n"), uint8(3))
	f.Add([]byte("PASV\r\n"), []byte("220-a\r\n220 b\r\n227 (1,2,3,4,5,6)\r\n"), uint8(7))
	f.Add([]byte("AUTH TLS\r\n"), []byte("220 hi\r\n234 ok\r\n\x16\x03"), uint8(1))
	f.Fuzz(func(t *testing.T, up, down []byte, split uint8) {
		exp := newExpectations(time.Minute)
		tr := newFTPTrack(exp)
		n := int(split%16) + 1
		for len(up) > 0 || len(down) > 0 {
			k := min(n, len(up))
			tr.client(up[:k])
			up = up[k:]
			k = min(n, len(down))
			tr.server(down[:k])
			down = down[k:]
		}
		if len(tr.up.buf) > maxFTPLine || len(tr.dn.buf) > maxFTPLine || len(tr.pending) > maxPendingCommands || len(exp.ports) > maxExpected {
			t.Fatal("a bound was exceeded")
		}
		tr.close()
	})
}
