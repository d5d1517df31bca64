package sync

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

const suffix = ".part-test"

func isTemp(name string) (string, bool) { return strings.CutSuffix(name, suffix) }
func tempName(final string) string      { return final + suffix }

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// file is a source or destination file modified age ago (exact time).
func file(p string, size int64, age time.Duration) File {
	return File{Path: p, Size: size, ModTime: now.Add(-age), Exact: true}
}

const (
	d0  = "DB/id_2/level_0/node_0/"
	d1  = "DB/id_3/level_1/node_0/"
	old = time.Hour
)

// brief renders actions as "op path[ from]" for readable comparisons.
func brief(as []Action) []string {
	var out []string
	for _, a := range as {
		s := a.Op.String() + " " + a.Path
		if a.Op == OpResume {
			s += fmt.Sprintf(" from %d", a.From)
		}
		out = append(out, s)
	}
	return out
}

func TestMakePlan(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src, dst []File
		prev     map[string]Seen
		edit     func(*PlanInput)
		want     []string
		upToDate int
		note     string
	}{
		{name: "nothing anywhere"},
		{name: "first full copy, data before metadata, sets oldest first (numeric ids)",
			src: []File{file("DB/id_10/level_0/node_0/metadata", 1, old), file("DB/id_10/level_0/node_0/a", 5, old),
				file(d0+"metadata_1", 1, old), file(d0+"b", 5, old), file(d0+"a", 5, old)},
			want: []string{"copy " + d0 + "a", "copy " + d0 + "b", "copy " + d0 + "metadata_1",
				"copy DB/id_10/level_0/node_0/a", "copy DB/id_10/level_0/node_0/metadata"}},
		{name: "second run is a no-op",
			src: []File{file(d0+"a", 5, old)}, dst: []File{file(d0+"a", 5, 0)}, upToDate: 1},
		{name: "growing file deferred (exact time)",
			src:  []File{file(d0+"a", 5, time.Minute)},
			want: []string{"defer " + d0 + "a"}},
		{name: "LIST time to the minute needs a minute more",
			src:  []File{{Path: d0 + "a", Size: 5, ModTime: now.Add(-2*time.Minute - 30*time.Second)}, {Path: d0 + "b", Size: 5, ModTime: now.Add(-3*time.Minute - time.Second)}},
			want: []string{"defer " + d0 + "a", "copy " + d0 + "b"}},
		{name: "no time: deferred when first seen",
			src:  []File{{Path: d0 + "a", Size: 5}},
			want: []string{"defer " + d0 + "a"}},
		{name: "no time: copied once its size held for SETTLE_TIME",
			src:  []File{{Path: d0 + "a", Size: 5}, {Path: d0 + "b", Size: 5}},
			prev: map[string]Seen{d0 + "a": {5, now.Add(-3 * time.Minute)}, d0 + "b": {5, now.Add(-time.Minute)}},
			want: []string{"copy " + d0 + "a", "defer " + d0 + "b"}},
		{name: "size changed since the last listing: deferred even with an old time (clock skew)",
			src:  []File{file(d0+"a", 9, old)},
			prev: map[string]Seen{d0 + "a": {5, now.Add(-old)}},
			want: []string{"defer " + d0 + "a"}},
		{name: "metadata held while a data file of its set settles",
			src:  []File{file(d0+"a", 5, old), file(d0+"b", 5, 0), file(d0+"metadata", 1, old), file(d1+"x", 1, old), file(d1+"metadata", 1, old)},
			want: []string{"copy " + d0 + "a", "defer " + d0 + "b", "defer " + d0 + "metadata", "copy " + d1 + "x", "copy " + d1 + "metadata"}},
		{name: "different size at the destination is replaced",
			src: []File{file(d0+"a", 5, old)}, dst: []File{file(d0+"a", 3, 0)},
			want: []string{"replace " + d0 + "a"}},
		{name: "shorter temp file is resumed",
			src: []File{file(d0+"a", 5, old)}, dst: []File{file(d0+"a"+suffix, 3, 0)},
			want: []string{"resume " + d0 + "a from 3"}},
		{name: "shorter temp file is rewritten where the server cannot append",
			src: []File{file(d0+"a", 5, old)}, dst: []File{file(d0+"a"+suffix, 3, 0)},
			edit: func(in *PlanInput) { in.CanResume = false },
			want: []string{"copy " + d0 + "a"}},
		{name: "empty or overlong temp file is rewritten, not resumed",
			src: []File{file(d0+"a", 5, old), file(d0+"b", 5, old)}, dst: []File{file(d0+"a"+suffix, 0, 0), file(d0+"b"+suffix, 7, 0)},
			want: []string{"copy " + d0 + "a", "copy " + d0 + "b"}},
		{name: "temp of a complete file and orphan temp are deleted",
			src: []File{file(d0+"a", 5, old)}, dst: []File{file(d0+"a", 5, 0), file(d0+"a"+suffix, 2, 0), file(d0+"gone"+suffix, 2, 0)},
			want: []string{"delete-temp " + d0 + "a" + suffix, "delete-temp " + d0 + "gone" + suffix}, upToDate: 1},
		{name: "temp of an unstable file is kept for later",
			src: []File{file(d0+"a", 5, 0)}, dst: []File{file(d0+"a"+suffix, 2, 0)},
			want: []string{"defer " + d0 + "a"}},
		{name: "source expiry deletes the set, metadata first, then emptied dirs",
			src: []File{file(d1+"x", 1, old)}, dst: []File{file(d1+"x", 1, 0), file(d0+"a", 5, 0), file(d0+"metadata", 1, 0), file(d0+"sub/c", 1, 0)},
			want: []string{"delete " + d0 + "metadata", "delete " + d0 + "sub/c", "delete " + d0 + "a",
				"rmdir DB/id_2/level_0/node_0/sub", "rmdir DB/id_2/level_0/node_0", "rmdir DB/id_2/level_0", "rmdir DB/id_2"},
			upToDate: 1},
		{name: "DELETE = false keeps expired sets",
			src: []File{file(d1+"x", 1, old)}, dst: []File{file(d1+"x", 1, 0), file(d0+"a", 5, 0)},
			edit: func(in *PlanInput) { in.Delete = false }, upToDate: 1},
		{name: "empty source never wipes the destination (unmounted volume)",
			dst:  []File{file(d0+"a", 5, 0), file(d1+"x", 1, 0)},
			note: "deletions refused: the source lists no backup set"},
		{name: "MAX_DELETE_SETS deletes the oldest sets only",
			src:      []File{file("DB/id_9/level_0/node_0/z", 1, old)},
			dst:      []File{file("DB/id_9/level_0/node_0/z", 1, 0), file(d1+"x", 1, 0), file(d0+"a", 5, 0)},
			edit:     func(in *PlanInput) { in.MaxDeleteSets = 1 },
			want:     []string{"delete " + d0 + "a", "rmdir DB/id_2/level_0/node_0", "rmdir DB/id_2/level_0", "rmdir DB/id_2"},
			upToDate: 1, note: "1 of 2 expired sets held back by MAX_DELETE_SETS = 1"},
		{name: "other nodes, other databases and foreign paths are never touched",
			src: []File{file(d0+"a", 5, old), file("DB/id_2/level_0/node_1/a", 5, old), file("OTHER/id_2/level_0/node_0/a", 5, old)},
			dst: []File{file(d0+"a", 5, 0), file("DB/id_1/level_0/node_1/old", 5, 0), file("OTHER/id_1/level_0/node_0/old", 5, 0),
				file("DB/stray", 1, 0), file("DB/id_x/level_0/node_0/y", 1, 0)},
			upToDate: 1},
		{name: "archives and ~ entries are not backup data",
			src:  []File{file(d0+"dump.tar.gz", 5, old), file(d0+"~", 1, old), file(d0+"a", 1, old)},
			dst:  []File{file(d0+"other.tar.gz", 5, 0)},
			want: []string{"copy " + d0 + "a"}},
		{name: "hostile paths are ignored",
			src: []File{file(d0+"../../../etc/passwd", 5, old), file("/"+d0+"a", 5, old), file(d0+"./a", 1, old), file(d0+"b//c", 1, old)},
			dst: []File{file(d0+"../x", 5, 0)}},
		{name: "a temp file at the source is never copied",
			src: []File{file(d0+"a"+suffix, 5, old)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := PlanInput{Database: "DB", Node: 0, Source: Listing{tc.src}, Destination: Listing{tc.dst},
				Previous: Snapshot{Files: tc.prev}, Now: now, SettleTime: 2 * time.Minute, Delete: true,
				IsTemp: isTemp, CanResume: true}
			if tc.edit != nil {
				tc.edit(&in)
			}
			p := MakePlan(in)
			if got := brief(p.Actions); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("actions\n got  %q\n want %q", got, tc.want)
			}
			if p.UpToDate != tc.upToDate {
				t.Errorf("up to date %d, want %d", p.UpToDate, tc.upToDate)
			}
			if note := strings.Join(p.Notes, "\n"); !strings.Contains(note, tc.note) || (tc.note == "" && note != "") {
				t.Errorf("notes %q, want %q", note, tc.note)
			}
		})
	}
}

