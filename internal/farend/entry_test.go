package farend

import (
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"backupsync/internal/archive"
)

// TestEntryRoundTrip: a listing entry keeps its path, size, time (exact or
// not, and no time as no time) across the wire.
func TestEntryRoundTrip(t *testing.T) {
	for _, e := range []archive.Entry{
		{Path: "DB/id_1/level_0/node_0/f", Size: 12345, ModTime: time.Date(2026, 12, 6, 1, 2, 3, 0, time.UTC), Exact: true},
		{Path: "DB/id_1/level_0/node_0/sub/g", Size: 0, ModTime: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Path: "DB/id_1/level_0/node_0/h.backupsync-part", Size: 1 << 40},
	} {
		es, err := decodeEntries(append(ssh.Marshal(entryOf(e)), ssh.Marshal(entryOf(e))...))
		if err != nil || len(es) != 2 {
			t.Fatalf("%+v: %v %d", e, err, len(es))
		}
		f := fileOf(es[1])
		if f.Path != e.Path || f.Size != e.Size || !f.ModTime.Equal(e.ModTime) || f.ModTime.IsZero() != e.ModTime.IsZero() || f.Exact != e.Exact {
			t.Errorf("%+v came back as %+v", e, f)
		}
	}
}
