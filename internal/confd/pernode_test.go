package confd

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"backupsync/internal/archive"
	"backupsync/internal/config"
	"backupsync/internal/display"
)

// db_backup_list's per_node says what the destinations hold of each node's
// part: synced (every file with its size), partial, missing or unknown, the
// worst over the connections copying it.
func TestNodeStates(t *testing.T) {
	s := &Service{}
	newPart := func() *part {
		return &part{files: 2, sizes: map[string]int64{"DB/id_1/level_0/node_0/a": 1, "DB/id_1/level_0/node_0/b": 2}}
	}
	for _, tc := range []struct {
		name string
		dsts []destListing // one per connection copying the part
		want string
	}{
		{"synced", []destListing{{l: archive.Listing{Files: []archive.Entry{{Path: "DB/id_1/level_0/node_0/a", Size: 1}, {Path: "DB/id_1/level_0/node_0/b", Size: 2}}}}}, "synced"},
		{"partial", []destListing{{l: archive.Listing{Files: []archive.Entry{{Path: "DB/id_1/level_0/node_0/a", Size: 1}, {Path: "DB/id_1/level_0/node_0/b", Size: 1}}}}}, "partial"},
		{"missing", []destListing{{}}, "missing"},
		{"a temp file is not a copy", []destListing{{l: archive.Listing{Files: []archive.Entry{{Path: "DB/id_1/level_0/node_0/a.backupsync-part", Size: 1}}}}}, "missing"},
		{"unknown", []destListing{{err: errors.New("down")}}, "unknown"},
		{"the worst of two connections", []destListing{
			{l: archive.Listing{Files: []archive.Entry{{Path: "DB/id_1/level_0/node_0/a", Size: 1}, {Path: "DB/id_1/level_0/node_0/b", Size: 2}}}},
			{err: errors.New("down")}}, "unknown"},
		{"partial beats unknown", []destListing{{err: errors.New("down")},
			{l: archive.Listing{Files: []archive.Entry{{Path: "DB/id_1/level_0/node_0/b", Size: 2}}}}}, "partial"},
	} {
		p := newPart()
		found := map[int]*part{0: p}
		for _, d := range tc.dsts {
			s.checkSynced(config.Connection{Name: "C"}, found, d)
		}
		// Through the node-local answer and back, as db_backup_list gets it.
		back := partFromMap(p.toMap())
		g := gathered{sets: map[string]*set{"v\x001": {volume: "v", id: 1, parts: map[int]part{0: back}}}, names: map[int]string{0: "n0011"}}
		rows := []any{map[string]any{"volume": "v", "bid": 1, "ts": time.Date(2026, 12, 6, 1, 20, 0, 0, time.Local).Format("200601021504")}}
		g.addNodeStates(rows)
		row := rows[0].(map[string]any)
		if got := fmt.Sprint(row["nodes"]); got != "map[n0011:"+tc.want+"]" {
			t.Errorf("%s: nodes = %s, want %s", tc.name, got, tc.want)
		}
		if row["time"] != display.Time(time.Date(2026, 12, 6, 1, 20, 0, 0, time.Local)) || row["bytes"] != int64(0) {
			t.Errorf("%s: time %v, bytes %v", tc.name, row["time"], row["bytes"])
		}
	}
	// A part from a daemon that sends synced only.
	if p := partFromMap(map[string]any{"synced": false}); stateNames[p.state] != "missing" {
		t.Errorf("synced false alone: %q", stateNames[p.state])
	}
	if p := partFromMap(map[string]any{}); stateNames[p.state] != "unknown" {
		t.Errorf("no synced: %q", stateNames[p.state])
	}
}
