package statuspage

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"backupsync/internal/confd"
	"backupsync/internal/display"
	"backupsync/internal/health"
)

// view is everything the template shows, as text: every value is
// escaped by html/template.
type view struct {
	Node      string // the node answering
	Generated string
	Refresh   int
	Overall   string // class of the banner: ok, failing, warn
	Headline  string
	Summary   []badge
	Nodes     []nodeView
	Skipped   int
	Conns     []connView
	Served    []servedRow
	DBs       []dbView
	NoDBs     string // why no backup sets are shown
}

type badge struct{ Class, Text string }

type nodeView struct {
	Name, Class, State, Detail string
	Version, Plugin, Took      string
}

type connView struct {
	Name, Database string
	Failing        int
	Rows           []rowView
	Charts         []chart
}

type rowView struct {
	Node        string
	Class, Word string // "failing", "ok", "running", "never", "noanswer", "absent"
	Since       string
	Detail      string
	Cause, Next string
	Progress    *progressView
	Lag         string
	LastCycle   string
	LastSummary string
	NextRun     string
}

type progressView struct {
	Text string
	Pct  int // of the bytes (or files) done; -1: no bar (still listing)
}

type servedRow struct{ Connection, Node, Class, Word, Line string }

type dbView struct {
	Name         string
	Nodes        []string // the part columns, in node index order
	Sets         []setView
	Problems     []string
	Unconfigured bool
	Listed       string
	Refreshing   bool // a newer listing runs
}

type setView struct {
	Volume, ID, Level, Timestamp, Usage, Deps string
	Usable                                    bool
	Class, Word                               string
	Parts                                     []badge // aligned with dbView.Nodes
}

