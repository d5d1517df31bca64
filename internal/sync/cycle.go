package sync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"backupsync/internal/atomicfile"
)

// Lister lists one node's part of a database on one side. The listing must
// be complete or an error: a partial listing would make deletions follow a
// partial view.
type Lister interface {
	ListNode(ctx context.Context, database string, node int) (Listing, error)
}

// SourceSide and DestinationSide are what a cycle needs of each volume.
type (
	SourceSide interface {
		Lister
		Source
	}
	DestinationSide interface {
		Lister
		Destination
	}
)

// A Cycle is one run of a connection on one node.
type Cycle struct {
	Connection    string
	Database      string
	Node          int
	SettleTime    time.Duration
	Delete        bool
	MaxDeleteSets int
	// StateDir keeps the source snapshot and the last reports; "" keeps nothing.
	StateDir string
	DryRun   bool
	Exec     Options
	IsTemp   func(name string) (final string, ok bool)
	// CanResume: the destination appends to temp files correctly.
	CanResume bool
	// Journal, when set, lists direct uploads a crash may have left
	// partial; they are removed before planning.
	Journal *Journal
	Now     func() time.Time // default time.Now
}

// ErrUnreachable wraps a listing failure: the cycle did nothing.
var ErrUnreachable = errors.New("endpoint unreachable")

// Run lists both sides, plans and executes one cycle, and persists the
// snapshot and the report. The error is non-nil only when the cycle could
// not plan (a listing failed: ErrUnreachable) or persist; failed files are
// in the report.
func (c *Cycle) Run(ctx context.Context, src SourceSide, dst DestinationSide) (Report, Plan, error) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	rep := Report{Connection: c.Connection, Node: c.Node, Started: now(), DryRun: c.DryRun}
	type listed struct {
		l   Listing
		err error
	}
	sc, dc := make(chan listed, 1), make(chan listed, 1)
	go func() { l, err := src.ListNode(ctx, c.Database, c.Node); sc <- listed{l, err} }()
	go func() { l, err := dst.ListNode(ctx, c.Database, c.Node); dc <- listed{l, err} }()
	s, d := <-sc, <-dc
	if s.err != nil || d.err != nil {
		err := errors.Join(wrapSide("source", s.err), wrapSide("destination", d.err))
		rep.finish(now(), Result{}, Plan{})
		rep.Error = err.Error()
		c.saveReport(rep)
		return rep, Plan{}, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	if err := c.repair(ctx, dst, &d.l); err != nil {
		rep.finish(now(), Result{}, Plan{})
		rep.Error = err.Error()
		c.saveReport(rep)
		return rep, Plan{}, err
	}
	prev, err := c.loadSnapshot()
	if err != nil {
		return rep, Plan{}, err
	}
	plan := MakePlan(PlanInput{
		Database: c.Database, Node: c.Node, Source: s.l, Destination: d.l, Previous: prev,
		Now: rep.Started, SettleTime: c.SettleTime, Delete: c.Delete, MaxDeleteSets: c.MaxDeleteSets,
		IsTemp: c.IsTemp, CanResume: c.CanResume,
	})
	if c.DryRun {
		rep.finish(now(), Result{Deferred: deferred(plan)}, plan)
		return rep, plan, nil
	}
	exec := c.Exec
	digests, err := readDigests(ctx, src, s.l.Files, plan)
	if err != nil {
		rep.finish(now(), Result{}, plan)
		rep.Error = err.Error()
		c.saveReport(rep)
		return rep, plan, err
	}
	for p, sum := range c.Exec.Digests {
		digests[p] = sum
	}
	exec.Digests = digests
	res := Execute(ctx, plan, src, dst, exec)
	rep.finish(now(), res, plan)
	if ctx.Err() != nil {
		rep.Error = "cycle cancelled: " + ctx.Err().Error()
	}
	if err := c.saveSnapshot(plan.Snapshot); err != nil {
		return rep, plan, err
	}
	return rep, plan, c.saveReport(rep)
}

// repair removes what the journal says may be partial from the destination
// and from its listing, so that the plan copies those files again.
func (c *Cycle) repair(ctx context.Context, dst Destination, l *Listing) error {
	if c.Journal == nil {
		return nil
	}
	paths, err := c.Journal.InFlight()
	if err != nil {
		return err
	}
	for _, p := range paths {
		kept := l.Files[:0]
		present := false
		for _, f := range l.Files {
			if f.Path == p {
				present = true
				continue
			}
			kept = append(kept, f)
		}
		l.Files = kept
		if present {
			if err := dst.Delete(ctx, p); err != nil {
				return fmt.Errorf("repair interrupted upload %s: %w", p, err)
			}
		}
		if err := c.Journal.End(p); err != nil {
			return err
		}
	}
	return nil
}

func deferred(p Plan) []Action {
	var out []Action
	for _, a := range p.Actions {
		if a.Op == OpDefer {
			out = append(out, a)
		}
	}
	return out
}

func wrapSide(side string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("list %s: %w", side, err)
}

func (c *Cycle) stateFile(kind string) string {
	return filepath.Join(c.StateDir, "sync", c.Connection, fmt.Sprintf("node_%d.%s.json", c.Node, kind))
}

func (c *Cycle) loadSnapshot() (Snapshot, error) {
	var s Snapshot
	if c.StateDir == "" {
		return s, nil
	}
	data, err := os.ReadFile(c.stateFile("snapshot"))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err == nil {
		err = json.Unmarshal(data, &s)
	}
	if err != nil {
		// A damaged snapshot only delays files without a usable time.
		return Snapshot{}, nil
	}
	return s, nil
}

func (c *Cycle) saveSnapshot(s Snapshot) error {
	if c.StateDir == "" || c.DryRun {
		return nil
	}
	return c.writeState("snapshot", s)
}

// keptReports is how many reports a connection keeps per node.
const keptReports = 20

func (c *Cycle) saveReport(r Report) error {
	if c.StateDir == "" || c.DryRun {
		return nil
	}
	reports, _ := LoadReports(c.StateDir, c.Connection, c.Node)
	reports = append(reports, r)
	if len(reports) > keptReports {
		reports = reports[len(reports)-keptReports:]
	}
	return c.writeState("reports", reports)
}

func (c *Cycle) writeState(kind string, v any) error {
	p := c.stateFile(kind)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	// The snapshot and the reports are hints and records: losing the newest
	// to a power cut only defers files or drops a report (see loadSnapshot).
	return atomicfile.WriteUnsynced(p, data, 0o600)
}

// LoadReports returns the last reports of a connection on a node, oldest first.
func LoadReports(stateDir, connection string, node int) ([]Report, error) {
	c := Cycle{StateDir: stateDir, Connection: connection, Node: node}
	data, err := os.ReadFile(c.stateFile("reports"))
	if err != nil {
		return nil, err
	}
	var rs []Report
	return rs, json.Unmarshal(data, &rs)
}
