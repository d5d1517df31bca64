package ctl

import (
	"context"
	"fmt"
	"io"
	"strings"

	"backupsync/internal/display"
	"backupsync/internal/xmlrpc"
)

// Backup is one backup set of a database as backupsyncctl backups lists
// it: db_backup_list's row with each node's part at the destination.
type Backup struct {
	ID     int    `json:"id"`
	Level  int    `json:"level"`
	Volume string `json:"volume"`
	Time   string `json:"time"`  // RFC 3339 in UTC, "" when unknown
	Bytes  int64  `json:"bytes"` // -1 when the daemon did not say
	Usable bool   `json:"usable"`
	// Synced is db_backup_list's synced: true, false, or nil when unknown.
	Synced *bool `json:"synced"`
	// Nodes is each node's part at the destination: synced, partial,
	// missing or unknown; a node without a part of the set is absent.
	Nodes map[string]string `json:"nodes"`
}

// Backups is what db_backup_list says of a database: its sets, the
// cluster's nodes in order, and, when the listing is incomplete (a node
// did not list), why.
type Backups struct {
	Database   string   `json:"database"`
	Nodes      []string `json:"nodes"`
	Sets       []Backup `json:"sets"`
	Incomplete string   `json:"incomplete,omitempty"`
}

// Backups lists the backup sets of database db with their synced state per
// node, through ConfD's db_backup_list on the cluster's endpoint (which
// backupsyncd answers beside the plugin surface) with per_node; a daemon
// that does not know per_node is asked without it (the nodes' states are
// then unknown). A job that failed as a whole is a *JobError.
func (c *Cluster) Backups(ctx context.Context, db string) (*Backups, error) {
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	m, err := c.job(ctx, "db_backup_list", map[string]any{"db_name": db, "per_node": true})
	if err == nil && m["result_code"] == int64(2) { // INVALID_PARAMETER: an earlier release
		m, err = c.job(ctx, "db_backup_list", map[string]any{"db_name": db})
	}
	if err != nil {
		return nil, err
	}
	out := &Backups{Database: db, Nodes: nodes, Sets: []Backup{}}
	rows, listed := m["result_output"].([]any)
	if code := m["result_code"]; code != int64(0) {
		if !listed {
			return nil, jobError("db_backup_list", m)
		}
		out.Incomplete, _ = m["result_desc"].(string)
	}
	for _, r := range rows {
		row, ok := r.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("db_backup_list: a row is %s, want a dict", xmlrpc.TypeName(r))
		}
		b := Backup{Bytes: -1, Nodes: map[string]string{}}
		id, _ := row["bid"].(int64)
		level, _ := row["level"].(int64)
		b.ID, b.Level = int(id), int(level)
		b.Volume, _ = row["volume"].(string)
		b.Time, _ = row["time"].(string)
		if n, ok := row["bytes"].(int64); ok {
			b.Bytes = n
		}
		b.Usable, _ = row["usable"].(bool)
		if s, ok := row["synced"].(bool); ok {
			b.Synced = &s
		}
		if sys, _ := row["system"].(string); sys != "" {
			out.Database = sys
		}
		if ns, ok := row["nodes"].(map[string]any); ok {
			for n, v := range ns {
				s, _ := v.(string)
				b.Nodes[n] = s
			}
		}
		out.Sets = append(out.Sets, b)
	}
	return out, nil
}

// WriteBackupTable prints the sets as a table: ID, LEVEL, TIME, SIZE,
// USABLE, then one column per node with its part's state at the
// destination ("-" where the node has no part of the set, "unknown" where
// the daemon did not say).
func WriteBackupTable(w io.Writer, b *Backups) error {
	head := append([]string{"ID", "LEVEL", "TIME", "SIZE", "USABLE"}, b.Nodes...)
	table := [][]string{head}
	for _, s := range b.Sets {
		size := "?"
		if s.Bytes >= 0 {
			size = display.Bytes(s.Bytes)
		}
		row := []string{fmt.Sprint(s.ID), fmt.Sprint(s.Level), cmpOr(s.Time, "-"), size, yesNo(s.Usable)}
		for _, n := range b.Nodes {
			state, ok := s.Nodes[n]
			switch {
			case ok:
			case len(s.Nodes) == 0:
				state = "unknown"
			default:
				state = "-"
			}
			row = append(row, clean(state))
		}
		table = append(table, row)
	}
	widths := make([]int, len(head))
	for _, r := range table {
		for i, cell := range r {
			widths[i] = max(widths[i], len([]rune(cell)))
		}
	}
	var sb strings.Builder
	for _, r := range table {
		var line strings.Builder
		for i, cell := range r {
			if i > 0 {
				line.WriteString("  ")
			}
			if i == 0 || i == 3 { // numbers and sizes right-aligned
				fmt.Fprintf(&line, "%*s", widths[i], cell)
			} else {
				fmt.Fprintf(&line, "%-*s", widths[i], cell)
			}
		}
		sb.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	if len(b.Sets) == 0 {
		sb.WriteString("(no backup set of " + clean(b.Database) + " on the archive volume)\n")
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
