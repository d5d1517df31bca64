package sync

import (
	"fmt"
	"path"
	"sort"
	"time"

	"backupsync/internal/display"
)

// A File is one regular file of a listing, its path relative to the volume
// root ("DB/id_11/level_0/node_0/file").
type File struct {
	Path    string
	Size    int64
	ModTime time.Time // zero when the server gives no usable time
	Exact   bool      // ModTime is exact (MLSD, MDTM), not LIST's minute
}

// A Listing is the complete list of one node's files on one side.
type Listing struct {
	Files []File
}

// A Snapshot remembers the source as one cycle saw it, so that the next
// cycle can tell whether a file without a usable time has stopped growing.
type Snapshot struct {
	Taken time.Time
	Files map[string]Seen
}

// Seen is a file's size and since when it has had that size.
type Seen struct {
	Size  int64
	Since time.Time
}

// Op is what an action does.
type Op int

const (
	OpCopy       Op = iota // the destination lacks the file
	OpResume               // a shorter temp file of ours is at the destination
	OpReplace              // the destination has the name with another size
	OpDefer                // not copied this cycle; Reason says why
	OpDelete               // expired at the source
	OpDeleteTemp           // a temp file of ours that is no longer needed
	OpRemoveDir            // a directory emptied by deletions, if empty
)

var opNames = [...]string{"copy", "resume", "replace", "defer", "delete", "delete-temp", "rmdir"}

func (o Op) String() string { return opNames[o] }

// An Action is one step of a plan.
type Action struct {
	Op     Op
	Path   string // final path (for OpDeleteTemp: the temp file's path)
	Size   int64  // source size, for copies
	From   int64  // resume offset, for OpResume
	Set    SetKey
	Reason string // for OpDefer and held deletions
	// Metadata marks a file that must wait for every data file of its set.
	Metadata bool
	// ModTime of the source file, for lag accounting.
	ModTime time.Time
}

// A Plan is what one cycle will do. Actions are in execution order: copies
// (sets oldest first, data before metadata), then deletions (per set,
// metadata first so that a half-deleted set never looks complete).
type Plan struct {
	Actions  []Action
	UpToDate int      // files already present with the right size
	Notes    []string // decisions an admin should see (e.g. deletions refused)
	Snapshot Snapshot // the source as seen now, for the next cycle
}

// Count is the number of actions of op.
func (p *Plan) Count(op Op) int {
	n := 0
	for _, a := range p.Actions {
		if a.Op == op {
			n++
		}
	}
	return n
}

// PlanInput is everything a plan is a function of.
type PlanInput struct {
	Database      string
	Node          int
	Source        Listing
	Destination   Listing
	Previous      Snapshot
	Now           time.Time
	SettleTime    time.Duration
	Delete        bool
	MaxDeleteSets int // 0: no cap
	// IsTemp recognises the destination's temp files (archive.IsTemp).
	IsTemp func(name string) (final string, ok bool)
	// CanResume says the destination can append to a temp file; without
	// it a shorter temp file is rewritten from the start.
	CanResume bool
}

// MakePlan decides what one cycle does. It is a pure function of its input:
// it reads no clock and touches no server. Both listings must be complete:
// a caller whose listing failed must not plan (deletions would follow a
// partial view).
func MakePlan(in PlanInput) Plan {
	p := Plan{Snapshot: Snapshot{Taken: in.Now, Files: map[string]Seen{}}}

	src := map[string]File{}
	for _, f := range in.Source.Files {
		if loc, ok := in.mine(f.Path); ok && !notBackupData(f.Path) && loc.rest != "" {
			if _, temp := in.IsTemp(f.Path); temp {
				continue // a source never holds our temp files; never copy one
			}
			src[f.Path] = f
		}
	}
	dst, temps := map[string]File{}, map[string]File{}
	for _, f := range in.Destination.Files {
		if _, ok := in.mine(f.Path); !ok || notBackupData(f.Path) {
			continue
		}
		if final, temp := in.IsTemp(f.Path); temp {
			if _, ok := in.mine(final); ok { // a temp of no sensible final name is not ours
				temps[final] = f
			}
			continue
		}
		dst[f.Path] = f
	}

	// Copies.
	var copies []Action
	heldSets := map[SetKey]string{} // sets whose metadata must wait, and why
	for _, f := range src {
		seen := Seen{Size: f.Size, Since: in.Now}
		if prev, ok := in.Previous.Files[f.Path]; ok && prev.Size == f.Size {
			seen.Since = prev.Since
		}
		p.Snapshot.Files[f.Path] = seen

		loc, _ := in.mine(f.Path)
		a := Action{Path: f.Path, Size: f.Size, Set: loc.set, Metadata: isMetadata(f.Path), ModTime: f.ModTime}
		d, present := dst[f.Path]
		if present && d.Size == f.Size {
			p.UpToDate++
			continue
		}
		if ok, why := in.stable(f); !ok {
			a.Op, a.Reason = OpDefer, why
			copies = append(copies, a)
			if !a.Metadata {
				heldSets[loc.set] = "data file " + path.Base(f.Path) + " is not stable yet"
			}
			continue
		}
		switch t, hasTemp := temps[f.Path]; {
		case present:
			a.Op = OpReplace
		case in.CanResume && hasTemp && t.Size > 0 && t.Size < f.Size:
			a.Op, a.From = OpResume, t.Size
		default:
			a.Op = OpCopy
		}
		copies = append(copies, a)
	}
	for i := range copies {
		a := &copies[i]
		if why, held := heldSets[a.Set]; held && a.Metadata && a.Op != OpDefer {
			a.Op, a.Reason = OpDefer, "set incomplete: "+why
		}
	}
	sortActions(copies)
	p.Actions = append(p.Actions, copies...)

	// Temp files of ours that nothing will resume.
	var cleanup []Action
	for final, t := range temps {
		if _, wanted := src[final]; wanted {
			if d, ok := dst[final]; !ok || d.Size != src[final].Size {
				continue // still needed: resumed now or later
			}
		}
		cleanup = append(cleanup, Action{Op: OpDeleteTemp, Path: t.Path})
	}
	sort.Slice(cleanup, func(i, j int) bool { return cleanup[i].Path < cleanup[j].Path })
	p.Actions = append(p.Actions, cleanup...)

	if in.Delete {
		p.Actions = append(p.Actions, in.deletions(src, dst, &p)...)
	}
	return p
}

