package runner

import (
	"cmp"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"backupsync/internal/archive"
	"backupsync/internal/config"
	"backupsync/internal/faultproxy"
	"backupsync/internal/freeport"
	"backupsync/internal/ftptest"
	"backupsync/internal/sync"
)

// This package's tests use 127.0.2.x.
const (
	srcHost   = "127.0.2.1"
	dstHost   = "127.0.2.2"
	proxyHost = "127.0.2.3"
)

// env is a source and a destination archive volume, each behind a fault
// proxy, and a direct (SSH = none) connection between them.
type env struct {
	t                  testing.TB
	src, dst           *ftptest.Server
	srcProxy, dstProxy *faultproxy.Proxy // nil: direct connections
	stateDir           string
	extra              string // more connection keys
	parallel           int    // PARALLEL; 0 means 3
	event              func(sync.Event)
}

func newEnv(t testing.TB, kind string) *env {
	e := newDirectEnv(t, kind)
	e.srcProxy = faultproxy.Start(t, faultproxy.FTP, proxyHost, e.src.Addr())
	e.dstProxy = faultproxy.Start(t, faultproxy.FTP, proxyHost, e.dst.Addr())
	return e
}

// newDirectEnv is newEnv without the fault proxies, for benchmarks.
func newDirectEnv(t testing.TB, kind string) *env {
	e := &env{t: t, stateDir: t.TempDir()}
	e.src = ftptest.Start(t, kind, srcHost)
	e.dst = ftptest.Start(t, kind, dstHost)
	return e
}

func (e *env) srcDir() string { return filepath.Join(e.src.Dir, e.src.Volume) }
func (e *env) dstDir() string { return filepath.Join(e.dst.Dir, e.dst.Volume) }

func (e *env) runner() *Runner {
	e.t.Helper()
	srcHostPort, dstHostPort := e.src.Host+":"+strconv.Itoa(e.src.Port), e.dst.Host+":"+strconv.Itoa(e.dst.Port)
	if e.srcProxy != nil {
		srcHostPort, dstHostPort = e.srcProxy.Addr(), e.dstProxy.Addr()
	}
	srcIP, srcPort, _ := net.SplitHostPort(srcHostPort)
	dstIP, dstPort, _ := net.SplitHostPort(dstHostPort)
	cfg := fmt.Sprintf(`Conn1
{
DATABASE_NAME = DB
START_CYCLE = @every 1m
LOCAL_URL = ftp://%s:%s@%%s:%s/%s
REMOTE_URL = ftp://%s:%s@%%s:%s/%s
REMOTE_NODES = %s
SSH = none
SETTLE_TIME = 30s
PARALLEL = %d
%s}
`, e.src.User, e.src.Password, srcPort, e.src.Volume,
		e.dst.User, e.dst.Password, dstPort, e.dst.Volume, dstIP, cmp.Or(e.parallel, 3), e.extra)
	conns, err := config.ParseConnections("test.cfg", []byte(cfg))
	if err != nil {
		e.t.Fatal(err)
	}
	s := &config.Settings{Node: config.Node{Name: "n0011", IP: srcIP, Index: 0}, StateDir: e.stateDir, FTPDefaultPort: 2021}
	return &Runner{Settings: s, Conn: conns[0], Event: e.event, ConnectTimeout: 5 * time.Second}
}

func (e *env) cycle() (sync.Report, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, _, err := e.runner().Once(ctx, false)
	return rep, err
}

func (e *env) mustCycle() sync.Report {
	e.t.Helper()
	rep, err := e.cycle()
	if err != nil {
		e.t.Fatalf("cycle: %v", err)
	}
	return rep
}

// write creates a source file of size bytes, modified age ago.
func (e *env) write(rel string, size int, age time.Duration) {
	e.t.Helper()
	p := filepath.Join(e.srcDir(), rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + len(rel))
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.age(rel, age)
}

func (e *env) age(rel string, age time.Duration) {
	e.t.Helper()
	mt := time.Now().Add(-age)
	if err := os.Chtimes(filepath.Join(e.srcDir(), rel), mt, mt); err != nil {
		e.t.Fatal(err)
	}
}

