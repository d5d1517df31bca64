package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"backupsync/internal/ftptest"
)

func TestProbe(t *testing.T) {
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		checkGoroutines(t)
		v := openVolume(t, s, testOptions())
		c := v.Capabilities()
		t.Logf("%s probe: %v; FEAT %q", s.Kind, c, c.Features)
		if !c.Writable || !c.Size || !c.Rest || !c.Rename || !c.CanResume() {
			t.Errorf("%s: expected a writable server with SIZE, REST, rename and append: %v", s.Kind, c)
		}
		switch s.Kind {
		case ftptest.KindEmbedded:
			// APPE without REST truncates there; REST+STOR appends.
			if c.Append != AppendRestStor || !c.MLSD {
				t.Errorf("embedded: %v", c)
			}
		case ftptest.KindVsftpd:
			if c.MLSD || c.Append != AppendAPPE || !c.MDTM {
				t.Errorf("vsftpd: %v", c)
			}
		default:
			if !c.MLSD || c.Append != AppendAPPE || !c.MFMT {
				t.Errorf("%s: %v", s.Kind, c)
			}
		}
		// The probe cleaned up after itself.
		ents, _ := os.ReadDir(filepath.Join(s.Dir, s.Volume))
		for _, e := range ents {
			t.Errorf("probe left %s behind", e.Name())
		}
	})
}

// buildTree writes an Exasol-layout tree and returns the files node 0
// must list, with their contents.
func buildTree(t *testing.T, s *ftptest.Server) map[string][]byte {
	want := map[string][]byte{}
	put := func(rel string, data []byte, listed bool) {
		writeLocal(t, s, rel, data)
		if listed {
			want[rel] = data
		}
	}
	put("DB/id_11/level_0/node_0/data_0", randBytes(1, 70000), true)
	put("DB/id_11/level_0/node_0/sub dir/data 1", randBytes(2, 1), true)
	put("DB/id_11/level_0/node_0/metadata_0", []byte("meta"), true)
	put("DB/id_11/level_0/node_0/empty", nil, true)
	put("DB/id_11/level_0/node_0/big"+TempSuffix, randBytes(3, 1000), true)
	put("DB/id_11/level_0/node_1/data_0", randBytes(4, 10), false)
	put("DB/id_11/level_0/node_0/skip.tar.gz", []byte("x"), false)
	put("DB/id_12/level_1/node_0/data_0", randBytes(5, 300), true)
	put("DB/id_12/level_1/node_0/~", []byte("x"), false)
	put("DB/id_13.tar.gz", []byte("x"), false)
	put("DB/stray", []byte("x"), false)
	put("DB/~/level_0/node_0/x", []byte("x"), false)
	put("DB/id_14/~/node_0/x", []byte("x"), false)
	put("DB/id_14/level_0/node_10/x", []byte("x"), false)
	put("OTHER/id_1/level_0/node_0/x", []byte("x"), false)
	return want
}

