package confd

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"backupsync/internal/archive"
	"backupsync/internal/config"
	"backupsync/internal/control"
	"backupsync/internal/display"
)

// stampName is the entry Exasol writes into a backup's node directory,
// named after the backup's start: backup_YYYYMMDDHHMM.
var stampName = regexp.MustCompile(`^backup_([0-9]{12})$`)

// part is one node's part (node_<index>) of one backup set on one volume.
type part struct {
	volume    string
	id, level int
	files     int
	bytes     int64
	entry     string // "backup_202007071405", or ""
	latest    int64  // newest file's modification time, Unix seconds
	sync      int    // syncYes, syncNo, syncUnknown (or syncUnchecked)
	state     int    // stateSynced … stateMissing: what the destination holds, per_node's detail of sync
	sizes     map[string]int64
}

func (p *part) toMap() map[string]any {
	m := map[string]any{"volume": p.volume, "id": p.id, "level": p.level, "files": p.files,
		"bytes": p.bytes, "entry": p.entry, "latest": p.latest}
	switch p.sync {
	case syncYes:
		m["synced"] = true
	case syncNo:
		m["synced"] = false
	}
	if p.state != stateUnchecked {
		m["state"] = stateNames[p.state]
	}
	return m
}

func partFromMap(m map[string]any) part {
	p := part{}
	p.volume, _ = m["volume"].(string)
	p.entry, _ = m["entry"].(string)
	id, _ := m["id"].(int64)
	level, _ := m["level"].(int64)
	files, _ := m["files"].(int64)
	p.id, p.level, p.files = int(id), int(level), int(files)
	p.bytes, _ = m["bytes"].(int64)
	p.latest, _ = m["latest"].(int64)
	p.sync = syncUnknown
	if b, ok := m["synced"].(bool); ok {
		p.sync = map[bool]int{true: syncYes, false: syncNo}[b]
	}
	// A daemon of an earlier release sends synced only.
	p.state = map[int]int{syncYes: stateSynced, syncNo: stateMissing, syncUnknown: stateUnknown}[p.sync]
	if s, ok := m["state"].(string); ok {
		for i, name := range stateNames {
			if name == s && i != stateUnchecked {
				p.state = i
			}
		}
	}
	return p
}

// parts groups a listing of node_<index> into sets.
func parts(volume, db string, index int, l archive.Listing) map[int]*part {
	sets := map[int]*part{}
	nodeDir := "node_" + strconv.Itoa(index)
	get := func(segs []string) *part {
		if len(segs) < 4 || segs[0] != db || segs[3] != nodeDir {
			return nil
		}
		id, err1 := strconv.Atoi(strings.TrimPrefix(segs[1], "id_"))
		level, err2 := strconv.Atoi(strings.TrimPrefix(segs[2], "level_"))
		if err1 != nil || err2 != nil || !strings.HasPrefix(segs[1], "id_") || !strings.HasPrefix(segs[2], "level_") {
			return nil
		}
		p := sets[id]
		if p == nil {
			p = &part{volume: volume, id: id, level: level, sizes: map[string]int64{}}
			sets[id] = p
		}
		if len(segs) > 4 && stampName.MatchString(segs[4]) && (p.entry == "" || segs[4] < p.entry) {
			p.entry = segs[4]
		}
		return p
	}
	for _, d := range l.Dirs {
		get(strings.Split(d, "/"))
	}
	for _, f := range l.Files {
		p := get(strings.SplitN(f.Path, "/", 5))
		if p == nil {
			continue
		}
		if _, temp := archive.IsTemp(f.Path); temp {
			continue // ours, left by a copy into this volume: not backup data
		}
		p.files++
		p.bytes += f.Size
		p.sizes[f.Path] = f.Size
		if t := f.ModTime.Unix(); t > p.latest {
			p.latest = t
		}
	}
	return sets
}

