package sync

import (
	"strings"
	"testing"
	"time"
)

// listingFrom turns fuzz text into a listing: one "path size age-seconds"
// per line; malformed lines are skipped, as a hostile or broken server's
// would be before they reach the planner.
func listingFrom(text string) Listing {
	var l Listing
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		var size, age int64
		for _, c := range f[1] {
			size = size*10 + int64(c%10)
		}
		for _, c := range f[2] {
			age = age*10 + int64(c%10)
		}
		l.Files = append(l.Files, File{Path: f[0], Size: size % (1 << 40), ModTime: now.Add(-time.Duration(age%100000) * time.Second), Exact: age%2 == 0})
	}
	return l
}

// FuzzMakePlan: whatever the listings, the plan never acts outside this
// node's part of the database, never deletes when the source lists nothing,
// respects MAX_DELETE_SETS, copies only files the source has, and never
// orders a set's metadata before its data.
func FuzzMakePlan(f *testing.F) {
	f.Add("DB/id_1/level_0/node_0/a 5 3600\nDB/id_1/level_0/node_0/metadata 1 3600", "DB/id_0/level_0/node_0/x 1 1", uint8(1))
	f.Add("DB/id_1/level_0/node_0/../../x 5 3600", "DB/id_1/level_0/node_1/a 1 1\nDB/id_2/level_0/node_0/a.part-test 3 0", uint8(0))
	f.Add("", "DB/id_1/level_0/node_0/a 1 1", uint8(0))
	f.Fuzz(func(t *testing.T, src, dst string, maxSets uint8) {
		in := PlanInput{Database: "DB", Node: 0, Source: listingFrom(src), Destination: listingFrom(dst),
			Now: now, SettleTime: time.Minute, Delete: true, MaxDeleteSets: int(maxSets % 4), IsTemp: isTemp, CanResume: true}
		p := MakePlan(in)
		srcPaths := map[string]bool{}
		for _, f := range in.Source.Files {
			srcPaths[f.Path] = true
		}
		deletedSets := map[SetKey]bool{}
		metaSeen := map[SetKey]bool{}
		for _, a := range p.Actions {
			if a.Op == OpRemoveDir {
				if !strings.HasPrefix(a.Path, "DB/") {
					t.Fatalf("rmdir outside the database: %+v", a)
				}
				continue
			}
			check := a.Path
			if a.Op == OpDeleteTemp {
				check, _ = isTemp(a.Path)
			}
			if _, ok := in.mine(check); !ok {
				t.Fatalf("action outside this node's part: %+v", a)
			}
			switch a.Op {
			case OpCopy, OpResume, OpReplace, OpDefer:
				if !srcPaths[a.Path] {
					t.Fatalf("copy of a file the source lacks: %+v", a)
				}
				if a.Metadata && a.Op != OpDefer {
					metaSeen[a.Set] = true
				} else if !a.Metadata && metaSeen[a.Set] && a.Op != OpDefer {
					t.Fatalf("data after metadata in set %s", a.Set)
				}
			case OpDelete:
				if len(srcPaths) == 0 {
					t.Fatalf("delete while the source lists nothing: %+v", a)
				}
				deletedSets[a.Set] = true
			}
		}
		if in.MaxDeleteSets > 0 && len(deletedSets) > in.MaxDeleteSets {
			t.Fatalf("%d sets deleted, cap %d", len(deletedSets), in.MaxDeleteSets)
		}
	})
}
