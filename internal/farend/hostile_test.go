package farend

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"backupsync/internal/archive"
)

// raw is a hostile client speaking frames by hand.
type raw struct {
	t  *testing.T
	c  net.Conn
	fr *frameReader
}

func (e *pipeEnd) raw(t *testing.T, l Login) *raw {
	t.Helper()
	rw, err := e.open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r := &raw{t: t, c: rw.(net.Conn), fr: newFrameReader(rw)}
	t.Cleanup(func() { r.c.Close() })
	r.send(tLogin, 0, ssh.Marshal(loginMsg{Version: protocolVersion, User: l.User, Password: l.Password, Root: l.Root}))
	if res := r.result(0); res.Kind != kindOK {
		t.Fatalf("login: %+v", res)
	}
	return r
}

func (r *raw) send(typ byte, id uint32, payload []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write(appendFrame(nil, typ, id, payload)); err != nil {
		r.t.Fatalf("send frame %d: %v", typ, err)
	}
}

// result reads frames until the result of id.
func (r *raw) result(id uint32) resultMsg {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		f, err := r.fr.read()
		if err != nil {
			r.t.Fatalf("waiting for the result of %d: %v", id, err)
		}
		if f.typ == tResult && f.id == id {
			var m resultMsg
			if err := decode(f.payload, &m); err != nil {
				r.t.Fatal(err)
			}
			return m
		}
	}
}

// closed waits until the far end closes the channel.
func (r *raw) closed() {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		if _, err := r.fr.read(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				r.t.Fatal("the far end did not close the channel")
			}
			return
		}
	}
}

func (r *raw) publish(id uint32, path string, size, from uint64, body []byte, ok bool, crc uint32) {
	r.t.Helper()
	r.send(tPublish, id, ssh.Marshal(publishMsg{Path: path, Size: size, From: from}))
	for len(body) > 0 {
		n := min(len(body), 64<<10)
		r.send(tData, id, body[:n])
		body = body[n:]
	}
	r.send(tEnd, id, ssh.Marshal(endMsg{OK: ok, CRC: crc}))
}

func sum(b []byte) uint32 { return crc32.Checksum(b, crcTable) }

// TestHostilePaths: paths outside <DB>/id_*/level_*/node_*/, with "..",
// absolute, with control characters, are refused without touching the FTP
// server, for every request; the channel goes on serving.
func TestHostilePaths(t *testing.T) {
	srv := startFTP(t)
	e := newPipeEnd(t, srv, nil)
	r := e.raw(t, login(srv))
	bad := []string{
		"../etc/passwd", "/etc/passwd", "DB/id_1/level_0/node_0/../../../../x", "DB/id_1/level_0/node_0/./x",
		"DB/id_1/level_0/node_0/", "DB/id_1/level_0/node_0//x", "DB/id_1/level_0/x", "DB/id_x/level_0/node_0/x",
		"DB/id_1/level_0/node_a/x", "x", "DB/id_1/level_0/node_0/a\nb", "DB/id_1/level_0/node_0/a\x00b",
		"DB\\..\\x/id_1/level_0/node_0/f", "DB/id_1/level_0/node_0/a..b", "", strings.Repeat("a/", 3000) + "x",
		"DB/id_1/level_0/node_0/\xff", ".backupsync-part", "DB/id_1/level_0/node_0/x/..",
	}
	id := uint32(1)
	for _, p := range bad {
		r.publish(id, p, 3, 0, []byte("abc"), true, sum([]byte("abc")))
		if res := r.result(id); res.Kind != kindRefused {
			t.Errorf("publish %q: %+v", p, res)
		}
		id++
		for _, typ := range []byte{tDelete, tRead} {
			payload := ssh.Marshal(pathMsg{Path: p})
			if typ == tRead {
				payload = ssh.Marshal(readMsg{Path: p, Length: 10})
			}
			r.send(typ, id, payload)
			if res := r.result(id); res.Kind != kindRefused {
				t.Errorf("request %d on %q: %+v", typ, p, res)
			}
			id++
		}
	}
	for _, p := range []string{"DB", "../DB/id_1", "/DB/id_1", "DB/x_1", "DB/id_1/x"} {
		r.send(tRmdir, id, ssh.Marshal(pathMsg{Path: p}))
		if res := r.result(id); res.Kind != kindRefused {
			t.Errorf("rmdir %q: %+v", p, res)
		}
		id++
	}
	r.send(tList, id, ssh.Marshal(listMsg{Database: "../x"}))
	if res := r.result(id); res.Kind != kindRefused {
		t.Errorf("list ../x: %+v", res)
	}
	id++
	// Still serving: a good publish.
	good := []byte("hello")
	r.publish(id, "DB/id_1/level_0/node_0/ok", 5, 0, good, true, sum(good))
	if res := r.result(id); res.Kind != kindOK {
		t.Fatalf("good publish after refusals: %+v", res)
	}
	files := volumeFiles(t, srv)
	if len(files) != 1 || files["DB/id_1/level_0/node_0/ok"] != md5hex(good) {
		t.Fatalf("volume holds %v", files)
	}
	if n := strings.Count(e.log.String(), "refused a request"); n == 0 {
		t.Fatal("refusals not logged")
	}
}