func TestListNode(t *testing.T) {
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		checkGoroutines(t)
		want := buildTree(t, s)
		// An old file (date-only in ls-style listings) and a recent one.
		old := time.Now().Add(-400 * 24 * time.Hour).UTC()
		recent := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
		os.Chtimes(volPath(s, "DB/id_12/level_1/node_0/data_0"), old, old)
		os.Chtimes(volPath(s, "DB/id_11/level_0/node_0/data_0"), recent, recent)

		v := openVolume(t, s, testOptions())
		l, err := v.ListNode(ctxT(t), "DB", 0)
		if err != nil {
			t.Fatalf("ListNode: %v", err)
		}
		got := map[string]Entry{}
		for _, e := range l.Files {
			got[e.Path] = e
		}
		for p, data := range want {
			e, ok := got[p]
			if !ok {
				t.Errorf("missing %s", p)
				continue
			}
			if e.Size != int64(len(data)) {
				t.Errorf("%s: size %d, want %d", p, e.Size, len(data))
			}
			if e.Exact != v.Capabilities().MLSD {
				t.Errorf("%s: Exact=%v with MLSD=%v", p, e.Exact, v.Capabilities().MLSD)
			}
		}
		for p := range got {
			if _, ok := want[p]; !ok {
				t.Errorf("unexpected %s", p)
			}
		}
		e := got["DB/id_11/level_0/node_0/data_0"]
		if e.Exact && !e.ModTime.Equal(recent) {
			t.Errorf("exact time %v, want %v", e.ModTime, recent)
		}
		if !e.Exact && !e.ModTime.Equal(recent.Truncate(time.Minute)) {
			t.Errorf("minute time %v, want %v", e.ModTime, recent.Truncate(time.Minute))
		}
		e = got["DB/id_12/level_1/node_0/data_0"]
		if d := e.ModTime.Sub(old); d > 24*time.Hour || d < -24*time.Hour {
			t.Errorf("old file time %v, want about %v", e.ModTime, old)
		}
		if _, ok := IsTemp(got["DB/id_11/level_0/node_0/big"+TempSuffix].Path); !ok {
			t.Errorf("temp file not recognised")
		}
		wantDirs := []string{"DB", "DB/id_11", "DB/id_11/level_0", "DB/id_11/level_0/node_0",
			"DB/id_11/level_0/node_0/sub dir", "DB/id_12", "DB/id_12/level_1", "DB/id_12/level_1/node_0",
			"DB/id_14", "DB/id_14/level_0"}
		if !reflect.DeepEqual(l.Dirs, wantDirs) {
			t.Errorf("Dirs = %q\nwant %q", l.Dirs, wantDirs)
		}

		// A missing database is an empty listing.
		l, err = v.ListNode(ctxT(t), "NODB", 0)
		if err != nil || len(l.Files) != 0 || len(l.Dirs) != 0 {
			t.Errorf("missing database: %+v, %v", l, err)
		}
		// An empty database directory lists as just itself; a file where
		// the database directory should be is an empty listing.
		os.Mkdir(filepath.Join(s.Dir, s.Volume, "EMPTYDB"), 0o755)
		os.WriteFile(filepath.Join(s.Dir, s.Volume, "FILEDB"), []byte("not a directory"), 0o644)
		for db, dirs := range map[string]int{"EMPTYDB": 1, "FILEDB": 0} {
			l, err = v.ListNode(ctxT(t), db, 0)
			if err != nil || len(l.Files) != 0 || len(l.Dirs) != dirs {
				t.Errorf("database %s: %+v, %v", db, l, err)
			}
		}
		// A vanished volume root is an error.
		os.Rename(filepath.Join(s.Dir, s.Volume), filepath.Join(s.Dir, "gone"))
		_, err = v.ListNode(ctxT(t), "DB", 0)
		if !errors.Is(err, ErrRootUnavailable) || IsTransient(err) {
			t.Errorf("vanished root: %v", err)
		}
		os.Rename(filepath.Join(s.Dir, "gone"), filepath.Join(s.Dir, s.Volume))
		if _, err := v.ListNode(ctxT(t), "../x", 0); !errors.Is(err, ErrBadPath) {
			t.Errorf("database ../x: %v", err)
		}
	})
}

func TestOpenMissingRoot(t *testing.T) {
	s := ftptest.Start(t, ftptest.KindEmbedded, kindHost[ftptest.KindEmbedded])
	ep := endpointOf(s)
	ep.Root = "/v0009"
	_, err := Open(ctxT(t), ep, testOptions())
	if !errors.Is(err, ErrRootUnavailable) {
		t.Fatalf("Open of a missing root: %v", err)
	}
	if strings.Contains(err.Error(), s.Password) {
		t.Errorf("error contains the password: %v", err)
	}
	ep = endpointOf(s)
	ep.Password = "wrong-secret"
	_, err = Open(ctxT(t), ep, testOptions())
	if err == nil || IsTransient(err) || strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("bad password: %v (transient %v)", err, IsTransient(err))
	}
	// The admin must learn which credentials to fix: the user is named.
	if !errors.Is(err, ErrLoginRefused) || !strings.Contains(err.Error(), fmt.Sprintf("login as %q refused", ep.User)) {
		t.Errorf("bad password: %v, want ErrLoginRefused naming user %q", err, ep.User)
	}
}

func TestRead(t *testing.T) {
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		checkGoroutines(t)
		data := randBytes(7, 3<<20+17)
		writeLocal(t, s, "DB/id_1/level_0/node_0/f", data)
		v := openVolume(t, s, testOptions())
		for _, off := range []int64{0, 1, 123457, int64(len(data))} {
			r, err := v.Open(ctxT(t), "DB/id_1/level_0/node_0/f", off)
			if err != nil {
				t.Fatalf("Open at %d: %v", off, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || md5hex(got) != md5hex(data[off:]) {
				t.Errorf("read at %d: %d bytes, err %v", off, len(got), err)
			}
		}
		// Abandoning a read midway leaves the volume usable.
		r, err := v.Open(ctxT(t), "DB/id_1/level_0/node_0/f", 0)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadFull(r, make([]byte, 1000))
		r.Close()
		if _, err := v.Open(ctxT(t), "DB/id_1/level_0/node_0/missing", 0); err == nil || IsTransient(err) {
			t.Errorf("missing file: %v", err)
		}
		if _, err := v.Open(ctxT(t), "../etc/passwd", 0); !errors.Is(err, ErrBadPath) {
			t.Errorf("path outside: %v", err)
		}
	})
}

