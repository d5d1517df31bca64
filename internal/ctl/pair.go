package ctl

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"

	"backupsync/internal/config"
)

// File is a local file: its name (for messages) and content.
type File struct {
	Name string
	Data []byte
}

// PairSpec is what Pair needs: both clusters, the connection's name and
// the two configuration files (the client config for the source, the server
// config for the destination).
type PairSpec struct {
	Source, Dest *Cluster
	Connection   string
	SourceConfig File
	DestConfig   File
	// Progress receives each step as it is done; nil prints nothing.
	Progress io.Writer
}

// PairStep is one step Pair did, as --json prints it.
type PairStep struct {
	Step  int       `json:"step"` // the installation guide's step; 0 for checks
	Title string    `json:"title"`
	Side  string    `json:"side,omitempty"` // "source" or "destination"
	Verb  string    `json:"verb,omitempty"`
	Rows  []JSONRow `json:"rows,omitempty"`
	Note  string    `json:"note,omitempty"`
}

// PairError is the step Pair stopped at and what to fix.
type PairError struct {
	Step PairStep
	// Reason says what failed, Fix what to do about it.
	Reason, Fix string
}

func (e *PairError) Error() string {
	where := "check: " + e.Step.Title
	if e.Step.Step > 0 {
		where = fmt.Sprintf("step %d (%s)", e.Step.Step, e.Step.Title)
	}
	return fmt.Sprintf("pair stopped at %s: %s\n%s", where, e.Reason, e.Fix)
}

const (
	sideSource = "source"
	sideDest   = "destination"
	rerunFix   = "Fix that and run the same pair command again: the steps already done repeat harmlessly."
)

// pairer carries one Pair run.
type pairer struct {
	PairSpec
	ctx         context.Context
	steps       []PairStep
	srcNodes    []string
	dstNodes    []string
	conn        string // the connection's name as the configs spell it
	client      config.Connection
	strangers   []string // REMOTE_NODES entries that are not nodes of the destination
	wasActive   bool
	clientLines []string
	hostLines   []string
}

// Pair pairs the source and destination clusters for a connection as the
// installation guide's steps 4 to 10 do: INSTALL on both, UPLOAD_CONFIG
// (client config to the source, server config to the destination), SSHKEY on
// the source (its client keys), UPLOAD_KEY of those to the destination,
// SSHKEY on the destination (authorizes them, returns its host keys),
// UPLOAD_KEY of the host keys to the source, ACTIVATE on the destination,
// then on the source; then it checks STATUS of the connection on both, and
// last runs the pre-flight test (TEST) on every node of the source, whose
// result it reports: a pairing whose test fails is a *PairError.
//
// Before changing anything it checks both files locally and that every node
// of both clusters answers. Every verb is idempotent, so Pair is: a second
// run sends the same files and keys again and leaves the pairing as it was.
// It stops at the first step that fails on any node with a *PairError that
// says what to fix. It returns the steps it did.
func Pair(ctx context.Context, spec PairSpec) ([]PairStep, error) {
	p := &pairer{PairSpec: spec, ctx: ctx}
	err := p.run()
	return p.steps, err
}

func (p *pairer) run() error {
	if err := p.checkConfigs(); err != nil {
		return err
	}
	if err := p.reach(); err != nil {
		return err
	}
	for _, s := range []struct {
		step        int
		title, side string
		verb, arg   string
	}{
		{4, "install the plugin on the source", sideSource, "INSTALL", ""},
		{4, "install the plugin on the destination", sideDest, "INSTALL", ""},
		{7, "upload the client config " + p.SourceConfig.Name + " to the source", sideSource, "UPLOAD_CONFIG", b64(p.SourceConfig.Data)},
		{7, "upload the server config " + p.DestConfig.Name + " to the destination", sideDest, "UPLOAD_CONFIG", b64(p.DestConfig.Data)},
	} {
		if _, err := p.verb(s.step, s.title, s.side, s.verb, s.arg, rerunFix); err != nil {
			return err
		}
	}

	// Step 8: the source's client keys, one per node.
	rows, err := p.verb(8, "create the client keys on the source", sideSource, "SSHKEY", p.conn, rerunFix)
	if err != nil {
		return err
	}
	if p.clientLines, err = p.keyLines(8, "create the client keys on the source", rows, "backupsync"); err != nil {
		return err
	}
	// Step 9: the destination takes them, authorizes them and answers its
	// host keys.
	if _, err := p.verb(9, "upload the client keys to the destination", sideDest, "UPLOAD_KEY", b64(joinLines(p.clientLines)), rerunFix); err != nil {
		return err
	}
	rows, err = p.verb(9, "authorize the client keys on the destination (its host keys)", sideDest, "SSHKEY", p.conn, rerunFix)
	if err != nil {
		return err
	}
	if p.hostLines, err = p.keyLines(9, "authorize the client keys on the destination (its host keys)", rows, "backupsync-host"); err != nil {
		return err
	}
	// Step 10: the source pins the host keys; the destination accepts
	// tunnels before the source starts opening them.
	if _, err := p.verb(10, "upload the destination's host keys to the source", sideSource, "UPLOAD_KEY", b64(joinLines(p.hostLines)), rerunFix); err != nil {
		return err
	}
	if _, err := p.verb(10, "activate "+p.conn+" on the destination", sideDest, "ACTIVATE", p.conn, rerunFix); err != nil {
		return err
	}
	if _, err := p.verb(10, "activate "+p.conn+" on the source", sideSource, "ACTIVATE", p.conn, rerunFix); err != nil {
		return err
	}
	return p.verify()
}

