package archive

import (
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"backupsync/internal/ftptest"
)

// setListHook makes f run before each directory of a listing is listed,
// for the rest of the test.
func setListHook(t *testing.T, f func(dir string)) {
	t.Helper()
	var once sync.Mutex
	testHookBeforeList = func(dir string) {
		once.Lock()
		defer once.Unlock()
		f(dir)
	}
	t.Cleanup(func() { testHookBeforeList = func(string) {} })
}

// The database expires a backup set while the source is listed: a set that
// was there when the database directory was listed is gone when its turn
// comes. The listing is the tree as it is now, not a failed cycle.
func TestSetExpiresWhileTheSourceIsListed(t *testing.T) {
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		writeLocal(t, s, "DB/id_1/level_0/node_0/data_000", []byte("one"))
		writeLocal(t, s, "DB/id_2/level_0/node_0/data_000", []byte("two"))
		writeLocal(t, s, "DB/id_2/level_0/node_0/sub/data_001", []byte("two"))
		writeLocal(t, s, "DB/id_3/level_1/node_0/data_000", []byte("three"))
		v := openVolume(t, s, testOptions())
		for _, gone := range []string{"DB/id_2", "DB/id_2/level_0", "DB/id_2/level_0/node_0/sub"} {
			t.Run(strings.ReplaceAll(gone, "/", "_"), func(t *testing.T) {
				writeLocal(t, s, "DB/id_2/level_0/node_0/data_000", []byte("two"))
				writeLocal(t, s, "DB/id_2/level_0/node_0/sub/data_001", []byte("two"))
				setListHook(t, func(dir string) {
					if dir == gone {
						if err := os.RemoveAll(volPath(s, "DB/id_2")); err != nil {
							t.Error(err)
						}
					}
				})
				l, err := v.ListNode(ctxT(t), "DB", 0)
				if err != nil {
					t.Fatalf("listing failed: %v", err)
				}
				var files []string
				for _, f := range l.Files {
					files = append(files, f.Path)
				}
				// What was listed before the removal stays listed.
				want := []string{"DB/id_1/level_0/node_0/data_000", "DB/id_3/level_1/node_0/data_000"}
				if strings.HasSuffix(gone, "sub") {
					want = slices.Insert(want, 1, "DB/id_2/level_0/node_0/data_000")
				}
				if !slices.Equal(files, want) {
					t.Errorf("files %v, want %v", files, want)
				}
			})
		}
	})
}

// An unreadable directory still fails the listing when its parent still
// lists it: only a directory that is gone is left out.
func TestUnreadableIsNotVanished(t *testing.T) {
	s := ftptest.StartUnprivileged(t, "127.0.1.7")
	writeLocal(t, s, "DB/id_1/level_0/node_0/data_000", []byte("one"))
	opt := testOptions()
	opt.ReadOnly = true
	v := openVolume(t, s, opt)
	p := volPath(s, "DB/id_1/level_0/node_0")
	if err := os.Chmod(p, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(p, 0o755) })
	if l, err := v.ListNode(ctxT(t), "DB", 0); err == nil {
		t.Fatalf("an unreadable node directory listed as %v", l)
	}
}

// Two destination nodes begin at once on an empty volume: the database
// directory is missing when this node lists it and present (the other
// node's first publish made it) when it checks the root. It lists again.
func TestDatabaseDirectoryAppearsWhileListed(t *testing.T) {
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		if err := os.MkdirAll(volPath(s, ""), 0o755); err != nil {
			t.Fatal(err)
		}
		v := openVolume(t, s, testOptions())
		setListHook(t, func(dir string) {
			if dir == "" && !exists(volPath(s, "DB")) {
				writeLocal(t, s, "DB/id_1/level_0/node_0/data_000", []byte("one"))
			}
		})
		l, err := v.ListNode(ctxT(t), "DB", 0)
		if err != nil {
			t.Fatalf("listing failed: %v", err)
		}
		if len(l.Files) != 1 {
			t.Errorf("files %v, want the one the other node published", l.Files)
		}
	})
}
