package tunnel

import (
	"bytes"
	"strconv"
	"sync"
	"time"
)

// FTP connection tracking: which data ports a forwarded control connection
// may open, in the manner of Linux's nf_conntrack_ftp. The server reads both
// directions of every forwarded connection to the archive FTP's control
// port as it copies them (never holding a byte back), pairs each final
// reply with the command it answers, and when a PASV is answered by 227 or
// an EPSV by 229, lets the SSH connection that carries the control
// connection open that data port once within the expectation window.
//
// Once the control connection turns to TLS (any 234 reply, or bytes that
// are not FTP text in either direction) nothing more can be read: its SSH
// connection may then open ports of the configured passive range instead
// (ServerConfig.PassivePortMin/Max), and nothing else.

const (
	// DefaultExpectWindow is how long an announced data port may be opened.
	DefaultExpectWindow = 30 * time.Second
	// maxFTPLine is how much of a line the tracker keeps; the rest of a
	// longer line passes through unread, and a 227 or 229 reply cut there
	// announces nothing.
	maxFTPLine = 512
	// maxPendingCommands bounds the commands sent and not yet answered that
	// the tracker remembers; a client that pipelines more loses its
	// announcements on that control connection (refused, never widened).
	maxPendingCommands = 128
	// maxExpected bounds the announced, unused ports per SSH connection;
	// beyond it the one expiring soonest is forgotten.
	maxExpected = 256
)

// Commands the tracker tells apart; every other command is cmdOther.
const (
	cmdOther byte = iota
	cmdPASV
	cmdEPSV
)

// lineScanner splits a byte stream into lines of at most maxFTPLine bytes
// kept (longer lines are reported cut), without copying the stream.
type lineScanner struct {
	buf []byte
	cut bool
}

// feed calls line for every complete line in p (without CR LF).
func (s *lineScanner) feed(p []byte, line func(l []byte, cut bool)) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := maxFTPLine - len(s.buf); len(chunk) > room {
			s.buf = append(s.buf, chunk[:room]...)
			s.cut = true
		} else {
			s.buf = append(s.buf, chunk...)
		}
		if i < 0 {
			return
		}
		l := bytes.TrimSuffix(s.buf, []byte{'\r'})
		line(l, s.cut)
		s.buf, s.cut = s.buf[:0], false
		p = p[i+1:]
	}
}

// ftpTrack follows one forwarded control connection.
type ftpTrack struct {
	exp *expectations

	mu      sync.Mutex
	tls     bool   // turned to TLS (or not FTP text): nothing more is read
	lost    bool   // too many unanswered commands: no more announcements
	greeted bool   // the greeting (answering no command) went by
	multi   string // code of the multi-line reply being read, "" if none
	pending []byte // commands sent and not answered yet, oldest first
	up, dn  lineScanner
}

func newFTPTrack(exp *expectations) *ftpTrack { return &ftpTrack{exp: exp} }

// client reads bytes the client sent to the FTP server.
func (t *ftpTrack) client(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tls {
		return
	}
	t.up.feed(p, t.command)
}

// server reads bytes the FTP server sent to the client; they are read
// before they are passed on, so an announced port is known before the
// client can have seen the announcement.
func (t *ftpTrack) server(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tls {
		return
	}
	t.dn.feed(p, t.reply)
}

// close ends the tracking when the control connection closes.
func (t *ftpTrack) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tls {
		t.exp.tlsEnded()
	}
	t.tls = true // read nothing more
}

func (t *ftpTrack) toTLS() {
	if !t.tls {
		t.tls = true
		t.exp.tlsStarted()
	}
}

