package ctl

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
)

// NodeAddresses returns the cluster's nodes with their addresses (ConfD's
// node_list on the same endpoint: each daemon's private_ip, the host of its
// control URL), by node name. A cluster that does not answer node_list (not
// backupsyncd) returns an error.
func (c *Cluster) NodeAddresses(ctx context.Context) (map[string]string, error) {
	m, err := c.job(ctx, "node_list", nil)
	if err != nil {
		return nil, err
	}
	if m["result_code"] != int64(0) {
		return nil, jobError("node_list", m)
	}
	out, _ := m["result_output"].(map[string]any)
	addrs := map[string]string{}
	for _, v := range out {
		n, _ := v.(map[string]any)
		name, _ := n["name"].(string)
		ip, _ := n["private_ip"].(string)
		if name != "" {
			addrs[name] = ip
		}
	}
	return addrs, nil
}

// remoteNodesNote says which source node's part goes to which
// REMOTE_NODES entry (node i uses entry i mod len, so that fewer entries
// than source nodes is legal) and flags an entry that is neither the
// address nor the name of a destination node: its cycles would copy to a
// host that is not part of the destination cluster. A flag does not stop
// Pair (the destination may be reached on another network than its
// control plane); the last step's failure names it. The note starts with a
// new line; it is "" without REMOTE_NODES.
func (p *pairer) remoteNodesNote() string {
	c := p.client
	if len(c.RemoteNodes) == 0 {
		return ""
	}
	addrs, err := p.Dest.NodeAddresses(p.ctx)
	known := map[string]string{} // address or name, lower case → destination node
	for _, n := range p.dstNodes {
		known[strings.ToLower(n)] = n
	}
	for name, ip := range addrs {
		if ip != "" {
			known[strings.ToLower(ip)] = name
		}
	}
	lines := c.NodeMapping(p.srcNodes, len(p.srcNodes))
	for i := range lines {
		entry := c.RemoteNodes[c.RemoteNodeIndex(i)]
		if n, ok := known[strings.ToLower(hostOf(entry))]; ok && !strings.EqualFold(n, entry) {
			lines[i] = strings.Replace(lines[i], "→ "+entry, "→ "+entry+" ("+n+")", 1)
		}
	}
	for _, e := range c.RemoteNodes {
		if _, ok := known[strings.ToLower(hostOf(e))]; !ok && !slices.Contains(p.strangers, e) {
			p.strangers = append(p.strangers, e)
		}
	}
	note := fmt.Sprintf("\nREMOTE_NODES of %s, which source node goes to which remote node: %d source node(s), %d entr%s",
		p.conn, len(p.srcNodes), len(c.RemoteNodes), map[bool]string{true: "y", false: "ies"}[len(c.RemoteNodes) == 1])
	if len(c.RemoteNodes) < len(p.srcNodes) {
		note += " (fewer entries than nodes: nodes share an entry, the others are their failover)"
	}
	note += "\n  " + strings.Join(lines, "\n  ")
	switch {
	case err != nil && len(p.strangers) > 0:
		note += fmt.Sprintf("\nnot checked against the destination's addresses (node_list: %s); %s %s not a destination node name",
			Explain(err), strings.Join(p.strangers, ", "), isAre(len(p.strangers)))
		p.strangers = nil // names only: an address may well be right
	case len(p.strangers) > 0:
		dests := make([]string, 0, len(p.dstNodes))
		for _, n := range p.dstNodes {
			dests = append(dests, strings.TrimSpace(n+" "+addrs[n]))
		}
		note += fmt.Sprintf("\nwarning: REMOTE_NODES entry %s %s not a node of the destination cluster (%s): "+
			"the source's tunnels go there; correct REMOTE_NODES in %s unless that host is the destination on another network",
			strings.Join(p.strangers, ", "), isAre(len(p.strangers)), strings.Join(dests, ", "), p.SourceConfig.Name)
	}
	return note
}

// hostOf is the host of a REMOTE_NODES entry that may carry a port.
func hostOf(entry string) string {
	if h, _, err := net.SplitHostPort(entry); err == nil {
		return h
	}
	return strings.Trim(entry, "[]")
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
