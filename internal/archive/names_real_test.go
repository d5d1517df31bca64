package archive

import (
	"errors"
	"testing"

	"backupsync/internal/ftptest"
)

// A file named with control characters in a node's tree on a real server
// fails the listing with ErrUnsafeName, as a ".." would: it is never
// copied, and the error shows the name escaped. pure-ftpd leaves such
// names out of its listings: there the file is not seen at all.
func TestRealListingOfAnUnprintableName(t *testing.T) {
	forEachKind(t, func(t *testing.T, s *ftptest.Server) {
		writeLocal(t, s, "DB/id_1/level_0/node_0/data_000", []byte("fine"))
		writeLocal(t, s, "DB/id_1/level_0/node_0/evil\x01\x1b[31m\x7f", []byte("evil"))
		v := openVolume(t, s, testOptions())
		l, err := v.ListNode(ctxT(t), "DB", 0)
		if s.Kind == ftptest.KindPureFTPd {
			if err != nil || len(l.Files) != 1 || l.Files[0].Path != "DB/id_1/level_0/node_0/data_000" {
				t.Fatalf("pure-ftpd: %+v, %v; want the printable file only", l.Files, err)
			}
			return
		}
		if !errors.Is(err, ErrUnsafeName) {
			t.Fatalf("listing: %d files, %v; want ErrUnsafeName", len(l.Files), err)
		}
		if msg := err.Error(); hasControl(msg) || DisplayName(msg) != msg {
			t.Errorf("the error is not printable: %q", msg)
		}
	})
}
