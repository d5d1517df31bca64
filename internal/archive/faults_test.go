package archive

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"backupsync/internal/faultproxy"
	"backupsync/internal/ftptest"
)

// proxied starts an FTP-mode faultproxy in front of s and returns an
// endpoint that reaches s through it.
func proxied(t *testing.T, s *ftptest.Server) (*faultproxy.Proxy, Endpoint) {
	p := faultproxy.Start(t, faultproxy.FTP, proxyHost, s.Addr())
	ep := endpointOf(s)
	ep.Host, ep.Port = p.Host(), p.Port()
	return p, ep
}

func openEP(t *testing.T, ep Endpoint, opt Options) *Volume {
	t.Helper()
	v, err := Open(ctxT(t), ep, opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func TestHostileListing(t *testing.T) {
	lsLine := func(name string) string {
		return "-rw-r--r--    1 0        0               6 Nov 25 11:54 " + name + "\r\n"
	}
	mlsdLine := func(name string) string { return "type=file;size=6;modify=20261125115400; " + name + "\r\n" }
	names := []string{"../evil", "a/b", "x..y", "..", "nul\x00name", "cr\rname", `back\slash`}
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		checkGoroutines(t)
		writeLocal(t, s, "DB/id_1/level_0/node_0/f", []byte("x"))
		p, ep := proxied(t, s)
		v := openEP(t, ep, testOptions())
		line := lsLine
		if v.Capabilities().MLSD {
			line = mlsdLine
		}
		payloads := []string{"garbage that is no listing\r\n", lsLine("ok") + "drwxr-xr-x 2 0 0 4096 Nov 25 11:54\r\n"}
		if v.Capabilities().MLSD {
			payloads = []string{"garbage\r\n", "type=file;size=x; f\r\n", "size=1; nofacttype\r\n"}
		}
		for _, n := range names {
			payloads = append(payloads, line("DB")+line(n))
		}
		for _, payload := range payloads {
			for _, cmd := range []string{"LIST", "MLSD"} {
				p.Add(faultproxy.Fault{Conn: faultproxy.Data, Command: cmd, Dir: faultproxy.Downstream,
					Action: faultproxy.Replace, Payload: []byte(payload), Times: 1})
			}
			_, err := v.ListNode(ctxT(t), "DB", 0)
			p.Clear()
			if !errors.Is(err, ErrUnsafeName) || IsTransient(err) {
				t.Errorf("listing %q: got %v", payload, err)
			}
		}
		// Hostile entries deeper in the tree are refused too: the first
		// listing (the root) passes, the next (the database) is replaced.
		p.Add(faultproxy.Fault{Conn: faultproxy.Data, Dir: faultproxy.Downstream, Action: faultproxy.Stall, After: 1 << 40, Times: 1})
		p.Add(faultproxy.Fault{Conn: faultproxy.Data, Dir: faultproxy.Downstream, Action: faultproxy.Replace,
			Payload: []byte(line("id_1") + line("../../../etc")), Times: 1})
		_, err := v.ListNode(ctxT(t), "DB", 0)
		p.Clear()
		if !errors.Is(err, ErrUnsafeName) {
			t.Errorf("deep hostile listing: %v", err)
		}
		// And with the proxy out of the way, the real listing works.
		l, err := v.ListNode(ctxT(t), "DB", 0)
		if err != nil || len(l.Files) != 1 {
			t.Errorf("clean listing after hostile ones: %v %v", l, err)
		}
	})
}

func TestVolumeFullReply(t *testing.T) {
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		checkGoroutines(t)
		p, ep := proxied(t, s)
		v := openEP(t, ep, testOptions())
		data := randBytes(1, 100000)
		for _, code := range []int{552, 452} {
			rule := p.Add(faultproxy.Fault{Command: "STOR", Action: faultproxy.Reply, Code: code, Text: "Insufficient storage space"})
			rel := "DB/id_1/level_0/node_0/full"
			err := v.Publish(ctxT(t), rel, bytes.NewReader(data), int64(len(data)), 0)
			rule.Remove()
			if !errors.Is(err, ErrVolumeFull) || IsTransient(err) || !strings.HasPrefix(err.Error(), "destination volume full: ") {
				t.Errorf("%d: %v", code, err)
			}
			if strings.Contains(err.Error(), s.Password) {
				t.Errorf("error shows the password: %v", err)
			}
			if exists(volPath(s, rel)) {
				t.Errorf("%d: final file exists", code)
			}
		}
	})
}