// TestLyingSizes: more bytes than announced, fewer, or bytes whose
// checksum is not the one sent, fail that publish with its temp file removed, and
// nothing under the final name; the channel goes on serving. A client
// whose source failed (tEnd not OK) leaves its temp file for a resume.
func TestLyingSizes(t *testing.T) {
	srv := startFTP(t)
	e := newPipeEnd(t, srv, nil)
	r := e.raw(t, login(srv))
	body := randomBytes(t, 300<<10)
	cases := []struct {
		name     string
		size     uint64
		body     []byte
		ok       bool
		sum      uint32
		keepTemp bool
	}{
		{"more bytes", 100 << 10, body, true, sum(body), false},
		{"fewer bytes", 400 << 10, body, true, sum(body), false},
		{"other checksum", 300 << 10, body, true, sum([]byte("x")), false},
		{"source failed", 300 << 10, body[:100<<10], false, 0, true},
	}
	for i, c := range cases {
		id := uint32(i + 1)
		p := "DB/id_1/level_0/node_0/f" + string(rune('a'+i))
		r.publish(id, p, c.size, 0, c.body, c.ok, c.sum)
		res := r.result(id)
		if res.Kind == kindOK {
			t.Errorf("%s: published", c.name)
		}
		files := volumeFiles(t, srv)
		if _, ok := files[p]; ok {
			t.Errorf("%s: a file under the final name", c.name)
		}
		if _, ok := files[archive.TempName(p)]; ok != c.keepTemp {
			t.Errorf("%s: temp file kept = %v, want %v (%+v)", c.name, ok, c.keepTemp, res)
		}
	}
	good := []byte("fine")
	r.publish(9, "DB/id_1/level_0/node_0/good", 4, 0, good, true, sum(good))
	if res := r.result(9); res.Kind != kindOK {
		t.Fatalf("good publish after lies: %+v", res)
	}
}