func TestPublish(t *testing.T) {
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		checkGoroutines(t)
		v := openVolume(t, s, testOptions())
		ctx := ctxT(t)
		rel := "DB/id_5/level_0/node_0/data_7"
		final := volPath(s, rel)
		temp := volPath(s, TempName(rel))

		// New file, parents created.
		data := randBytes(11, 2<<20+3)
		if err := v.Publish(ctx, rel, bytes.NewReader(data), int64(len(data)), 0); err != nil {
			t.Fatalf("publish new: %v", err)
		}
		if md5File(t, final) != md5hex(data) || exists(temp) {
			t.Fatalf("after publish: md5 differs or temp left")
		}
		// Replace with other content.
		data2 := randBytes(12, 1000)
		if err := v.Publish(ctx, rel, bytes.NewReader(data2), int64(len(data2)), 0); err != nil {
			t.Fatalf("publish replace: %v", err)
		}
		if md5File(t, final) != md5hex(data2) {
			t.Fatalf("replace: md5 differs")
		}
		// Empty file.
		if err := v.Publish(ctx, "DB/id_5/level_0/node_0/empty", bytes.NewReader(nil), 0, 0); err != nil {
			t.Fatalf("publish empty: %v", err)
		}
		// Resume: a temp holding a prefix (as after a crash).
		rel3 := "DB/id_5/level_0/node_0/data_8"
		data3 := randBytes(13, 1<<20)
		writeLocal(t, s, TempName(rel3), data3[:300001])
		if err := v.Publish(ctx, rel3, bytes.NewReader(data3[300001:]), int64(len(data3)), 300001); err != nil {
			t.Fatalf("publish resume: %v", err)
		}
		if md5File(t, volPath(s, rel3)) != md5hex(data3) || exists(volPath(s, TempName(rel3))) {
			t.Fatalf("resume: md5 differs or temp left")
		}
		// Resume from the wrong offset is refused and changes nothing.
		writeLocal(t, s, TempName(rel3), data3[:10])
		err := v.Publish(ctx, rel3, bytes.NewReader(data3[20:]), int64(len(data3)), 20)
		if !errors.Is(err, ErrResumeMismatch) || IsTransient(err) {
			t.Errorf("resume mismatch: %v", err)
		}
		if md5File(t, volPath(s, rel3)) != md5hex(data3) {
			t.Errorf("resume mismatch touched the final file")
		}
		// A source shorter than announced: nothing under the final
		// name, the temp removed (its content is known bad).
		rel4 := "DB/id_5/level_0/node_0/data_9"
		err = v.Publish(ctx, rel4, bytes.NewReader(data3[:500]), 1000, 0)
		if !errors.Is(err, ErrSizeMismatch) || exists(volPath(s, rel4)) || exists(volPath(s, TempName(rel4))) {
			t.Errorf("short source: %v; final %v temp %v", err, exists(volPath(s, rel4)), exists(volPath(s, TempName(rel4))))
		}
		// A source that fails: the temp (a correct prefix) is kept.
		src := io.MultiReader(bytes.NewReader(data3[:200000]), errReader{errors.New("source connection lost")})
		err = v.Publish(ctx, rel4, src, int64(len(data3)), 0)
		if err == nil || !strings.Contains(err.Error(), "source connection lost") || exists(volPath(s, rel4)) {
			t.Errorf("failing source: %v", err)
		}
		if b, rerr := os.ReadFile(volPath(s, TempName(rel4))); rerr != nil || !bytes.Equal(b, data3[:len(b)]) {
			t.Errorf("temp after failing source: %v", rerr)
		}
		// Bad paths.
		for _, p := range []string{"", "/abs", "a/../b", "a//b", "a/./b", "x\r\ny"} {
			if err := v.Publish(ctx, p, bytes.NewReader(nil), 0, 0); !errors.Is(err, ErrBadPath) {
				t.Errorf("Publish(%q): %v", p, err)
			}
		}
		// Delete and RemoveDir.
		if err := v.RemoveDir(ctx, "DB/id_5/level_0/node_0"); err == nil {
			t.Errorf("RemoveDir of a non-empty directory succeeded")
		}
		for _, f := range []string{rel, rel3, TempName(rel3), "DB/id_5/level_0/node_0/empty", TempName(rel4)} {
			if err := v.Delete(ctx, f); err != nil {
				t.Errorf("Delete %s: %v", f, err)
			}
		}
		if err := v.RemoveDir(ctx, "DB/id_5/level_0/node_0"); err != nil {
			t.Errorf("RemoveDir: %v", err)
		}
		if exists(volPath(s, "DB/id_5/level_0/node_0")) {
			t.Errorf("directory still there")
		}
		// Publishing again recreates the removed directory.
		if err := v.Publish(ctx, rel, bytes.NewReader(data2), int64(len(data2)), 0); err != nil {
			t.Errorf("publish after rmdir: %v", err)
		}
	})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestParallelUse(t *testing.T) {
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		checkGoroutines(t)
		for i := 0; i < 40; i++ {
			writeLocal(t, s, "DB/id_"+strconv.Itoa(i%5)+"/level_0/node_0/d"+strconv.Itoa(i%3)+"/f"+strconv.Itoa(i), randBytes(int64(i), 100+i))
		}
		opt := testOptions()
		opt.MaxConns = 3
		v := openVolume(t, s, opt)
		ctx := ctxT(t)
		errs := make(chan error, 8)
		for w := 0; w < 8; w++ {
			go func() {
				l, err := v.ListNode(ctx, "DB", 0)
				if err == nil && len(l.Files) != 40 {
					err = errors.New("listed " + strconv.Itoa(len(l.Files)) + " files")
				}
				if err == nil {
					data := randBytes(int64(w), 5000)
					err = v.Publish(ctx, "DB2/id_9/level_0/node_0/w"+strconv.Itoa(w), bytes.NewReader(data), 5000, 0)
				}
				errs <- err
			}()
		}
		for w := 0; w < 8; w++ {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		v.pool.mu.Lock()
		idle := len(v.pool.idle)
		v.pool.mu.Unlock()
		if idle > 3 {
			t.Errorf("%d idle connections with MaxConns 3", idle)
		}
	})
}