// set writes a backup set: data files and a metadata file.
func (e *env) set(id, level, files, size int) {
	for i := range files {
		e.write(fmt.Sprintf("DB/id_%d/level_%d/node_0/data_%02d", id, level, i), size, time.Hour)
	}
	e.write(fmt.Sprintf("DB/id_%d/level_%d/node_0/metadata", id, level), 100, time.Hour)
}

// sums is the md5 of every file under dir/DB, keyed by relative path.
func sums(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	root := filepath.Join(dir, "DB")
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := md5.Sum(data)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	return out
}

// identical asserts that the destination is an md5-identical copy of the
// source, with no temp file left.
func (e *env) identical() {
	e.t.Helper()
	s, d := sums(e.t, e.srcDir()), sums(e.t, e.dstDir())
	for p, sum := range s {
		if d[p] != sum {
			e.t.Errorf("%s: destination md5 %q, source %q", p, d[p], sum)
		}
	}
	for p := range d {
		if _, ok := s[p]; !ok {
			e.t.Errorf("%s: at the destination only", p)
		}
	}
}

// noPartialUnderFinalName asserts that every destination file that is not
// a temp file is byte-identical to its source.
func (e *env) noPartialUnderFinalName() {
	e.t.Helper()
	s := sums(e.t, e.srcDir())
	for p, sum := range sums(e.t, e.dstDir()) {
		if _, temp := archive.IsTemp(p); temp {
			continue
		}
		if s[p] != sum {
			e.t.Errorf("%s is under its final name but differs from the source", p)
		}
	}
}

func kinds() []string { return append([]string{"embedded"}, ftptest.RealKinds()...) }

func TestScenarios(t *testing.T) {
	for _, kind := range kinds() {
		t.Run(kind, func(t *testing.T) { scenarios(t, kind) })
	}
}