// nodeColors tell the nodes apart in the charts (none is the red of
// failures or the green of ok).
var nodeColors = []string{"#2563eb", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4d7c0f", "#9a3412", "#475569"}

// view gathers the cluster's data and shapes it for the template.
func (p *Page) view(ctx context.Context) view {
	now := p.now()
	answers, dbs, skipped := p.gather(ctx, now)
	v := view{Node: p.Surface.Self, Generated: display.Time(now), Refresh: RefreshSeconds, Skipped: skipped, DBs: dbs}
	counts := map[string]int{}
	// Connections in the order first seen, nodes in cluster order.
	var names []string
	dbOf := map[string]string{}
	for _, a := range answers {
		nv := nodeView{Name: a.peer.Name, Took: display.Duration(a.took.Round(time.Second))}
		if a.took < time.Second {
			nv.Took = fmt.Sprintf("%d ms", a.took.Milliseconds())
		}
		if a.err != nil {
			nv.Class, nv.State = "noanswer", "no answer"
			nv.Detail = a.err.Error()
			counts["noanswer"]++
			p.log().Warn("status page: node did not answer", "node", a.peer.Name, "error", a.err)
		} else {
			nv.Class, nv.State, nv.Version, nv.Plugin = "ok", "answered", a.data.Version, a.data.Plugin
			if skew := a.data.Time.Sub(now); skew > time.Minute || skew < -time.Minute {
				nv.Class, nv.Detail = "warn", fmt.Sprintf("its clock is %s off this node's", display.Duration(max(skew, -skew)))
			}
			if a.data.Problem != "" {
				nv.Class, nv.Detail = "failing", a.data.Problem
			}
			for _, c := range a.data.Connections {
				if !slices.Contains(names, c.Connection) {
					names = append(names, c.Connection)
				}
				if dbOf[c.Connection] == "" {
					dbOf[c.Connection] = c.Database
				}
			}
		}
		v.Nodes = append(v.Nodes, nv)
	}
	for _, name := range names {
		cv := connView{Name: name, Database: dbOf[name]}
		var s []series
		for k, a := range answers {
			row := rowView{Node: a.peer.Name}
			if a.err != nil {
				row.Class, row.Word = "noanswer", "no answer"
				row.Detail = "the node did not answer: its health is not known (see Nodes above)"
				cv.Rows = append(cv.Rows, row)
				continue
			}
			i := slices.IndexFunc(a.data.Connections, func(c Connection) bool { return c.Connection == name })
			if i < 0 {
				row.Class, row.Word = "absent", "not here"
				row.Detail = "not configured on this node (its connections file has no " + name + ")"
				cv.Rows = append(cv.Rows, row)
				continue
			}
			row = healthRow(a.peer.Name, a.data.Connections[i], now)
			counts[row.Class]++
			if row.Class == "failing" {
				cv.Failing++
			}
			cv.Rows = append(cv.Rows, row)
			// A node keeps its colour in every chart.
			s = append(s, series{Node: a.peer.Name, Color: nodeColors[k%len(nodeColors)], Points: a.data.History[name]})
		}
		cv.Charts = []chart{
			lagChart("Lag, "+day.Name, day, now, s), lagChart("Lag, "+week.Name, week, now, s),
			throughputChart("Copied, "+day.Name, day, now, s), throughputChart("Copied, "+week.Name, week, now, s),
		}
		v.Conns = append(v.Conns, cv)
	}
	for _, a := range answers {
		for _, sv := range a.data.Served {
			row := servedRow{Connection: sv.Connection, Node: a.peer.Name, Class: "ok", Word: "ok", Line: sv.Line}
			if w, rest, ok := strings.Cut(sv.Line, ": "); ok && !strings.Contains(w, " ") {
				row.Word, row.Line = w, rest
			} else if w, rest, ok := strings.Cut(sv.Line, ", "); ok && !strings.Contains(w, " ") {
				row.Word, row.Line = w, rest
			}
			switch {
			case sv.Failing:
				row.Class, row.Word = "failing", "failing"
				counts["failing"]++
			case row.Word == "waiting":
				row.Class = "never"
			}
			v.Served = append(v.Served, row)
		}
	}
	if p.Backups == nil {
		v.NoDBs = "backup sets are not listed by this daemon"
	} else if len(dbs) == 0 {
		v.NoDBs = "no connection of " + p.Surface.Self + " copies a database: the backup sets are listed on the source cluster's page"
	}
	v.Overall, v.Headline = "ok", "Replication works"
	rows := counts["ok"] + counts["failing"] + counts["running"] + counts["never"]
	switch {
	case counts["failing"] > 0:
		v.Overall, v.Headline = "failing", fmt.Sprintf("%d failing", counts["failing"])
	case counts["noanswer"] > 0:
		v.Overall, v.Headline = "failing", fmt.Sprintf("%d node(s) not answering", counts["noanswer"])
	case rows == 0 && len(v.Served) == 0:
		v.Overall, v.Headline = "warn", "Nothing configured yet"
	case counts["never"] > 0 && counts["ok"]+counts["running"] == 0:
		v.Overall, v.Headline = "warn", "No cycle has run yet"
	}
	for _, b := range []badge{
		{"failing", plural(counts["failing"], "failing", "failing")},
		{"noanswer", plural(counts["noanswer"], "node not answering", "nodes not answering")},
		{"running", plural(counts["running"], "running", "running")},
		{"ok", plural(counts["ok"], "ok", "ok")},
		{"never", plural(counts["never"], "never ran", "never ran")},
	} {
		if b.Text != "" {
			v.Summary = append(v.Summary, b)
		}
	}
	return v
}

func plural(n int, one, many string) string {
	switch n {
	case 0:
		return ""
	case 1:
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// ago is t and how long before now it was.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	if d := now.Sub(t); d >= 0 {
		return display.Time(t) + " (" + display.Duration(d) + " ago)"
	}
	return display.Time(t) + " (in " + display.Duration(t.Sub(now)) + ")"
}

// healthRow is a connection's health on a node as a row of the page.
func healthRow(node string, c Connection, now time.Time) rowView {
	h := c.Health
	r := rowView{Node: node, Lag: "not known yet", LastCycle: ago(h.LastCycle, now), LastSummary: h.LastSummary}
	if h.LagKnown {
		r.Lag = display.Duration(h.Lag)
	}
	switch {
	case !h.NextRun.IsZero():
		r.NextRun = ago(h.NextRun, now)
	case !c.Activated:
		r.NextRun = "none: not activated on this node"
	default:
		r.NextRun = "not scheduled"
	}
	switch h.State {
	case health.Failing:
		r.Class, r.Word = "failing", "failing"
		r.Since = "since " + ago(h.FailingSince, now)
		r.Detail = plural(h.Failures, "failed cycle", "failed cycles in a row")
		if h.Running {
			r.Detail += "; retrying now"
		}
		// The cause says what the last cycle's summary would repeat.
		r.Cause, r.Next, r.LastSummary = h.Cause, h.Next, ""
	case health.Running:
		r.Class, r.Word = "running", "running"
		r.Since = "since " + ago(h.RunningSince, now)
	case health.OK:
		r.Class, r.Word = "ok", "ok"
		r.Since = "since " + ago(h.Since, now)
	default:
		r.Class, r.Word = "never", "never ran"
		if !c.Activated {
			r.Detail = "not activated on this node: ACTIVATE " + c.Connection
		}
	}
	if h.Running && h.Progress != nil {
		pr := h.Progress
		pv := &progressView{Text: health.ProgressText(*pr), Pct: -1}
		switch {
		case pr.Started.IsZero(): // still listing: no bar
		case pr.BytesTotal > 0:
			pv.Pct = int(min(100, max(0, pr.BytesDone*100/pr.BytesTotal)))
		case pr.FilesTotal > 0:
			pv.Pct = int(min(100, max(0, pr.FilesDone*100/pr.FilesTotal)))
		default:
			pv.Pct = 100
		}
		r.Progress = pv
	}
	return r
}

// backupsView shapes a database's sets for the template.
func backupsView(db string, sets []confd.BackupSet, problems []string, unconfigured bool, now time.Time) dbView {
	v := dbView{Name: db, Problems: problems, Unconfigured: unconfigured, Listed: display.Time(now)}
	index := map[int]string{}
	for _, s := range sets {
		for _, p := range s.Parts {
			if index[p.Index] == "" {
				index[p.Index] = p.Node
			}
		}
	}
	var idx []int
	for i := range index {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		name := index[i]
		if name == "" {
			name = fmt.Sprintf("node_%d", i)
		}
		v.Nodes = append(v.Nodes, fmt.Sprintf("%s (node_%d)", name, i))
	}
	for _, s := range sets {
		sv := setView{Volume: s.Volume, ID: fmt.Sprint(s.ID), Level: fmt.Sprint(s.Level), Timestamp: s.Timestamp, Usage: s.Usage, Deps: s.Dependencies, Usable: s.Usable}
		sv.Class, sv.Word = syncWord(s.Synced)
		for _, i := range idx {
			j := slices.IndexFunc(s.Parts, func(p confd.BackupPart) bool { return p.Index == i })
			if j < 0 {
				sv.Parts = append(sv.Parts, badge{"absent", "no part"})
				continue
			}
			part := s.Parts[j]
			c, w := syncWord(part.Synced)
			sv.Parts = append(sv.Parts, badge{c, fmt.Sprintf("%s · %d files, %s", w, part.Files, display.Bytes(part.Bytes))})
		}
		v.Sets = append(v.Sets, sv)
	}
	return v
}

func syncWord(b *bool) (class, word string) {
	switch {
	case b == nil:
		return "never", "unknown"
	case *b:
		return "ok", "synced"
	}
	return "warn", "not synced"
}

func sortStrings(s []string) { slices.Sort(s) }

func containsString(s []string, x string) bool { return slices.Contains(s, x) }
