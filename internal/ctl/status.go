package ctl

import (
	"fmt"
	"io"
	"strings"
)

// StatusAll is STATUS's argument that answers every connection's health on
// a node (plugin.AllConnections).
const StatusAll = "*"

// NodeHealth is one node's answer to STATUS *: the plugin's state and each
// connection's health line.
type NodeHealth struct {
	Node        string             `json:"node"`
	OK          bool               `json:"ok"`
	Plugin      string             `json:"plugin,omitempty"`
	Connections []ConnectionHealth `json:"connections,omitempty"`
	Error       string             `json:"error,omitempty"`
}

// ConnectionHealth is one connection's health on one node.
type ConnectionHealth struct {
	Name string `json:"connection"`
	// Health is the first word(s) of Line: ok, failing, never ran,
	// running, waiting, activated, not activated.
	Health string `json:"health"`
	Line   string `json:"line"`
}

// ParseHealth reads the rows of STATUS * into one NodeHealth per node.
func ParseHealth(rows []Row) []NodeHealth {
	out := make([]NodeHealth, len(rows))
	for i, r := range rows {
		n := NodeHealth{Node: r.Node, OK: r.OK()}
		if r.Err != nil {
			n.Error = Explain(r.Err)
			out[i] = n
			continue
		}
		lines := strings.Split(strings.TrimRight(r.Output, "\n"), "\n")
		if !pluginStates[strings.TrimSpace(lines[0])] {
			// Not an answer of STATUS *: the node could not be asked.
			n.Error = strings.TrimSpace(r.Output)
			out[i] = n
			continue
		}
		n.Plugin = strings.TrimSpace(lines[0])
		for _, l := range lines[1:] {
			name, line, ok := strings.Cut(l, ": ")
			if !ok {
				// Not a connection line: an error the node explained.
				n.Error = strings.TrimSpace(strings.Join(append([]string{n.Error}, l), " "))
				continue
			}
			n.Connections = append(n.Connections, ConnectionHealth{Name: name, Health: healthWord(line), Line: line})
		}
		out[i] = n
	}
	return out
}

// pluginStates are the three words of STATUS ”.
var pluginStates = map[string]bool{"not installed": true, "activated": true, "not activated": true}

// healthWord is the verdict at the head of a health line.
func healthWord(line string) string {
	for _, w := range []string{"never ran", "not activated", "ok", "failing", "running", "waiting", "activated"} {
		if line == w || strings.HasPrefix(line, w+",") || strings.HasPrefix(line, w+" ") || strings.HasPrefix(line, w+":") {
			return w
		}
	}
	return line
}

// Failing lists "CONN on NODE" for every failing connection, and every node
// that did not answer.
func Failing(hs []NodeHealth) []string {
	var out []string
	for _, n := range hs {
		if n.Error != "" && len(n.Connections) == 0 {
			out = append(out, n.Node+" (no answer)")
		}
		for _, c := range n.Connections {
			if c.Health == "failing" || strings.Contains(c.Line, "; failing since") {
				out = append(out, c.Name+" on "+n.Node)
			}
		}
	}
	return out
}

// WriteHealthTable prints the health of every connection on every node,
// health first:
//
//	NODE   PLUGIN     CONNECTION   HEALTH
//	n0011  activated  Connection1  failing since 2026-12-06T01:20:00Z (3 cycles), lag 6m12s: …; next: …
func WriteHealthTable(w io.Writer, hs []NodeHealth) error {
	nodeW, plugW, connW := len("NODE"), len("PLUGIN"), len("CONNECTION")
	for _, n := range hs {
		nodeW = max(nodeW, len(n.Node))
		plugW = max(plugW, len(n.Plugin))
		for _, c := range n.Connections {
			connW = max(connW, len(c.Name))
		}
	}
	var b strings.Builder
	row := func(node, plugin, conn, text string) {
		line := fmt.Sprintf("%-*s  %-*s  %-*s  %s", nodeW, node, plugW, plugin, connW, conn, clean(text))
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	row("NODE", "PLUGIN", "CONNECTION", "HEALTH")
	for _, n := range hs {
		switch {
		case n.Error != "" && n.Plugin == "":
			row(n.Node, "-", "-", "error: "+n.Error)
		case len(n.Connections) == 0:
			text := "no connection configured"
			if n.Error != "" {
				text = "error: " + n.Error
			}
			row(n.Node, n.Plugin, "-", text)
		}
		for _, c := range n.Connections {
			row(n.Node, n.Plugin, c.Name, c.Line)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