// checkConfigs parses both files as the daemons will and checks that each
// holds the connection with the right role, so that a swapped or misspelt
// file stops Pair before it changes anything.
func (p *pairer) checkConfigs() error {
	want := p.Connection
	if want == "" {
		return &PairError{Step: PairStep{Title: "the connection name"}, Reason: "no connection name",
			Fix: "Pass --connection with the name of the block both configs hold, e.g. Connection1."}
	}
	for _, f := range []struct {
		file File
		side string
		role config.Role
		what string
	}{
		{p.SourceConfig, sideSource, config.RoleClient, "client"},
		{p.DestConfig, sideDest, config.RoleServer, "server"},
	} {
		step := PairStep{Title: "the " + f.what + " config " + f.file.Name, Side: f.side}
		conns, err := config.ParseConnections(f.file.Name, f.file.Data)
		if err != nil {
			return &PairError{Step: step, Reason: "it does not parse:\n" + err.Error(),
				Fix: "Correct the file; nothing was changed on either cluster."}
		}
		var c *config.Connection
		var names []string
		for i := range conns {
			names = append(names, conns[i].Name)
			if strings.EqualFold(conns[i].Name, want) {
				c = &conns[i]
			}
		}
		if c == nil {
			return &PairError{Step: step, Reason: fmt.Sprintf("it has no connection %q (it has %s)", want, orNone(names)),
				Fix: "The connection name must be the same in both configs and in --connection; nothing was changed on either cluster."}
		}
		if c.Role != f.role {
			return &PairError{Step: step,
				Reason: fmt.Sprintf("its connection %s has SSH = %s, but the %s cluster needs SSH = %s", c.Name, c.Role, f.side, f.role),
				Fix: "Pass the client config (SSH = client) as --source-config and the server config (SSH = server) as --dest-config; " +
					"nothing was changed on either cluster."}
		}
		if p.conn != "" && p.conn != c.Name {
			return &PairError{Step: step, Reason: fmt.Sprintf("the configs spell the connection differently (%s and %s)", p.conn, c.Name),
				Fix: "Spell the name the same in both files; nothing was changed on either cluster."}
		}
		p.conn = c.Name
		note := fmt.Sprintf("%s: SSH = %s", c.Name, c.Role)
		if c.Role == config.RoleClient {
			p.client = *c
			note += fmt.Sprintf(", database %s, schedule %s, remote nodes %s", c.Database, c.Schedule, strings.Join(c.RemoteNodes, "; "))
		}
		step.Note = note
		p.record(step)
	}
	return nil
}