// TestVolumeFullTmpfs fills a real small file system under each server.
func TestVolumeFullTmpfs(t *testing.T) {
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		checkGoroutines(t)
		dir := volPath(s, "DB")
		os.MkdirAll(dir, 0o755)
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("mount tmpfs: %v: %s", err, out)
			}
			t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
		v := openVolume(t, s, testOptions())
		data := randBytes(2, 1<<20)
		rel := "DB/id_1/level_0/node_0/big"
		err := v.Publish(ctxT(t), rel, bytes.NewReader(data), int64(len(data)), 0)
		t.Logf("%s on a full disk: %v (transient %v)", s.Kind, err, IsTransient(err))
		if err == nil {
			t.Fatal("publish of 1 MiB onto 256 KiB succeeded")
		}
		if strings.Contains(err.Error(), s.Password) {
			t.Errorf("error shows the password")
		}
		if exists(volPath(s, rel)) {
			t.Errorf("partial file under the final name")
		}
		// Servers rarely say "full" (vsftpd answers 451 "Failure writing
		// to local file"); the test write after the failure tells.
		if !errors.Is(err, ErrVolumeFull) || IsTransient(err) || !strings.HasPrefix(err.Error(), "destination volume full: ") {
			t.Errorf("full disk: %v", err)
		}
	})
}

// killingReader yields data and calls kill once n bytes have been read.
type killingReader struct {
	r    io.Reader
	n    int64
	read int64
	kill func()
	once sync.Once
}

func (k *killingReader) Read(p []byte) (int, error) {
	if k.read >= k.n {
		k.once.Do(k.kill)
	}
	if int64(len(p)) > 32<<10 {
		p = p[:32<<10]
	}
	n, err := k.r.Read(p)
	k.read += int64(n)
	return n, err
}

func TestServerKilledMidStor(t *testing.T) {
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		checkGoroutines(t)
		v := openVolume(t, s, testOptions())
		data := randBytes(3, 8<<20)
		rel := "DB/id_1/level_0/node_0/killed"
		src := &killingReader{r: bytes.NewReader(data), n: 2 << 20, kill: s.Stop}
		err := v.Publish(ctxT(t), rel, src, int64(len(data)), 0)
		if err == nil || !IsTransient(err) {
			t.Fatalf("publish while the server dies: %v (transient %v)", err, IsTransient(err))
		}
		if exists(volPath(s, rel)) {
			t.Fatalf("partial file under the final name")
		}
		part, rerr := os.ReadFile(volPath(s, TempName(rel)))
		if rerr != nil {
			t.Fatalf("temp file not kept: %v", rerr)
		}
		if !bytes.Equal(part, data[:len(part)]) {
			t.Fatalf("temp file is not a prefix of the data")
		}
		s.Restart(t)
		// The listing shows the temp; resume from its size.
		l, err := v.ListNode(ctxT(t), "DB", 0)
		if err != nil {
			t.Fatalf("list after restart: %v", err)
		}
		var off int64 = -1
		for _, e := range l.Files {
			if f, ok := IsTemp(e.Path); ok && f == rel {
				off = e.Size
			}
		}
		if off != int64(len(part)) {
			t.Fatalf("listing shows temp size %d, want %d", off, len(part))
		}
		t.Logf("%s: resuming from %d of %d", s.Kind, off, len(data))
		if err := v.Publish(ctxT(t), rel, bytes.NewReader(data[off:]), int64(len(data)), off); err != nil {
			t.Fatalf("resume: %v", err)
		}
		if md5File(t, volPath(s, rel)) != md5hex(data) || exists(volPath(s, TempName(rel))) {
			t.Fatalf("after resume: md5 differs or temp left")
		}
	})
}