// localBackups lists this node's parts of database db on the local archive
// volume of every connection that copies db, and checks each part against
// those connections' destinations.
func (s *Service) localBackups(ctx context.Context, db string) map[string]any {
	st := s.Surface.Local.Settings
	answer := map[string]any{"node": s.Surface.Self, "index": st.Node.Index, "sets": []any{}}
	conns, err := s.connections()
	if err != nil {
		answer["error"] = fmt.Sprintf("the connections file does not load: %v", err)
		return answer
	}
	// The local volumes, each with the connections that copy db from it.
	type local struct {
		ep    archive.Endpoint
		url   config.ArchiveURL
		conns []config.Connection
	}
	var locals []*local
	for _, c := range copying(conns) {
		if !strings.EqualFold(c.Database, db) {
			continue
		}
		ep := endpoint(c.LocalURL, st.Node.IP, st.FTPDefaultPort)
		i := slices.IndexFunc(locals, func(l *local) bool { return l.ep.String() == ep.String() })
		if i < 0 {
			locals = append(locals, &local{ep: ep, url: c.LocalURL})
			i = len(locals) - 1
		}
		locals[i].conns = append(locals[i].conns, c)
	}
	if len(locals) == 0 {
		answer["unconfigured"] = true
		answer["error"] = fmt.Sprintf("no connection on %s copies database %s", s.Surface.Self, db)
		return answer
	}
	var sets []any
	for _, l := range locals {
		database := l.conns[0].Database
		answer["database"] = database
		// The destinations are listed while the local volume is.
		dsts := make([]chan destListing, len(l.conns))
		for i, c := range l.conns {
			dsts[i] = make(chan destListing, 1)
			go func() { dsts[i] <- s.listDestination(ctx, c) }()
		}
		listing, err := listLocal(ctx, l.ep, database, st.Node.Index, s.ProbeTimeout)
		if err != nil {
			answer["error"] = fmt.Sprintf("local archive volume: %v", err)
			return answer
		}
		found := parts(l.url.Volume(), database, st.Node.Index, listing)
		for i, c := range l.conns {
			s.checkSynced(c, found, <-dsts[i])
		}
		for _, id := range sortedKeys(found) {
			sets = append(sets, found[id].toMap())
		}
	}
	if sets != nil {
		answer["sets"] = sets
	}
	return answer
}

func listLocal(ctx context.Context, ep archive.Endpoint, database string, index int, timeout time.Duration) (archive.Listing, error) {
	// Read-only: listing a backed-up volume must not write into it.
	v, err := archive.Open(ctx, ep, archive.Options{ConnectTimeout: timeout, ReadOnly: true})
	if err != nil {
		return archive.Listing{}, err
	}
	defer v.Close()
	return v.ListNode(ctx, database, index)
}

// destListing is a listing of a connection's destination, or why there is
// none.
type destListing struct {
	l   archive.Listing
	err error
}

// listDestination lists this node's part of c's destination.
func (s *Service) listDestination(ctx context.Context, c config.Connection) destListing {
	r, err := s.openRemote(ctx, c, true)
	if err != nil {
		return destListing{err: err}
	}
	defer r.Close()
	l, err := r.ListNode(ctx, c.Database, s.Surface.Local.Settings.Node.Index)
	return destListing{l, err}
}

// checkSynced folds into every part whether connection c's destination
// (dst) holds each of its files under its final name with the same size:
// false wins over unknown (the destination could not be listed), unknown
// over true, so that a part is synced only when every connection copying
// it holds it.
func (s *Service) checkSynced(c config.Connection, found map[int]*part, dst destListing) {
	if dst.err != nil {
		s.log().Warn("db_backup_list: destination not listed: synced unknown", "connection", c.Name, "error", dst.err)
		for _, p := range found {
			p.fold(syncUnknown)
			p.state = max(p.state, stateUnknown)
		}
		return
	}
	have := map[string]int64{}
	for _, f := range dst.l.Files {
		if _, temp := archive.IsTemp(f.Path); !temp {
			have[f.Path] = f.Size
		}
	}
	for _, p := range found {
		held := 0
		for path, size := range p.sizes {
			if got, present := have[path]; present && got == size {
				held++
			}
		}
		state, detail := syncYes, stateSynced
		switch {
		case p.files == 0 || held == 0:
			state, detail = syncNo, stateMissing
		case held < len(p.sizes):
			state, detail = syncNo, statePartial
		}
		p.fold(state)
		p.state = max(p.state, detail)
	}
}

// What a connection's destination holds of a part, ordered so that folding
// over the connections copying it takes the maximum (the worst).
const (
	stateUnchecked = iota
	stateSynced    // every file, with its size
	stateUnknown   // the destination could not be listed
	statePartial   // some of the files
	stateMissing   // none of them
)