func scenarios(t *testing.T, kind string) {
	e := newEnv(t, kind)
	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, func(t *testing.T) { e.t = t; f(t) }) {
			t.FailNow() // later steps build on this one
		}
	}
	step("first full copy", func(t *testing.T) {
		e.set(1, 0, 4, 64<<10)
		e.set(2, 1, 2, 10<<10)
		rep := e.mustCycle()
		if rep.Copied != 8 || !rep.OK() || rep.Bytes != 4*64<<10+2*10<<10+200 {
			t.Errorf("report: %s %+v", rep.Summary(), rep.Failed)
		}
		e.identical()
	})
	step("second run changes nothing", func(t *testing.T) {
		rep := e.mustCycle()
		if rep.Copied+rep.Deleted+rep.Replaced != 0 || rep.UpToDate != 8 || !rep.OK() {
			t.Errorf("report: %s", rep.Summary())
		}
	})
	step("new incremental set is copied", func(t *testing.T) {
		e.set(3, 1, 2, 5<<10)
		rep := e.mustCycle()
		if rep.Copied != 3 || rep.UpToDate != 8 || !rep.OK() {
			t.Errorf("report: %s", rep.Summary())
		}
		e.identical()
	})
	step("source expiry deletes the set at the destination", func(t *testing.T) {
		os.RemoveAll(filepath.Join(e.srcDir(), "DB/id_1"))
		rep := e.mustCycle()
		if rep.Deleted != 5 || !rep.OK() {
			t.Errorf("report: %s", rep.Summary())
		}
		e.identical()
		if _, err := os.Stat(filepath.Join(e.dstDir(), "DB/id_1")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("expired set's directory still at the destination: %v", err)
		}
	})
	step("a growing file waits until it is stable, then is copied once", func(t *testing.T) {
		e.write("DB/id_4/level_0/node_0/data_00", 32<<10, 0)
		e.write("DB/id_4/level_0/node_0/metadata", 10, time.Hour)
		rep := e.mustCycle()
		if rep.Deferred != 2 || rep.Copied != 0 {
			t.Errorf("report: %s", rep.Summary())
		}
		if _, err := os.Stat(filepath.Join(e.dstDir(), "DB/id_4")); err == nil {
			t.Error("a file still being written reached the destination")
		}
		e.write("DB/id_4/level_0/node_0/data_00", 48<<10, 0) // it grew
		e.age("DB/id_4/level_0/node_0/data_00", 10*time.Minute)
		if rep = e.mustCycle(); rep.Copied != 0 {
			t.Errorf("copied although its size changed since the last listing: %s", rep.Summary())
		}
		if rep = e.mustCycle(); rep.Copied != 2 || !rep.OK() {
			t.Errorf("report: %s", rep.Summary())
		}
		e.identical()
	})
	step("killed transfer is resumed by the next cycle", func(t *testing.T) {
		e.write("DB/id_5/level_0/node_0/data_00", 4<<20, time.Hour)
		cut := e.dstProxy.Add(faultproxy.Fault{Conn: faultproxy.Data, Command: "STOR", Dir: faultproxy.Upstream, After: 1 << 20, Action: faultproxy.Cut})
		cutAppe := e.dstProxy.Add(faultproxy.Fault{Conn: faultproxy.Data, Command: "APPE", Dir: faultproxy.Upstream, After: 1 << 20, Action: faultproxy.Cut})
		rep := e.mustCycle()
		cut.Remove()
		cutAppe.Remove()
		if len(rep.Failed) == 0 {
			t.Fatalf("the cut did not fail the file: %s", rep.Summary())
		}
		e.noPartialUnderFinalName()
		rep = e.mustCycle()
		if !rep.OK() || rep.Copied+rep.Resumed != 1 {
			t.Errorf("report: %s %+v", rep.Summary(), rep.Failed)
		}
		t.Logf("%s: resumed %d", kind, rep.Resumed)
		e.identical()
	})
	step("destination server restarts mid-cycle", func(t *testing.T) {
		for i := range 6 {
			e.write(fmt.Sprintf("DB/id_6/level_0/node_0/data_%02d", i), 256<<10, time.Hour)
		}
		e.write("DB/id_6/level_0/node_0/metadata", 10, time.Hour)
		restarted := false
		e.event = func(ev sync.Event) {
			if !restarted {
				restarted = true
				e.dst.Restart(t)
			}
		}
		rep, _ := e.cycle()
		e.event = nil
		e.noPartialUnderFinalName()
		t.Logf("cycle across the restart: %s", rep.Summary())
		rep = e.mustCycle()
		if !rep.OK() {
			t.Errorf("report: %s %+v", rep.Summary(), rep.Failed)
		}
		e.identical()
	})
	step("hostile listing entries are refused and nothing changes", func(t *testing.T) {
		before := sums(t, e.dstDir())
		for _, f := range []faultproxy.Fault{
			{Conn: faultproxy.Data, Command: "MLSD", Dir: faultproxy.Downstream, Action: faultproxy.Replace, Payload: []byte("type=file;size=5;modify=20200101000000; ../../../etc/passwd\r\n")},
			{Conn: faultproxy.Data, Command: "LIST", Dir: faultproxy.Downstream, Action: faultproxy.Replace, Payload: []byte("-rw-r--r--    1 0        0               5 Jan 01  2020 ..\r\n-rw-r--r--    1 0        0               5 Jan 01  2020 a/../../x\r\n")},
		} {
			defer e.srcProxy.Add(f).Remove()
		}
		_, err := e.cycle()
		if err == nil {
			t.Fatal("a hostile listing was accepted")
		}
		t.Logf("refused: %v", err)
		if after := sums(t, e.dstDir()); len(after) != len(before) {
			t.Errorf("destination changed: %d files, was %d", len(after), len(before))
		}
	})
	step("empty source (volume unmounted) never wipes the destination", func(t *testing.T) {
		before := sums(t, e.dstDir())
		os.Rename(filepath.Join(e.srcDir(), "DB"), filepath.Join(e.srcDir(), "DB.unmounted"))
		defer os.Rename(filepath.Join(e.srcDir(), "DB.unmounted"), filepath.Join(e.srcDir(), "DB"))
		rep := e.mustCycle()
		if rep.Deleted != 0 || len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "unmounted") {
			t.Errorf("report: %s %q", rep.Summary(), rep.Notes)
		}
		if after := sums(t, e.dstDir()); len(after) != len(before) {
			t.Errorf("destination lost files: %d, was %d", len(after), len(before))
		}
	})
}