// reach finds both clusters' plugin and nodes and asks every node for its
// STATUS: a node that does not answer stops Pair before anything changes.
func (p *pairer) reach() error {
	if p.Source.URL() == p.Dest.URL() {
		return &PairError{Step: PairStep{Title: "reach the clusters"}, Reason: "the source and the destination are the same URL, " + p.Source.URL(),
			Fix: "Pass the source cluster's URL as --source and the destination cluster's as --dest."}
	}
	for _, side := range []string{sideSource, sideDest} {
		c := p.cluster(side)
		step := PairStep{Title: "reach the " + side + " cluster at " + c.URL(), Side: side, Verb: "STATUS"}
		nodes, err := c.Prepare(p.ctx, nil)
		if err != nil {
			return &PairError{Step: step, Reason: Explain(err), Fix: "Nothing was changed on either cluster."}
		}
		if len(nodes) == 0 {
			return &PairError{Step: step, Reason: "getNodeList is empty", Fix: "Check the cluster settings of its daemons; nothing was changed on either cluster."}
		}
		if side == sideSource {
			p.srcNodes = nodes
		} else {
			p.dstNodes = nodes
		}
		rows := c.Each(p.ctx, nodes, "STATUS", p.conn)
		plugin, _ := c.Plugin(p.ctx)
		if plugin == "" {
			plugin = "ConfD's job_exec" // the ConfD dialect has no plugin name
		}
		step.Rows = JSONRows(rows)
		// STATUS CONN fails while the connection is not configured yet:
		// that is what pair is for. Only a node that does not answer
		// matters here.
		var down, states []string
		active := 0
		for _, r := range rows {
			state := "not configured"
			switch {
			case r.Err != nil || strings.Contains(r.Output, " unreachable: "):
				down = append(down, r.Node+": "+r.Reason())
				state = "unreachable"
			case r.OK():
				state = "configured"
				line := connectionLine(r.Output)
				if i := strings.LastIndexByte(line, '('); i >= 0 && strings.HasSuffix(line, ")") {
					state = line[i+1 : len(line)-1]
				}
				if state == "activated" {
					active++
				}
			}
			states = append(states, r.Node+" ("+state+")")
		}
		step.Note = plugin + " on " + strings.Join(states, ", ")
		if len(down) > 0 {
			p.record(step, rows...)
			return &PairError{Step: step, Reason: strings.Join(down, "\n"),
				Fix: "Start backupsyncd on those nodes (or correct the cluster settings), then run pair again; nothing was changed on either cluster."}
		}
		if side == sideDest {
			// Both clusters' nodes are known now.
			step.Note += p.remoteNodesNote()
		}
		p.record(step)
		if side == sideSource {
			p.wasActive = active == len(rows)
		} else {
			p.wasActive = p.wasActive && active == len(rows)
		}
	}
	return nil
}

// verb runs one step on every node of a side; any failed node stops Pair.
func (p *pairer) verb(step int, title, side, verb, arg, fix string) ([]Row, error) {
	c := p.cluster(side)
	rows := c.Each(p.ctx, p.nodes(side), verb, arg)
	st := PairStep{Step: step, Title: title, Side: side, Verb: verb, Rows: JSONRows(rows)}
	p.record(st, rows...)
	var failed []string
	for _, r := range rows {
		if !r.OK() {
			failed = append(failed, r.Node+": "+r.Reason())
		}
	}
	if len(failed) > 0 {
		return rows, &PairError{Step: st, Reason: strings.Join(failed, "\n"), Fix: fix}
	}
	return rows, nil
}

// keyLines checks that each node answered SSHKEY with one public key line
// of the connection and role wanted ("backupsync" for client keys,
// "backupsync-host" for host keys) and returns the lines.
func (p *pairer) keyLines(step int, title string, rows []Row, role string) ([]string, error) {
	var lines, bad []string
	for _, r := range rows {
		line := strings.TrimSpace(r.Output)
		_, comment, _, rest, err := ssh.ParseAuthorizedKey([]byte(line))
		wantPrefix := role + ":"
		if err == nil && len(bytes.TrimSpace(rest)) > 0 {
			err = errors.New("more than one line")
		}
		if err == nil && (!strings.HasPrefix(comment, wantPrefix) ||
			!strings.EqualFold(strings.SplitN(strings.TrimPrefix(comment, wantPrefix), "@", 2)[0], p.conn)) {
			err = fmt.Errorf("its comment %q is not %s%s@NODE", comment, wantPrefix, p.conn)
		}
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: SSHKEY answered no usable key line (%v)", r.Node, err))
			continue
		}
		lines = append(lines, line)
	}
	if len(bad) > 0 {
		return nil, &PairError{Step: PairStep{Step: step, Title: title}, Reason: strings.Join(bad, "\n"),
			Fix: "Check that the daemons of both clusters run the same backupsync release; " + rerunFix}
	}
	return lines, nil
}