// stateNames are the states as per_node shows them.
var stateNames = []string{"", "synced", "unknown", "partial", "missing"}

// Sync states of a part, ordered so that folding takes the maximum.
const (
	syncUnchecked = iota
	syncYes
	syncUnknown
	syncNo
)

func (p *part) fold(state int) { p.sync = max(p.sync, state) }

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// set is one backup set of the cluster: its parts on the nodes.
type set struct {
	volume, db string
	id, level  int
	parts      map[int]part // by node index
	dep        *set
	depMissing bool
	usable     bool
	last       bool
}

func (s *Service) dbBackupList(ctx context.Context, args map[string]any) outcome {
	db, ok := args["db_name"].(string)
	if !ok || strings.TrimSpace(db) == "" {
		return failed(CodeInvalidParam, "parameter 'db_name' must name a database, e.g. 'DB1'")
	}
	db = strings.TrimSpace(db)
	g := s.gatherBackups(ctx, db)
	if g.unconfigured == len(s.Surface.Nodes) {
		return failed(CodeFailed, "no connection copies database %s on this cluster: backupsync lists backups on the LOCAL_URL of a connection whose DATABASE_NAME is %s", db, db)
	}
	out := backupRows(g.sets, g.database, len(g.problems) == 0)
	if perNode, _ := args["per_node"].(bool); perNode {
		g.addNodeStates(out)
	}
	o := outcome{output: out}
	if len(g.problems) > 0 {
		o.code = CodeFailed
		o.desc = "listing incomplete, sets not seen on every node are marked unusable: " + strings.Join(g.problems, "; ")
	}
	return o
}

// gathered is every node's parts of a database's sets.
type gathered struct {
	sets         map[string]*set // by volume and backup id
	database     string          // as the connections spell it
	names        map[int]string  // node names by node index
	problems     []string        // nodes that did not list, and why
	unconfigured int             // nodes with no connection copying the database
}

// gatherBackups asks every node for its parts of database db's sets
// (listed on its local archive volume and checked against the destinations).
func (s *Service) gatherBackups(ctx context.Context, db string) gathered {
	type ans struct {
		m   map[string]any
		err error
	}
	nodes := s.Surface.Nodes
	answers := fanOut(ctx, nodes, func(ctx context.Context, p control.Peer) ans {
		m, err := s.askNode(ctx, p, "backups", map[string]any{"db_name": db}, s.ListTimeout)
		return ans{m, err}
	})
	g := gathered{sets: map[string]*set{}, database: db, names: map[int]string{}}
	for i, a := range answers {
		name := nodes[i].Name
		if a.err != nil {
			g.problems = append(g.problems, control.Unreachable(nodes[i], a.err))
			continue
		}
		if e, _ := a.m["error"].(string); e != "" {
			if u, _ := a.m["unconfigured"].(bool); u {
				g.unconfigured++
			}
			g.problems = append(g.problems, name+": "+e)
			continue
		}
		if d, _ := a.m["database"].(string); d != "" {
			g.database = d
		}
		index, _ := a.m["index"].(int64)
		g.names[int(index)] = name
		list, _ := a.m["sets"].([]any)
		for _, x := range list {
			pm, _ := x.(map[string]any)
			p := partFromMap(pm)
			key := p.volume + "\x00" + strconv.Itoa(p.id)
			st := g.sets[key]
			if st == nil {
				st = &set{volume: p.volume, id: p.id, level: p.level, parts: map[int]part{}}
				g.sets[key] = st
			}
			st.parts[int(index)] = p
		}
	}
	return g
}

// addNodeStates adds to each of db_backup_list's rows, for its per_node:
// "nodes", for every node that has a part of the set, what the
// destinations hold of it (synced, partial, missing or unknown); "bytes",
// the set's size; and "time", its ts (this daemon's local time) in RFC 3339
// in UTC, or "" when unknown.
func (g gathered) addNodeStates(rows []any) {
	for _, r := range rows {
		row := r.(map[string]any)
		volume, _ := row["volume"].(string)
		id, _ := row["bid"].(int)
		nodes := map[string]any{}
		var bytes int64
		if st := g.sets[volume+"\x00"+strconv.Itoa(id)]; st != nil {
			for index, p := range st.parts {
				nodes[cmp.Or(g.names[index], "node_"+strconv.Itoa(index))] = cmp.Or(stateNames[p.state], "unknown")
				bytes += p.bytes
			}
		}
		row["nodes"], row["bytes"], row["time"] = nodes, bytes, ""
		if ts, _ := row["ts"].(string); ts != "" {
			if t, err := time.ParseInLocation("200601021504", ts, time.Local); err == nil {
				row["time"] = display.Time(t)
			}
		}
	}
}