// TestProtocolViolations: frames that break the protocol close the channel
// (an unknown type, an oversized length before its payload is read, data
// of no request, a second login, a malformed message, a request before the
// login); other channels go on.
func TestProtocolViolations(t *testing.T) {
	srv := startFTP(t)
	e := newPipeEnd(t, srv, nil)
	header := func(typ byte, id, n uint32) []byte {
		h := []byte{typ}
		h = binary.BigEndian.AppendUint32(h, id)
		return binary.BigEndian.AppendUint32(h, n)
	}
	cases := map[string][]byte{
		"unknown type":    header(99, 1, 0),
		"oversized data":  header(tData, 1, MaxData+1),
		"oversized list":  header(tList, 1, 1<<30),
		"data of nothing": appendFrame(nil, tData, 7, []byte("x")),
		"end of nothing":  appendFrame(nil, tEnd, 7, ssh.Marshal(endMsg{OK: true})),
		"second login":    appendFrame(nil, tLogin, 0, ssh.Marshal(loginMsg{Version: protocolVersion, User: "u"})),
		"malformed":       appendFrame(nil, tDelete, 3, []byte{0, 0, 1}),
		"nested publish": append(appendFrame(nil, tPublish, 1, ssh.Marshal(publishMsg{Path: "DB/id_1/level_0/node_0/a", Size: 10})),
			appendFrame(nil, tPublish, 2, ssh.Marshal(publishMsg{Path: "DB/id_1/level_0/node_0/b", Size: 10}))...),
	}
	for name, b := range cases {
		r := e.raw(t, login(srv))
		if _, err := r.c.Write(b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r.closed()
	}
	// Before the login: anything but a login is refused and closed.
	rw, _ := e.open(context.Background())
	c := rw.(net.Conn)
	c.Write(appendFrame(nil, tList, 1, ssh.Marshal(listMsg{Database: "DB"})))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, c)
	c.Close()
	// Still serving.
	cl, err := Dial(context.Background(), e.open, login(srv), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Publish(context.Background(), "DB/id_1/level_0/node_0/x", bytes.NewReader([]byte("x")), 1, 0); err != nil {
		t.Fatal(err)
	}
}

// TestStalls: a publish whose bytes stop, a login that never comes, and a
// striped publish whose chunk never comes are cut by the idle timeout;
// nothing partial is published; the far end goes on serving.
func TestStalls(t *testing.T) {
	srv := startFTP(t)
	e := newPipeEnd(t, srv, func(c *HostConfig) { c.IdleTimeout = 500 * time.Millisecond })

	r := e.raw(t, login(srv))
	r.send(tPublish, 1, ssh.Marshal(publishMsg{Path: "DB/id_1/level_0/node_0/stalled", Size: 1 << 20}))
	r.send(tData, 1, randomBytes(t, 1000))
	r.closed()

	// No login at all.
	rw, _ := e.open(context.Background())
	silent := rw.(net.Conn)
	silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, silent); err != nil {
		t.Fatalf("a channel without a login was not closed: %v", err)
	}
	silent.Close()

	// A striped publish missing its first chunk: the later ones wait for
	// it, then the publish fails.
	s := e.raw(t, login(srv))
	tok := bytes.Repeat([]byte{7}, 16)
	s.send(tPublish, 1, ssh.Marshal(publishMsg{Path: "DB/id_1/level_0/node_0/striped", Size: 2000, Stripes: 2, Token: tok}))
	chunk := func(seq uint64, data []byte) []byte {
		p := append([]byte{}, tok...)
		p = binary.BigEndian.AppendUint64(p, seq)
		return append(p, data...)
	}
	s.send(tChunk, 0, chunk(1, make([]byte, 1000)))
	s.send(tEnd, 1, ssh.Marshal(endMsg{OK: true}))
	if res := s.result(1); res.Kind == kindOK {
		t.Fatal("a striped publish missing a chunk was published")
	}

	if _, ok := volumeFiles(t, srv)["DB/id_1/level_0/node_0/stalled"]; ok {
		t.Fatal("the stalled publish is under its final name")
	}
	if _, ok := volumeFiles(t, srv)["DB/id_1/level_0/node_0/striped"]; ok {
		t.Fatal("the incomplete striped publish is under its final name")
	}
	cl, err := Dial(context.Background(), e.open, login(srv), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Publish(context.Background(), "DB/id_1/level_0/node_0/x", bytes.NewReader([]byte("x")), 1, 0); err != nil {
		t.Fatal(err)
	}
}

// TestStripedPublishes: large publishes striped over every channel the
// client may open arrive md5-identical; a duplicate chunk fails its publish
// as a lie.
func TestStripedPublishes(t *testing.T) {
	srv := startFTP(t)
	e := newPipeEnd(t, srv, nil)
	cl, err := Dial(context.Background(), e.open, login(srv), Options{Channels: 4, Stripes: 4, StripeMin: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i, n := range []int{1, MaxData - chunkHeader, 3<<20 + 17, 9 << 20} {
		data := randomBytes(t, n)
		p := "DB/id_1/level_0/node_0/s" + string(rune('a'+i))
		if err := cl.Publish(context.Background(), p, bytes.NewReader(data), int64(n), 0); err != nil {
			t.Fatal(err)
		}
		if got := volumeFiles(t, srv)[p]; got != md5hex(data) {
			t.Fatalf("%s: md5 %s, want %s", p, got, md5hex(data))
		}
	}
	if !strings.Contains(e.log.String(), "logged in") {
		t.Fatal("no login logged")
	}

	// A duplicate chunk.
	a, b := e.raw(t, login(srv)), e.raw(t, login(srv))
	tok := bytes.Repeat([]byte{9}, 16)
	a.send(tPublish, 1, ssh.Marshal(publishMsg{Path: "DB/id_1/level_0/node_0/dup", Size: 3000, Stripes: 2, Token: tok}))
	chunk := append(append(append([]byte{}, tok...), make([]byte, 8)...), make([]byte, 1000)...)
	a.send(tChunk, 0, chunk)
	b.send(tChunk, 0, chunk)
	a.send(tEnd, 1, ssh.Marshal(endMsg{OK: true}))
	if res := a.result(1); res.Kind == kindOK {
		t.Fatal("a publish with a duplicate chunk was published")
	}
	if _, ok := volumeFiles(t, srv)["DB/id_1/level_0/node_0/dup"]; ok {
		t.Fatal("published")
	}
}
