package config

import (
	"fmt"
	"strings"
)

// RemoteNodeIndex is the REMOTE_NODES entry that database node index
// talks to first: entry index mod the number of entries, so that
// REMOTE_NODES may have fewer entries than the cluster has nodes (nodes
// then share a remote node; the others are their failover). It is -1
// without entries.
func (c Connection) RemoteNodeIndex(index int) int {
	if len(c.RemoteNodes) == 0 {
		return -1
	}
	return max(index, 0) % len(c.RemoteNodes)
}

// NodeMapping says which remote node each database node's part goes to,
// one line per node: "node_0 n0011 → 10.60.102.11". names are the cluster's
// node names in database index order where known (the settings' cluster
// block; nil or short: the parts are named node_<i> only); count is how
// many nodes to list, at least len(names), and at least len(REMOTE_NODES)
// when no names are known. A node that shares its entry with an earlier one
// says so. A connection without REMOTE_NODES has no lines.
func (c Connection) NodeMapping(names []string, count int) []string {
	if len(c.RemoteNodes) == 0 {
		return nil
	}
	count = max(count, len(names))
	if count == 0 {
		count = len(c.RemoteNodes)
	}
	width := len(fmt.Sprintf("node_%d", count-1))
	nameW := 0
	for _, n := range names {
		nameW = max(nameW, len(n))
	}
	first := map[int]int{} // entry → the first node that uses it
	lines := make([]string, count)
	for i := range count {
		part := fmt.Sprintf("%-*s", width, fmt.Sprintf("node_%d", i))
		if nameW > 0 {
			name := ""
			if i < len(names) {
				name = names[i]
			}
			part += " " + fmt.Sprintf("%-*s", nameW, name)
		}
		e := c.RemoteNodeIndex(i)
		line := part + " → " + c.RemoteNodes[e]
		if j, shared := first[e]; shared {
			line += fmt.Sprintf(" (shared with node_%d: REMOTE_NODES has %d entries)", j, len(c.RemoteNodes))
		} else {
			first[e] = i
		}
		lines[i] = strings.TrimRight(line, " ")
	}
	return lines
}

// suggestRole is the SSH value closest to a misspelt one, or "".
func suggestRole(v string) string {
	best, bestDist := "", 3
	for _, r := range []Role{RoleClient, RoleServer, RoleDirect} {
		if d := editDistance(strings.ToLower(v), string(r)); d < bestDist {
			best, bestDist = string(r), d
		}
	}
	return best
}