// backupRows turns the cluster's sets into db_backup_list's rows, sorted
// by volume and backup id. complete says every node answered.
func backupRows(sets map[string]*set, database string, complete bool) []any {
	all := make([]*set, 0, len(sets))
	for _, st := range sets {
		st.db = database
		all = append(all, st)
	}
	slices.SortFunc(all, func(a, b *set) int {
		return cmp.Or(cmp.Compare(a.volume, b.volume), cmp.Compare(a.id, b.id))
	})
	// The database's node parts: every index any set of its volume has.
	want := map[string]map[int]bool{}
	for _, st := range all {
		if want[st.volume] == nil {
			want[st.volume] = map[int]bool{}
		}
		for i := range st.parts {
			want[st.volume][i] = true
		}
	}
	// Dependencies: level L builds on the newest level L-1 before it.
	for i, st := range all {
		if st.level == 0 {
			continue
		}
		for j := i - 1; j >= 0; j-- {
			if o := all[j]; o.volume == st.volume && o.level == st.level-1 {
				st.dep = o
				break
			}
		}
		st.depMissing = st.dep == nil
	}
	for _, st := range all { // in id order: a dependency is decided first
		st.usable = complete && !st.depMissing && (st.dep == nil || st.dep.usable)
		for i := range want[st.volume] {
			if p, ok := st.parts[i]; !ok || p.files == 0 {
				st.usable = false
			}
		}
		st.last = true
	}
	for _, st := range all {
		if st.dep != nil {
			st.dep.last = false
		}
	}
	rows := make([]any, 0, len(all))
	for _, st := range all {
		rows = append(rows, st.row())
	}
	return rows
}

func (st *set) key() string { return fmt.Sprintf("%s/id_%d/level_%d", st.db, st.id, st.level) }

func (st *set) row() map[string]any {
	first := -1
	var bytes, latest int64
	entry := ""
	for i, p := range st.parts {
		bytes += p.bytes
		latest = max(latest, p.latest)
		if first < 0 || i < first {
			first = i
		}
	}
	if p, ok := st.parts[first]; ok {
		entry = p.entry
	}
	path := fmt.Sprintf("%s/node_%d", st.key(), first)
	ts := ""
	if m := stampName.FindStringSubmatch(entry); m != nil {
		path += "/" + entry
		ts = m[1]
	} else if latest > 0 {
		ts = time.Unix(latest, 0).In(time.Local).Format("200601021504")
	}
	timestamp := ""
	if t, err := time.Parse("200601021504", ts); err == nil {
		timestamp = t.Format("2006-01-02 15:04")
	}
	deps := "-"
	if st.dep != nil {
		deps = st.dep.key()
	} else if st.depMissing {
		deps = fmt.Sprintf("missing: no level_%d backup before it", st.level-1)
	}
	var synced any // None: unknown
	known, all := true, true
	for _, p := range st.parts {
		switch p.sync {
		case syncYes:
		case syncNo:
			all = false
		default:
			known = false
		}
	}
	switch {
	case !all:
		synced = false
	case known && len(st.parts) > 0:
		synced = true
	}
	return map[string]any{
		"bid":              st.id,
		"comment":          "",
		"dependencies":     deps,
		"expire":           "",
		"expire_alterable": st.volume + " " + st.key(),
		"expired":          false,
		"id":               st.volume + " " + path + " " + st.db,
		"last_item":        st.last,
		"level":            st.level,
		"path":             path,
		"system":           st.db,
		"timestamp":        timestamp,
		"ts":               ts,
		"usable":           st.usable,
		"usage":            fmt.Sprintf("%.3f GiB", float64(bytes)/(1<<30)),
		"volume":           st.volume,
		"synced":           synced,
	}
}