// text reports whether l can be a line of FTP text: no control characters
// but tab. A TLS record never passes for long.
func text(l []byte) bool {
	for _, c := range l {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func (t *ftpTrack) command(l []byte, cut bool) {
	if t.tls {
		return
	}
	if !text(l) {
		t.toTLS()
		return
	}
	verb := l
	if i := bytes.IndexByte(l, ' '); i >= 0 {
		verb = l[:i]
	}
	c := cmdOther
	switch {
	case bytes.EqualFold(verb, []byte("PASV")):
		c = cmdPASV
	case bytes.EqualFold(verb, []byte("EPSV")):
		c = cmdEPSV
	}
	if len(t.pending) >= maxPendingCommands {
		t.lost = true
		return
	}
	t.pending = append(t.pending, c)
}

func (t *ftpTrack) reply(l []byte, cut bool) {
	if t.tls {
		return
	}
	if !text(l) {
		t.toTLS()
		return
	}
	start := len(l) >= 4 && isDigit(l[0]) && isDigit(l[1]) && isDigit(l[2]) && (l[3] == ' ' || l[3] == '-')
	if !start {
		// A line inside a multi-line reply, or no reply at all.
		return
	}
	code := string(l[:3])
	if t.multi != "" {
		if code == t.multi && l[3] == ' ' {
			t.multi = ""
			t.final(code, l, cut)
		}
		return
	}
	if l[3] == '-' {
		t.multi = code
		return
	}
	t.final(code, l, cut)
}

// final handles the last line of a reply.
func (t *ftpTrack) final(code string, l []byte, cut bool) {
	if code == "234" { // AUTH TLS (or SSL) accepted: TLS from the next byte on
		t.toTLS()
		return
	}
	if code[0] == '1' { // preliminary: the command's final reply follows
		return
	}
	if !t.greeted {
		t.greeted = true
		return
	}
	if len(t.pending) == 0 {
		return // a reply to no command: never an announcement
	}
	c := t.pending[0]
	t.pending = t.pending[1:]
	if t.lost || cut {
		return
	}
	var port int
	switch {
	case code == "227" && c == cmdPASV:
		port = parse227(l[4:])
	case code == "229" && c == cmdEPSV:
		port = parse229(l[4:])
	}
	if port > 0 {
		t.exp.announce(port)
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parse227 returns the port of a 227 reply's text, "Entering Passive Mode
// (h1,h2,h3,h4,p1,p2)" (RFC 959; the parentheses are optional, RFC 1123
// 4.1.2.6), or 0 if there is none.
func parse227(s []byte) int {
	i := bytes.IndexFunc(s, func(r rune) bool { return r >= '0' && r <= '9' })
	if i < 0 {
		return 0
	}
	s = s[i:]
	var n [6]int
	for k := range n {
		j := 0
		for j < len(s) && j < 4 && isDigit(s[j]) {
			j++
		}
		if j == 0 || j > 3 {
			return 0
		}
		v, _ := strconv.Atoi(string(s[:j]))
		if v > 255 {
			return 0
		}
		n[k] = v
		s = s[j:]
		if k < 5 {
			if len(s) == 0 || s[0] != ',' {
				return 0
			}
			s = s[1:]
		}
	}
	if len(s) > 0 && isDigit(s[0]) {
		return 0
	}
	port := n[4]<<8 | n[5]
	if port < 1 {
		return 0
	}
	return port
}

// parse229 returns the port of a 229 reply's text, "Entering Extended
// Passive Mode (|||port|)" with any delimiter in place of | (RFC 2428), or
// 0 if there is none.
func parse229(s []byte) int {
	i := bytes.IndexByte(s, '(')
	if i < 0 || len(s) < i+6 {
		return 0
	}
	s = s[i+1:]
	d := s[0]
	if d < 33 || d > 126 || isDigit(d) || s[1] != d || s[2] != d {
		return 0
	}
	s = s[3:]
	j := 0
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	if j == 0 || j > 5 || j+1 >= len(s) || s[j] != d || s[j+1] != ')' {
		return 0
	}
	port, _ := strconv.Atoi(string(s[:j]))
	if port < 1 || port > 65535 {
		return 0
	}
	return port
}

// expectations are the data ports one SSH connection may open: announced
// ones (each once, within the window) and, while one of its control
// connections is in TLS or was within the window, the passive range.
type expectations struct {
	window time.Duration
	now    func() time.Time

	mu       sync.Mutex
	ports    map[int]time.Time // announced port → when it expires
	tlsOpen  int               // control connections in TLS, open
	tlsUntil time.Time         // the last one closed: the range stays until then
}

func newExpectations(window time.Duration) *expectations {
	return &expectations{window: window, now: time.Now, ports: map[int]time.Time{}}
}

func (e *expectations) announce(port int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	if _, ok := e.ports[port]; !ok && len(e.ports) >= maxExpected {
		soonest, at := 0, time.Time{}
		for p, exp := range e.ports {
			if !exp.After(now) {
				delete(e.ports, p)
				continue
			}
			if soonest == 0 || exp.Before(at) {
				soonest, at = p, exp
			}
		}
		if len(e.ports) >= maxExpected {
			delete(e.ports, soonest)
		}
	}
	e.ports[port] = now.Add(e.window)
}

// take reports whether port was announced within the window, and forgets
// it: an announcement opens one data connection.
func (e *expectations) take(port int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	exp, ok := e.ports[port]
	if !ok {
		return false
	}
	delete(e.ports, port)
	return exp.After(e.now())
}

func (e *expectations) tlsStarted() {
	e.mu.Lock()
	e.tlsOpen++
	e.mu.Unlock()
}

func (e *expectations) tlsEnded() {
	e.mu.Lock()
	e.tlsOpen--
	e.tlsUntil = e.now().Add(e.window)
	e.mu.Unlock()
}

// inTLS reports whether a control connection of this SSH connection is in
// TLS, or was within the window.
func (e *expectations) inTLS() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tlsOpen > 0 || e.now().Before(e.tlsUntil)
}