func TestDataConnectionCut(t *testing.T) {
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		checkGoroutines(t)
		p, ep := proxied(t, s)
		v := openEP(t, ep, testOptions())
		data := randBytes(4, 1<<20)
		rel := "DB/id_1/level_0/node_0/cut"

		// STOR data reset after 300000 bytes: error, temp kept, resume.
		p.Add(faultproxy.Fault{Conn: faultproxy.Data, Command: "STOR", Dir: faultproxy.Upstream, After: 300000, Action: faultproxy.Reset, Times: 1})
		err := v.Publish(ctxT(t), rel, bytes.NewReader(data), int64(len(data)), 0)
		if err == nil || !IsTransient(err) {
			t.Fatalf("cut STOR: %v (transient %v)", err, IsTransient(err))
		}
		if exists(volPath(s, rel)) {
			t.Fatalf("partial file under the final name")
		}
		part, _ := os.ReadFile(volPath(s, TempName(rel)))
		if len(part) > 300000 || !bytes.Equal(part, data[:len(part)]) {
			t.Fatalf("temp after cut: %d bytes, prefix %v", len(part), bytes.Equal(part, data[:min(len(part), len(data))]))
		}
		off := int64(len(part))
		if err := v.Publish(ctxT(t), rel, bytes.NewReader(data[off:]), int64(len(data)), off); err != nil {
			t.Fatalf("resume after cut: %v", err)
		}
		if md5File(t, volPath(s, rel)) != md5hex(data) {
			t.Fatalf("md5 after resume differs")
		}

		// RETR data reset midway: an error, not a short clean read.
		p.Add(faultproxy.Fault{Conn: faultproxy.Data, Command: "RETR", Dir: faultproxy.Downstream, After: 100000, Action: faultproxy.Reset, Times: 1})
		r, err := v.Open(ctxT(t), rel, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err == nil || !IsTransient(err) {
			t.Errorf("reset RETR: %d bytes, err %v", len(got), err)
		}
		// The volume recovers.
		r, err = v.Open(ctxT(t), rel, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, err = io.ReadAll(r)
		r.Close()
		if err != nil || md5hex(got) != md5hex(data) {
			t.Errorf("read after reset: %v", err)
		}
	})
}

type memJournal struct {
	mu     sync.Mutex
	events []string
}

func (j *memJournal) Begin(p string) error { j.add("begin " + p); return nil }
func (j *memJournal) End(p string) error   { j.add("end " + p); return nil }
func (j *memJournal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}
func (j *memJournal) take() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := strings.Join(j.events, ", ")
	j.events = nil
	return s
}

func TestNoRenameServer(t *testing.T) {
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		checkGoroutines(t)
		p, ep := proxied(t, s)
		p.Add(faultproxy.Fault{Command: "RNFR", Action: faultproxy.Reply, Code: 502, Text: "Command not implemented"})
		j := &memJournal{}
		opt := testOptions()
		opt.Journal = j
		v := openEP(t, ep, opt)
		c := v.Capabilities()
		if c.Rename || c.CanResume() {
			t.Fatalf("probe missed the refused rename: %v", c)
		}
		data := randBytes(5, 500000)
		rel := "DB/id_1/level_0/node_0/direct"
		if err := v.Publish(ctxT(t), rel, bytes.NewReader(data), int64(len(data)), 0); err != nil {
			t.Fatalf("direct publish: %v", err)
		}
		if md5File(t, volPath(s, rel)) != md5hex(data) {
			t.Fatalf("md5 differs")
		}
		if got := j.take(); got != "begin "+rel+", end "+rel {
			t.Errorf("journal: %s", got)
		}
		if err := v.Publish(ctxT(t), rel, bytes.NewReader(data[10:]), int64(len(data)), 10); !errors.Is(err, ErrResumeUnsupported) {
			t.Errorf("resume without rename: %v", err)
		}
		// A cut upload leaves no partial file under the final name; the
		// journal records it as ended because it was removed.
		rel2 := "DB/id_1/level_0/node_0/direct2"
		p.Add(faultproxy.Fault{Conn: faultproxy.Data, Command: "STOR", Dir: faultproxy.Upstream, After: 100000, Action: faultproxy.Reset, Times: 1})
		err := v.Publish(ctxT(t), rel2, bytes.NewReader(data), int64(len(data)), 0)
		if err == nil {
			t.Fatal("cut direct publish succeeded")
		}
		if exists(volPath(s, rel2)) {
			t.Errorf("partial file left under the final name")
		}
		if got := j.take(); got != "begin "+rel2+", end "+rel2 {
			t.Errorf("journal after cut: %s", got)
		}
	})
}

