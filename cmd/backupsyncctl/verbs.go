package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"

	"backupsync/internal/atomicfile"
	"backupsync/internal/config"
	"backupsync/internal/ctl"
)

// verbCmd is a command that runs verb with its one optional argument.
func verbCmd(verb string) func(a *app, args []string) int {
	return func(a *app, args []string) int {
		arg := ""
		if len(args) > 0 {
			arg = args[0]
		}
		_, code := a.runVerb(verb, arg)
		return code
	}
}

// runVerb runs verb with arg on the nodes, prints the rows and returns
// them with the exit status: 0 when every node succeeded.
func (a *app) runVerb(verb, arg string) ([]ctl.Row, int) {
	rows, code := a.each(verb, arg)
	if rows == nil {
		return nil, code
	}
	return rows, a.printRows(verb, rows)
}

// each runs verb with arg on the nodes the command names and returns the
// rows; nil rows with the exit status when the cluster could not be
// asked (said on stderr).
func (a *app) each(verb, arg string) ([]ctl.Row, int) {
	c, code := a.dial()
	if c == nil {
		return nil, code
	}
	defer c.Close()
	nodes, err := c.Prepare(a.ctx, a.wantNodes())
	if err != nil {
		return nil, a.clusterFailed(c, err)
	}
	return c.Each(a.ctx, nodes, verb, arg), exitOK
}

// printRows prints rows as a table or JSON and returns the exit status; a
// failure adds a summary line on stderr.
func (a *app) printRows(verb string, rows []ctl.Row) int {
	if a.g.json {
		ctl.WriteJSON(a.stdout, ctl.JSONRows(rows))
	} else {
		ctl.WriteTable(a.stdout, rows)
	}
	return a.summary(verb, rows)
}

// summary returns the exit status of rows: 0 when every node succeeded,
// else 1 with a line on stderr naming the nodes that failed.
func (a *app) summary(verb string, rows []ctl.Row) int {
	var failed []string
	for _, r := range rows {
		if !r.OK() {
			failed = append(failed, r.Node)
		}
	}
	if len(failed) == 0 {
		return exitOK
	}
	return a.fail("%s failed on %d of %d node(s): %s", verb, len(failed), len(rows), strings.Join(failed, ", "))
}

// cmdStatus shows health first: without CONN every connection on every
// node (STATUS *), with CONN that connection's report. The exit status is
// 1 when any connection is failing or any node did not answer, so that
// scripts and monitoring can rely on it.
func (a *app) cmdStatus(args []string) int {
	if len(args) > 0 {
		_, code := a.runVerb("STATUS", args[0])
		return code
	}
	rows, code := a.each("STATUS", ctl.StatusAll)
	if rows == nil {
		return code
	}
	hs := ctl.ParseHealth(rows)
	if a.g.json {
		ctl.WriteJSON(a.stdout, hs)
	} else {
		ctl.WriteHealthTable(a.stdout, hs)
	}
	if failing := ctl.Failing(hs); len(failing) > 0 {
		return a.fail("failing: %s (see the HEALTH column for the cause and the next step)", strings.Join(failing, ", "))
	}
	return exitOK
}

func (a *app) cmdGetlog(_ []string) int {
	if a.opts.lines < 0 {
		return a.usage("--lines must be a positive number of lines")
	}
	arg := ""
	if a.opts.lines > 0 {
		arg = strconv.Itoa(a.opts.lines)
	}
	if a.g.json {
		_, code := a.runVerb("GETLOG", arg)
		return code
	}
	// Log lines as they are, under a header per node: a table would
	// indent them all to its OUTPUT column.
	rows, code := a.each("GETLOG", arg)
	if rows == nil {
		return code
	}
	ctl.WriteLogs(a.stdout, rows)
	return a.summary("GETLOG", rows)
}

// cmdSSHKey runs SSHKEY and, with -o FILE, writes the key lines, one per
// node, to FILE for upload-key on the other cluster; only when every node
// answered a key, so that no node is left out of a pairing.
func (a *app) cmdSSHKey(args []string) int {
	if a.opts.out != "" && a.g.nodes != "" {
		// A key file of some nodes is fine: upload-key merges by node.
		fmt.Fprintf(a.stderr, "backupsyncctl: note: %s gets the keys of %s only\n", a.opts.out, a.g.nodes)
	}
	rows, code := a.runVerb("SSHKEY", args[0])
	if a.opts.out == "" || rows == nil {
		return code
	}
	if code != exitOK {
		return a.fail("%s not written: not every node answered a key", a.opts.out)
	}
	var b strings.Builder
	for _, r := range rows {
		line := strings.TrimSpace(r.Output)
		if _, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil || strings.TrimSpace(string(rest)) != "" {
			return a.fail("%s not written: %s did not answer one public key line", a.opts.out, r.Node)
		}
		b.WriteString(line + "\n")
	}
	if err := atomicfile.Write(a.opts.out, []byte(b.String()), 0o644); err != nil {
		return a.fail("%v", err)
	}
	fmt.Fprintf(a.stderr, "backupsyncctl: wrote %d key line(s) to %s: upload them to the other cluster with upload-key %s\n",
		len(rows), a.opts.out, a.opts.out)
	return exitOK
}

