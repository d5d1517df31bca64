package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"backupsync/internal/config"
	"backupsync/internal/display"
)

// checkWidth is the width check-config's listing fits.
const checkWidth = 100

// checkEntry is one connection (or removal) check-config lists.
type checkEntry struct {
	name, role, database, schedule, next string
	details                              [][2]string // label, text
}

// checkTable renders check-config's listing in at most checkWidth columns:
// one row per connection with its name, role, database, schedule and next
// run, and under it its details (the archive URLs, which remote node each
// database node's part goes to, where it came from), wrapped.
type checkTable struct {
	entries []checkEntry
}

// addConnection lists c. names are the cluster's nodes in order where the
// settings name them (nil otherwise).
func (t *checkTable) addConnection(c config.Connection, file string, defaultPort int, names []string, now time.Time) {
	e := checkEntry{name: c.Name, role: string(c.Role), database: dash(c.Database), schedule: dash(c.Schedule), next: "-"}
	if next := c.Next(now); !next.IsZero() {
		e.next = display.Time(next)
	}
	if u := urlWithPort(c.LocalURL, defaultPort); u != "" {
		e.details = append(e.details, [2]string{"local URL", u})
	}
	if u := urlWithPort(c.RemoteURL, defaultPort); u != "" {
		e.details = append(e.details, [2]string{"remote URL", u})
	}
	if c.Role.Copies() && len(c.RemoteNodes) > 0 {
		label := "remote nodes"
		for _, l := range c.NodeMapping(names, len(names)) {
			e.details = append(e.details, [2]string{label, l})
			label = ""
		}
		if len(names) == 0 {
			e.details = append(e.details, [2]string{"", fmt.Sprintf("(a cluster with more nodes wraps around: node_i uses entry i mod %d; "+
				"the settings' cluster block names the nodes)", len(c.RemoteNodes))})
		}
	}
	origin := c.Origin()
	if c.Source != "" {
		origin += " in " + file
	}
	e.details = append(e.details, [2]string{"origin", origin})
	t.entries = append(t.entries, e)
}

// addRemoval lists a connection an upload removes.
func (t *checkTable) addRemoval(name, file string) {
	t.entries = append(t.entries, checkEntry{name: name, role: "remove", database: "-", schedule: "-", next: "-",
		details: [][2]string{{"origin", "removes it when uploaded (" + file + ")"}}})
}

// write prints the listing.
func (t *checkTable) write(w io.Writer) error {
	head := checkEntry{name: "CONNECTION", role: "ROLE", database: "DATABASE", schedule: "SCHEDULE", next: "NEXT RUN"}
	widths := [4]int{}
	for _, e := range append([]checkEntry{head}, t.entries...) {
		for i, s := range []string{e.name, e.role, e.database, e.schedule} {
			widths[i] = max(widths[i], len([]rune(s)))
		}
	}
	labelW := 0
	for _, e := range t.entries {
		for _, d := range e.details {
			labelW = max(labelW, len(d[0]))
		}
	}
	var b strings.Builder
	row := func(e checkEntry) {
		line := fmt.Sprintf("%-*s  %-*s  %-*s  %-*s  %s", widths[0], e.name, widths[1], e.role, widths[2], e.database, widths[3], e.schedule, e.next)
		b.WriteString(wrapLine(strings.TrimRight(line, " "), checkWidth, "    ") + "\n")
	}
	row(head)
	for _, e := range t.entries {
		row(e)
		indent := strings.Repeat(" ", 4+labelW+2)
		for _, d := range e.details {
			b.WriteString(wrapLine(fmt.Sprintf("    %-*s  %s", labelW, d[0], d[1]), checkWidth, indent) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// wrapLine breaks line at spaces so that no line is wider than width
// columns; continuation lines start with indent. A word longer than a line
// is cut (a long URL keeps its characters, over several lines).
func wrapLine(line string, width int, indent string) string {
	if len([]rune(line)) <= width {
		return line
	}
	lead := len(line) - len(strings.TrimLeft(line, " "))
	var b strings.Builder
	b.WriteString(line[:lead])
	col := lead
	for i, word := range strings.Split(line[lead:], " ") {
		r := []rune(word)
		if i > 0 {
			if col+1+len(r) > width && col > len(indent) {
				b.WriteString("\n" + indent)
				col = len(indent)
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		for col+len(r) > width && width-col > 0 {
			n := width - col
			b.WriteString(string(r[:n]) + "\n" + indent)
			r, col = r[n:], len(indent)
		}
		b.WriteString(string(r))
		col += len(r)
	}
	lines := strings.Split(b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}