func TestDestinationFull(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("mounting a tmpfs needs root")
		}
		t.Skip("mounting a tmpfs needs root")
	}
	for _, kind := range kinds() {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, kind)
			vol := e.dstDir()
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m,mode=0777", "tmpfs", vol).CombinedOutput(); err != nil {
				t.Fatalf("mount tmpfs: %v %s", err, out)
			}
			t.Cleanup(func() { exec.Command("umount", "-l", vol).Run() })
			e.write("DB/id_1/level_0/node_0/data_00", 512<<10, time.Hour)
			e.write("DB/id_1/level_0/node_0/data_01", 3<<20, time.Hour)
			e.write("DB/id_1/level_0/node_0/metadata", 10, time.Hour)
			rep := e.mustCycle()
			if len(rep.Failed) == 0 {
				t.Fatalf("a full destination did not fail: %s", rep.Summary())
			}
			msgs := fmt.Sprint(rep.Failed)
			if !strings.Contains(msgs, "full") {
				t.Errorf("the error does not say the destination is full: %s", msgs)
			}
			if strings.Contains(msgs, e.dst.Password) {
				t.Errorf("the password is in the error: %s", msgs)
			}
			e.noPartialUnderFinalName()
			if _, err := os.Stat(filepath.Join(vol, "DB/id_1/level_0/node_0/metadata")); err == nil {
				t.Error("metadata of an incomplete set was published")
			}
			t.Logf("%s: %s", kind, msgs)
		})
	}
}

// A destination is probed once; later cycles trust what the probe found
// (for ProbeTTL) and write no scratch file.
func TestDestinationProbeIsRemembered(t *testing.T) {
	e := newEnv(t, "embedded")
	e.set(1, 0, 2, 1000)
	appe := e.dstProxy.Add(faultproxy.Fault{Conn: faultproxy.Control, Command: "APPE", Action: faultproxy.Reply, Code: 502, Text: "counted"})
	probes := NewProbes(e.stateDir)
	for i := range 3 {
		r := e.runner()
		r.Probes = probes
		if i == 2 {
			r.Probes = NewProbes(e.stateDir) // as a new sync-once process: from disk
		}
		rep, _, err := r.Once(context.Background(), false)
		if err != nil || !rep.OK() {
			t.Fatalf("cycle %d: %v %s", i, err, rep.Summary())
		}
	}
	if appe.Fired() != 1 {
		t.Errorf("the destination was probed %d times, want once", appe.Fired())
	}
	e.identical()
}

// Source volume unmounted or its FTP down while the remote hangs: the cycle
// reports the source at once instead of waiting out the remote's timeouts.
func TestSourceDownStopsWaitingForAHangingRemote(t *testing.T) {
	e := newDirectEnv(t, "embedded")
	// The remote accepts connections and never greets.
	hang := ftptest.StartSilent(t, dstHost)
	r := e.runner()
	r.ConnectTimeout = 10 * time.Minute
	var err error
	if r.Conn.LocalURL.Port, err = freeport.On(srcHost); err != nil {
		t.Fatal(err)
	}
	r.Conn.RemoteURL.Port = hang.Port()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, _, err := r.Once(ctx, false)
	if !errors.Is(err, ErrUnreachable) || ctx.Err() != nil {
		t.Fatalf("cycle: %v (context: %v)", err, ctx.Err())
	}
	if !strings.Contains(err.Error(), "local archive volume") || !strings.Contains(rep.Error, "local archive volume") {
		t.Errorf("the error must name the source: %v / report %q", err, rep.Error)
	}
}