// verify asks STATUS of the connection on both sides: it must be activated
// on every node.
func (p *pairer) verify() error {
	for _, side := range []string{sideDest, sideSource} {
		c := p.cluster(side)
		rows := c.Each(p.ctx, p.nodes(side), "STATUS", p.conn)
		st := PairStep{Title: p.conn + " is activated on the " + side, Side: side, Verb: "STATUS", Rows: JSONRows(rows)}
		var bad []string
		for _, r := range rows {
			if !r.OK() || !strings.Contains(connectionLine(r.Output), "(activated)") {
				bad = append(bad, r.Node+": "+connectionLine(r.Reason()))
			}
		}
		p.record(st, rows...)
		if len(bad) > 0 {
			return &PairError{Step: st, Reason: "not activated everywhere:\n" + strings.Join(bad, "\n"), Fix: rerunFix}
		}
	}
	note := fmt.Sprintf("%s is activated on the source (%s) and the destination (%s)",
		p.conn, strings.Join(p.srcNodes, ", "), strings.Join(p.dstNodes, ", "))
	if p.wasActive {
		note += "; it was already before: the same config and keys were sent again, nothing else changed"
	}
	return p.test(note)
}

// test runs the pre-flight test on every node of the source (the client
// side: its test goes through the destination's tunnels) and reports its
// result as the last step.
func (p *pairer) test(note string) error {
	rows := p.Source.Test(p.ctx, p.srcNodes, p.conn)
	st := PairStep{Title: "test " + p.conn + " on the source (logins, listings, a probe file at the destination)",
		Side: sideSource, Verb: "TEST", Rows: JSONRows(rows), Note: note}
	p.record(st, rows...)
	if failed := TestFailures(rows); len(failed) > 0 {
		fix := "Fix what the test names (the configs' URLs and passwords, the archive volumes, the daemons), upload the corrected config, " +
			"then run backupsyncctl test " + p.conn + " on the source, or this pair command again."
		if len(p.strangers) > 0 {
			fix = "Check REMOTE_NODES first: " + strings.Join(p.strangers, ", ") + " is not a node of the destination cluster. " + fix
		}
		return &PairError{Step: st,
			Reason: fmt.Sprintf("%s is paired and activated, but the pre-flight test failed on %d of %d source node(s):\n%s",
				p.conn, len(failed), len(rows), strings.Join(failed, "\n")),
			Fix: fix}
	}
	p.record(PairStep{Title: "done", Note: note + "; the pre-flight test passed on every node of the source: the first cycle runs at its START_CYCLE"})
	return nil
}

func (p *pairer) cluster(side string) *Cluster {
	if side == sideSource {
		return p.Source
	}
	return p.Dest
}

func (p *pairer) nodes(side string) []string {
	if side == sideSource {
		return p.srcNodes
	}
	return p.dstNodes
}

// record keeps a step and prints it: its title, its note, and the nodes'
// answers (key lines shortened to type, fingerprint and comment).
func (p *pairer) record(st PairStep, rows ...Row) {
	p.steps = append(p.steps, st)
	if p.Progress == nil {
		return
	}
	var head string
	switch {
	case st.Title == "done":
		head = "paired and tested: " + st.Note
	case st.Step > 0:
		head = fmt.Sprintf("step %-2d %s (%s)", st.Step, st.Title, st.Verb)
	default:
		head = "check   " + st.Title
	}
	if st.Note != "" && st.Title != "done" {
		head += ": " + st.Note
	}
	// A note of several lines continues under the step, indented.
	fmt.Fprintln(p.Progress, strings.ReplaceAll(head, "\n", "\n        "))
	if len(rows) == 0 {
		return
	}
	shown := make([]Row, len(rows))
	for i, r := range rows {
		shown[i] = r
		if st.Verb == "SSHKEY" && r.OK() {
			shown[i].Output = ShortKey(r.Output)
		}
	}
	var b bytes.Buffer
	WriteTable(&b, shown)
	for _, l := range strings.SplitAfter(strings.TrimRight(b.String(), "\n"), "\n") {
		fmt.Fprint(p.Progress, "        "+l)
	}
	fmt.Fprintln(p.Progress)
}

// ShortKey shows a public key line as its type, SHA-256 fingerprint and
// comment; text that is not a key line is returned as it is.
func ShortKey(line string) string {
	key, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(line)))
	if err != nil {
		return line
	}
	return strings.TrimSpace(key.Type() + " " + ssh.FingerprintSHA256(key) + " " + comment)
}

func b64(data []byte) string { return base64.StdEncoding.EncodeToString(data) }

func joinLines(lines []string) []byte { return []byte(strings.Join(lines, "\n") + "\n") }

// connectionLine is the "connection: NAME (activation)" line of a STATUS
// CONN answer (health leads it), or the first line of any other text.
func connectionLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "connection: ") {
			return l
		}
	}
	return firstLine(s)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