func TestPlanDeferReasons(t *testing.T) {
	p := MakePlan(PlanInput{Database: "DB", Source: Listing{[]File{file(d0+"a", 5, 30*time.Second), file(d0+"metadata", 1, old)}},
		Now: now, SettleTime: 2 * time.Minute, IsTemp: isTemp})
	want := []string{"modified 30s ago, copied once unchanged for 2m1s", "set incomplete: data file a is not stable yet"}
	for i, a := range p.Actions {
		if a.Reason != want[i] {
			t.Errorf("%s: reason %q, want %q", a.Path, a.Reason, want[i])
		}
	}
}

func TestPlanSnapshotTracksSizes(t *testing.T) {
	since := now.Add(-time.Hour)
	p := MakePlan(PlanInput{Database: "DB", Now: now, IsTemp: isTemp,
		Source:   Listing{[]File{{Path: d0 + "same", Size: 5}, {Path: d0 + "grown", Size: 9}, {Path: d0 + "new", Size: 1}}},
		Previous: Snapshot{Files: map[string]Seen{d0 + "same": {5, since}, d0 + "grown": {5, since}, d0 + "gone": {1, since}}}})
	want := map[string]Seen{d0 + "same": {5, since}, d0 + "grown": {9, now}, d0 + "new": {1, now}}
	if !reflect.DeepEqual(p.Snapshot.Files, want) || !p.Snapshot.Taken.Equal(now) {
		t.Errorf("snapshot %+v", p.Snapshot)
	}
}