func TestNoAppendNoRest(t *testing.T) {
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		checkGoroutines(t)
		p, ep := proxied(t, s)
		for _, cmd := range []string{"APPE", "REST"} {
			p.Add(faultproxy.Fault{Command: cmd, Action: faultproxy.Reply, Code: 502, Text: "Command not implemented"})
		}
		v := openEP(t, ep, testOptions())
		c := v.Capabilities()
		if c.Append != AppendNone || c.Rest || c.CanResume() {
			t.Fatalf("probe: %v", c)
		}
		writeLocal(t, s, "f", []byte("0123456789"))
		if _, err := v.Open(ctxT(t), "f", 3); !errors.Is(err, ErrResumeUnsupported) {
			t.Errorf("read from offset without REST: %v", err)
		}
		if err := v.Publish(ctxT(t), "g", strings.NewReader("x"), 4, 3); !errors.Is(err, ErrResumeUnsupported) {
			t.Errorf("resume without append: %v", err)
		}
	})
}

func TestStalledServerTimesOut(t *testing.T) {
	checkGoroutines(t)
	s := ftptest.Start(t, ftptest.KindVsftpd, kindHost[ftptest.KindVsftpd])
	writeLocal(t, s, "DB/id_1/level_0/node_0/f", []byte("x"))
	p, ep := proxied(t, s)
	opt := testOptions()
	opt.OpTimeout = 2 * time.Second
	v := openEP(t, ep, opt)
	p.Add(faultproxy.Fault{Conn: faultproxy.Control, Dir: faultproxy.Downstream, Action: faultproxy.Stall, Times: 100})
	p.CloseConns() // pooled connections now meet the stall
	start := time.Now()
	_, err := v.ListNode(ctxT(t), "DB", 0)
	if err == nil || !IsTransient(err) {
		t.Errorf("stalled server: %v (transient %v)", err, IsTransient(err))
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("took %v to notice a stalled server", d)
	}
	p.Clear()
	if l, err := v.ListNode(ctxT(t), "DB", 0); err != nil || len(l.Files) != 1 {
		t.Errorf("after the stall: %v %v", l, err)
	}
}

func TestIdleConnectionsClosed(t *testing.T) {
	checkGoroutines(t)
	s := ftptest.Start(t, ftptest.KindEmbedded, kindHost[ftptest.KindEmbedded])
	opt := testOptions()
	opt.IdleTimeout = 200 * time.Millisecond
	v := openVolume(t, s, opt)
	if _, err := v.ListNode(ctxT(t), "DB", 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		v.pool.mu.Lock()
		n := len(v.pool.idle)
		v.pool.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	v.pool.mu.Lock()
	defer v.pool.mu.Unlock()
	if len(v.pool.idle) != 0 {
		t.Errorf("%d idle connections still open", len(v.pool.idle))
	}
}

func TestServerRestartBetweenOperations(t *testing.T) {
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		checkGoroutines(t)
		writeLocal(t, s, "DB/id_1/level_0/node_0/f", []byte("x"))
		v := openVolume(t, s, testOptions())
		if _, err := v.ListNode(ctxT(t), "DB", 0); err != nil {
			t.Fatal(err)
		}
		s.Restart(t)
		// Pooled connections died with the server: the first use may fail
		// transiently, but never permanently, and a retry succeeds.
		_, err := v.ListNode(ctxT(t), "DB", 0)
		if err != nil && !IsTransient(err) {
			t.Fatalf("first use after restart: %v", err)
		}
		if _, err := v.ListNode(ctxT(t), "DB", 0); err != nil {
			t.Fatalf("retry after restart: %v", err)
		}
	})
}
