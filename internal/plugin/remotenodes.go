package plugin

import (
	"fmt"

	"backupsync/internal/config"
)

// remoteNodeLines say, for each copying connection of an upload, which
// remote node this node's part goes to: REMOTE_NODES entry index mod the
// number of entries (fewer entries than nodes is legal: nodes share), the
// others being its failover. With the settings' cluster block it names the
// nodes that share the entry.
func remoteNodeLines(s *config.Settings, conns []config.Connection) []string {
	var lines []string
	idx := s.Node.Index
	var names []string
	if s.Cluster != nil {
		for _, n := range s.Cluster.Nodes {
			names = append(names, n.Name)
		}
	}
	for _, c := range conns {
		if !c.Role.Copies() || len(c.RemoteNodes) == 0 {
			continue
		}
		e := c.RemoteNodeIndex(idx)
		line := fmt.Sprintf("%s: this node (%s, node_%d) copies to %s, REMOTE_NODES entry %d of %d",
			c.Name, s.Node.Name, idx, c.RemoteNodes[e], e+1, len(c.RemoteNodes))
		if idx >= len(c.RemoteNodes) {
			line += fmt.Sprintf(" (fewer entries than nodes: node_%d shares it with node_%d)", idx, e)
		} else if len(names) > len(c.RemoteNodes) {
			var sharing []string
			for i := e + len(c.RemoteNodes); i < len(names); i += len(c.RemoteNodes) {
				sharing = append(sharing, fmt.Sprintf("node_%d %s", i, names[i]))
			}
			if len(sharing) > 0 {
				line += fmt.Sprintf(" (shared with %s: fewer entries than nodes)", joinAnd(sharing))
			}
		}
		lines = append(lines, line)
	}
	return lines
}

func joinAnd(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	out := items[0]
	for _, it := range items[1 : len(items)-1] {
		out += ", " + it
	}
	return out + " and " + items[len(items)-1]
}