// mine locates a path and reports whether it is inside this node's part of
// the configured database. Anything else is never acted on.
func (in *PlanInput) mine(p string) (location, bool) {
	if path.Clean(p) != p || path.IsAbs(p) {
		return location{}, false
	}
	loc, ok := locate(in.Database, p)
	return loc, ok && loc.node == in.Node
}

// stable applies the SETTLE_TIME rule (DESIGN §3.2).
func (in *PlanInput) stable(f File) (bool, string) {
	prev, known := in.Previous.Files[f.Path]
	if known && prev.Size != f.Size {
		return false, fmt.Sprintf("size changed since the last listing (%d → %d bytes)", prev.Size, f.Size)
	}
	if !f.ModTime.IsZero() {
		// Listed times are truncated: MLSD and MDTM to the second, LIST
		// times of recent files to the minute.
		settle := in.SettleTime + time.Second
		if !f.Exact {
			settle = in.SettleTime + time.Minute
		}
		if f.ModTime.After(in.Now) {
			// Not as a negative age: a time centuries ahead saturates to -2562047h.
			return false, fmt.Sprintf("modified in the future (%s, after this node's %s): copied once unchanged for %s after that; check the clocks",
				display.Time(f.ModTime), display.Time(in.Now), settle)
		}
		if age := in.Now.Sub(f.ModTime); age < settle {
			return false, fmt.Sprintf("modified %s ago, copied once unchanged for %s", age.Round(time.Second), settle)
		}
		return true, ""
	}
	if known && in.Now.Sub(prev.Since) >= in.SettleTime {
		return true, ""
	}
	return false, fmt.Sprintf("no modification time: copied once its size stays the same for %s", in.SettleTime)
}

// deletions plans the expiry of destination files the source no longer has.
func (in *PlanInput) deletions(src, dst map[string]File, p *Plan) []Action {
	bySet := map[SetKey][]File{}
	for pth, f := range dst {
		if _, ok := src[pth]; !ok {
			loc, _ := in.mine(pth)
			bySet[loc.set] = append(bySet[loc.set], f)
		}
	}
	if len(bySet) == 0 {
		return nil
	}
	if len(src) == 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("deletions refused: the source lists no backup set while the destination holds %d file(s); is the source volume unmounted?", len(dst)))
		return nil
	}
	sets := make([]SetKey, 0, len(bySet))
	for s := range bySet {
		sets = append(sets, s)
	}
	sort.Slice(sets, func(i, j int) bool { return setLess(sets[i], sets[j]) })
	if in.MaxDeleteSets > 0 && len(sets) > in.MaxDeleteSets {
		p.Notes = append(p.Notes, fmt.Sprintf("%d of %d expired sets held back by MAX_DELETE_SETS = %d", len(sets)-in.MaxDeleteSets, len(sets), in.MaxDeleteSets))
		sets = sets[:in.MaxDeleteSets]
	}
	var acts []Action
	for _, s := range sets {
		files := bySet[s]
		sort.Slice(files, func(i, j int) bool {
			mi, mj := isMetadata(files[i].Path), isMetadata(files[j].Path)
			if mi != mj {
				return mi // metadata first: the set stops looking complete at once
			}
			return files[i].Path > files[j].Path
		})
		dirs := map[string]bool{}
		for _, f := range files {
			acts = append(acts, Action{Op: OpDelete, Path: f.Path, Set: s})
			for d := path.Dir(f.Path); d != string(s) && d != "."; d = path.Dir(d) {
				dirs[d] = true
			}
		}
		// Emptied directories, deepest first, up to the set's own two
		// levels; the server refuses to remove one that is not empty.
		all := make([]string, 0, len(dirs)+2)
		for d := range dirs {
			all = append(all, d)
		}
		sort.Slice(all, func(i, j int) bool {
			return len(all[i]) > len(all[j]) || (len(all[i]) == len(all[j]) && all[i] < all[j])
		})
		all = append(all, string(s), path.Dir(string(s)))
		for _, d := range all {
			acts = append(acts, Action{Op: OpRemoveDir, Path: d, Set: s})
		}
	}
	return acts
}

func sortActions(as []Action) {
	sort.Slice(as, func(i, j int) bool {
		a, b := as[i], as[j]
		if a.Set != b.Set {
			return setLess(a.Set, b.Set)
		}
		if a.Metadata != b.Metadata {
			return !a.Metadata
		}
		return a.Path < b.Path
	})
}

// setLess orders backup sets oldest first: by id, then level.
func setLess(a, b SetKey) bool {
	ia, la := a.order()
	ib, lb := b.order()
	if ia != ib {
		return ia < ib
	}
	if la != lb {
		return la < lb
	}
	return a < b
}