func TestCloseCutsOperations(t *testing.T) {
	checkGoroutines(t)
	s := ftptest.Start(t, ftptest.KindEmbedded, kindHost[ftptest.KindEmbedded])
	data := randBytes(3, 1<<20)
	writeLocal(t, s, "f", data)
	v, err := Open(ctxT(t), endpointOf(s), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	r, err := v.Open(ctxT(t), "f", 0)
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	v.Close()
	if _, err := io.ReadAll(r); err == nil {
		t.Errorf("read survived Close")
	}
	r.Close()
	if _, err := v.ListNode(ctxT(t), "DB", 0); err == nil {
		t.Errorf("ListNode after Close succeeded")
	}
}

func TestContextCancelStopsRead(t *testing.T) {
	checkGoroutines(t)
	s := ftptest.Start(t, ftptest.KindEmbedded, kindHost[ftptest.KindEmbedded])
	writeLocal(t, s, "f", randBytes(3, 4<<20))
	v := openVolume(t, s, testOptions())
	ctx, cancel := context.WithCancel(context.Background())
	r, err := v.Open(ctx, "f", 0)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(r, make([]byte, 1000))
	cancel()
	_, err = io.ReadAll(r)
	r.Close()
	if !errors.Is(err, context.Canceled) || IsTransient(err) {
		t.Errorf("read after cancel: %v", err)
	}
	// The volume still works.
	r, err = v.Open(ctxT(t), "f", 0)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, r)
	if err := r.Close(); err != nil {
		t.Error(err)
	}
}

// A source volume is opened read-only: its probe leaves no trace in the
// volume (not even briefly) and every write is refused.
func TestReadOnlyVolumeWritesNothing(t *testing.T) {
	srv := ftptest.Start(t, ftptest.KindVsftpd, "127.0.1.40")
	root := filepath.Join(srv.Dir, srv.Volume)
	ep := Endpoint{Host: srv.Host, Port: srv.Port, User: srv.User, Password: srv.Password, Root: "/" + srv.Volume}
	v, err := Open(context.Background(), ep, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if !v.Capabilities().Rest || v.Capabilities().Writable {
		t.Errorf("read-only capabilities %v", v.Capabilities())
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("the read-only probe wrote into the volume: %v", entries)
	}
	for _, err := range []error{
		v.Publish(context.Background(), "DB/x", strings.NewReader("x"), 1, 0),
		v.Delete(context.Background(), "DB/x"),
		v.RemoveDir(context.Background(), "DB"),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("write on a read-only volume: %v", err)
		}
	}
}