// cmdUploadConfig checks the file as the daemons will, then sends it.
func (a *app) cmdUploadConfig(args []string) int {
	data, err := os.ReadFile(args[0])
	if err != nil {
		return a.fail("%v", err)
	}
	// As the daemons read it: an upload may also remove connections.
	if _, err := config.ParseUpload(args[0], data); err != nil {
		return a.fail("%s does not parse; nothing was sent:\n%v", args[0], err)
	}
	_, code := a.runVerb("UPLOAD_CONFIG", base64.StdEncoding.EncodeToString(data))
	return code
}

// cmdTest runs the pre-flight test of a connection on every node (or
// --nodes) and prints each node's steps; the exit status is 1 when a step
// failed on any node, with what failed and the next step on stderr.
func (a *app) cmdTest(args []string) int {
	c, code := a.dial()
	if c == nil {
		return code
	}
	defer c.Close()
	nodes, err := c.Prepare(a.ctx, a.wantNodes())
	if err != nil {
		return a.clusterFailed(c, err)
	}
	rows := c.Test(a.ctx, nodes, args[0])
	if a.g.json {
		ctl.WriteJSON(a.stdout, ctl.JSONRows(rows))
	} else {
		ctl.WriteTable(a.stdout, rows)
	}
	if failed := ctl.TestFailures(rows); len(failed) > 0 {
		return a.fail("the test of %s failed on %d of %d node(s):\n%s", args[0], len(failed), len(rows), strings.Join(failed, "\n"))
	}
	return exitOK
}

// cmdUploadKey sends a key file (one public key line per node, as sshkey
// -o writes it); the daemons check each line.
func (a *app) cmdUploadKey(args []string) int {
	data, err := os.ReadFile(args[0])
	if err != nil {
		return a.fail("%v", err)
	}
	if strings.TrimSpace(string(data)) == "" {
		return a.fail("%s is empty: it should hold the other cluster's sshkey output, one key line per node", args[0])
	}
	_, code := a.runVerb("UPLOAD_KEY", base64.StdEncoding.EncodeToString(data))
	return code
}

// cmdPair pairs two clusters (ctl.Pair).
func (a *app) cmdPair(_ []string) int {
	p := a.opts.pair
	switch {
	case a.g.urlFlag:
		return a.usage("pair takes --source and --dest, not --url")
	case a.g.nodes != "":
		return a.usage("pair works on every node of both clusters; --nodes does not apply")
	case p.source == "" || p.dest == "" || p.connection == "" || p.sourceConfig == "" || p.destConfig == "":
		var missing []string
		for _, f := range []struct{ name, val string }{{"--source", p.source}, {"--dest", p.dest},
			{"--connection", p.connection}, {"--source-config", p.sourceConfig}, {"--dest-config", p.destConfig}} {
			if f.val == "" {
				missing = append(missing, f.name)
			}
		}
		return a.usage("pair needs %s", strings.Join(missing, ", "))
	case a.g.insecure && (p.sourceFingerprint != "" || p.destFingerprint != ""):
		return a.usage("--insecure and a fingerprint exclude each other: a pinned certificate is verified")
	}
	spec := ctl.PairSpec{Connection: p.connection}
	for _, f := range []struct {
		path string
		dst  *ctl.File
	}{{p.sourceConfig, &spec.SourceConfig}, {p.destConfig, &spec.DestConfig}} {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return a.fail("%v", err)
		}
		*f.dst = ctl.File{Name: f.path, Data: data}
	}
	var err error
	if spec.Source, err = ctl.Dial(a.clusterOptions(p.source, firstOf(p.sourceFingerprint, a.g.fingerprint))); err != nil {
		return a.usage("--source: %v", err)
	}
	defer spec.Source.Close()
	if spec.Dest, err = ctl.Dial(a.clusterOptions(p.dest, firstOf(p.destFingerprint, a.g.fingerprint))); err != nil {
		return a.usage("--dest: %v", err)
	}
	defer spec.Dest.Close()
	if !a.g.json {
		spec.Progress = a.stdout
		fmt.Fprintf(a.stdout, "pairing %s: source %s, destination %s\n", p.connection, spec.Source.URL(), spec.Dest.URL())
	}
	steps, err := ctl.Pair(a.ctx, spec)
	if a.g.json {
		out := struct {
			OK    bool           `json:"ok"`
			Steps []ctl.PairStep `json:"steps"`
			Error string         `json:"error,omitempty"`
		}{OK: err == nil, Steps: steps}
		if err != nil {
			out.Error = err.Error()
		}
		ctl.WriteJSON(a.stdout, out)
	}
	if err != nil {
		return a.fail("%v", err)
	}
	return exitOK
}

// cmdBackups lists the backup sets of a database with each node's part at
// the destination (ctl.Cluster.Backups); exit 1 when the listing is
// incomplete.
func (a *app) cmdBackups(args []string) int {
	c, code := a.dial()
	if c == nil {
		return code
	}
	defer c.Close()
	b, err := c.Backups(a.ctx, args[0])
	if err != nil {
		return a.clusterFailed(c, err)
	}
	if a.g.json {
		ctl.WriteJSON(a.stdout, b)
	} else {
		ctl.WriteBackupTable(a.stdout, b)
	}
	if b.Incomplete != "" {
		return a.fail("%s", b.Incomplete)
	}
	return exitOK
}
