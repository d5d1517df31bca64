package confd

import (
	"context"
	"slices"
	"strconv"
	"strings"
)

// BackupSet is one backup set of a database as db_backup_list lists it,
// for Go callers (the status page), with each node's part of it.
type BackupSet struct {
	Volume       string
	ID, Level    int
	Path         string // db_backup_list's path
	Timestamp    string // "2026-12-06 01:20", the backup's start, or ""
	Dependencies string // "-", the set it builds on, or why it is missing
	Usage        string // "0.123 GiB"
	Usable       bool
	// Synced is db_backup_list's synced: every node's part is held by
	// every destination; nil when not known (a destination not listed).
	Synced *bool
	// Parts are the nodes' parts, in node index order.
	Parts []BackupPart
}

// BackupPart is one node's part (node_<index>) of a set.
type BackupPart struct {
	Node  string // the node that listed it
	Index int
	Files int
	Bytes int64
	// Synced: every destination copying the part holds each of its files
	// under its final name with its size; nil when not known.
	Synced *bool
}

// BackupSets is what db_backup_list knows of database db: its sets on the
// cluster's local archive volumes, sorted by volume and backup id, with
// each node's part and whether the destinations hold it (synced). problems
// names the nodes that did not list, and why (their parts are missing and
// the sets marked unusable, as in db_backup_list). unconfigured is true
// when no node has a connection copying db. ctx bounds the listings.
func (s *Service) BackupSets(ctx context.Context, db string) (sets []BackupSet, problems []string, unconfigured bool) {
	s.init()
	db = strings.TrimSpace(db)
	g := s.gatherBackups(ctx, db)
	if g.unconfigured == len(s.Surface.Nodes) {
		return nil, g.problems, true
	}
	rows := backupRows(g.sets, g.database, len(g.problems) == 0)
	for _, r := range rows {
		row := r.(map[string]any)
		out := BackupSet{}
		out.Volume, _ = row["volume"].(string)
		out.ID, _ = row["bid"].(int)
		out.Level, _ = row["level"].(int)
		out.Path, _ = row["path"].(string)
		out.Timestamp, _ = row["timestamp"].(string)
		out.Dependencies, _ = row["dependencies"].(string)
		out.Usage, _ = row["usage"].(string)
		out.Usable, _ = row["usable"].(bool)
		if b, ok := row["synced"].(bool); ok {
			out.Synced = &b
		}
		if st := g.sets[out.Volume+"\x00"+strconv.Itoa(out.ID)]; st != nil {
			for index, p := range st.parts {
				bp := BackupPart{Node: g.names[index], Index: index, Files: p.files, Bytes: p.bytes}
				switch p.sync {
				case syncYes:
					bp.Synced = ptr(true)
				case syncNo:
					bp.Synced = ptr(false)
				}
				out.Parts = append(out.Parts, bp)
			}
			slices.SortFunc(out.Parts, func(a, b BackupPart) int { return a.Index - b.Index })
		}
		sets = append(sets, out)
	}
	return sets, g.problems, false
}

func ptr[T any](v T) *T { return &v }