// A source file that grows or shrinks after the listing, while its copy goes
// straight from socket to socket (plain TCP on both sides: the direct path),
// is not published; the next cycle copies what is there then.
func TestSourceChangedAfterListingIsNotPublished(t *testing.T) {
	for _, kind := range ftptest.RealKinds() {
		for _, change := range []string{"grows", "shrinks"} {
			t.Run(kind+"/"+change, func(t *testing.T) {
				e := newDirectEnv(t, kind)
				e.parallel = 1
				const first, second = "DB/id_1/level_0/node_0/data_00", "DB/id_1/level_0/node_0/data_01"
				e.write(first, 100<<10, time.Hour)
				e.write(second, 3<<20, time.Hour) // read ahead, when not direct
				e.write("DB/id_1/level_0/node_0/metadata", 100, time.Hour)
				e.event = func(ev sync.Event) {
					if ev.Action.Path != first {
						return
					}
					// The second file's copy starts after this returns.
					size := 3<<20 + 4096
					if change == "shrinks" {
						size = 2 << 20
					}
					e.write(second, size, time.Hour)
				}
				rep := e.mustCycle()
				// The changed file fails, and holds its set's metadata back.
				if len(rep.Failed) != 2 || rep.Failed[0].Path != second || !strings.HasSuffix(rep.Failed[1].Path, "/metadata") {
					t.Fatalf("want %s and the metadata failed: %s %+v", second, rep.Summary(), rep.Failed)
				}
				if !strings.Contains(rep.Failed[0].Error, "changed") {
					t.Errorf("the failure must say the source changed: %s", rep.Failed[0].Error)
				}
				for _, p := range []string{second, "DB/id_1/level_0/node_0/metadata"} {
					if _, err := os.Stat(filepath.Join(e.dstDir(), p)); !errors.Is(err, fs.ErrNotExist) {
						t.Errorf("%s is at the destination under its final name: %v", p, err)
					}
				}
				e.noPartialUnderFinalName()
				e.event = nil
				// Its size differs from the last listing's: deferred once
				// more, then copied.
				rep = e.mustCycle()
				if !rep.OK() || rep.Deferred != 2 { // the file, and the metadata after it
					t.Fatalf("next cycle: %s", rep.Summary())
				}
				// Nothing was resumed from what the changed source gave.
				if rep = e.mustCycle(); !rep.OK() || rep.Copied != 2 || rep.Resumed != 0 {
					t.Fatalf("third cycle: %s", rep.Summary())
				}
				e.identical()
			})
		}
	}
}

// A source whose permissions went wrong under one backup set: vsftpd lists
// the unreadable directory as if it held nothing, and a cycle that took
// that for an expired set would delete its copy (DELETE = true). The cycle
// fails instead, says what to check, and the destination keeps every file.
func TestUnreadableSourceSetKeepsItsCopy(t *testing.T) {
	e := &env{t: t, stateDir: t.TempDir(), extra: "DELETE = true\n"}
	e.src = ftptest.StartUnprivileged(t, srcHost) // sessions read as an unprivileged user
	e.dst = ftptest.Start(t, ftptest.KindVsftpd, dstHost)
	e.set(1, 0, 3, 1000)
	e.set(2, 1, 3, 1000)
	if rep := e.mustCycle(); rep.Copied != 8 || !rep.OK() {
		t.Fatalf("first cycle: %s", rep.Summary())
	}
	e.identical()
	before := sums(t, e.dstDir())

	level := filepath.Join(e.srcDir(), "DB/id_2/level_1")
	if err := os.Chmod(level, 0o700); err != nil {
		t.Fatal(err)
	}
	rep, err := e.cycle()
	if !errors.Is(err, archive.ErrUnreadableDir) || !strings.Contains(err.Error(), "permissions") {
		t.Errorf("cycle over an unreadable set: %v (%s)", err, rep.Summary())
	}
	if rep.Deleted != 0 {
		t.Errorf("deleted %d files", rep.Deleted)
	}
	if after := sums(t, e.dstDir()); len(after) != len(before) {
		t.Errorf("destination lost files: %d, was %d", len(after), len(before))
	}

	if err := os.Chmod(level, 0o755); err != nil {
		t.Fatal(err)
	}
	if rep := e.mustCycle(); rep.Deleted != 0 || rep.Copied != 0 || !rep.OK() {
		t.Errorf("cycle after the repair: %s", rep.Summary())
	}
	e.identical()
}
