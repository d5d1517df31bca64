package plugin

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"backupsync/internal/atomicfile"
	"backupsync/internal/config"
	"backupsync/internal/tunnel"
)

func (n *Node) install(st *state) (Result, error) {
	if !st.Installed {
		st.Installed = true
		if err := n.saveState(st); err != nil {
			return failed("install: %v", err), nil
		}
	}
	return ok("installed"), nil
}

// uninstall removes the plugin's state: activations and sync snapshots. It
// keeps the SSH keys, so that a reinstall (an upgrade) needs no new pairing,
// and it never touches a backup.
func (n *Node) uninstall(st *state) (Result, error) {
	if len(st.Active) > 0 {
		return failed("connection %s is active: DEACTIVATE it first", strings.Join(st.Active, ", ")), nil
	}
	for _, dir := range []string{"plugin", "sync"} {
		if err := os.RemoveAll(filepath.Join(n.Settings.StateDir, dir)); err != nil {
			return failed("uninstall: %v", err), nil
		}
	}
	n.changed()
	return ok("not installed"), nil
}

// AllConnections is STATUS's argument for every connection's health on the
// node at once (backupsyncctl status uses it).
const AllConnections = "*"

func (n *Node) status(st *state, conn string) Result {
	if conn == "" {
		// The guide's scripts compare these three words: they stay alone.
		return ok("%s", pluginState(st))
	}
	if conn == AllConnections {
		return n.statusAll(st)
	}
	c, err := n.connection(conn)
	if err != nil {
		return failed("%v", err)
	}
	activation := "not activated"
	switch {
	case !st.Installed:
		activation = "not installed"
	case st.active(c.Name):
		activation = "activated"
	}
	// Health leads: it is what an admin asks STATUS for.
	line, failing := n.health(st, c)
	lines := []string{"health: " + line}
	lines = append(lines,
		fmt.Sprintf("connection: %s (%s)", c.Name, activation),
		"role: "+describeRole(c.Role))
	lines = append(lines, "origin: "+c.Origin())
	if c.Role.Copies() {
		lines = append(lines,
			"database: "+c.Database,
			"schedule: "+c.Schedule,
			"local: "+c.LocalURL.Masked(),
			"remote: "+c.RemoteURL.Masked()+" on "+strings.Join(c.RemoteNodes, "; "))
	}
	if c.Role == config.RoleClient && n.Keys != nil {
		pins, err := n.Keys.HostKeyStatus(c.Name)
		switch {
		case err != nil:
			lines = append(lines, "host keys: not readable: "+err.Error())
		case len(pins) == 0:
			lines = append(lines, "host keys: none pinned yet")
		}
		lines = append(lines, pins...)
	}
	if n.Runtime != nil {
		lines = append(lines, n.Runtime.ConnectionStatus(c.Name)...)
	}
	if failing {
		return failed("%s", strings.Join(lines, "\n"))
	}
	return ok("%s", strings.Join(lines, "\n"))
}

// health is c's health line on this node and whether it is failing. A
// copying connection that is not activated here runs no cycle: it is
// neither healthy nor failing, and says so.
func (n *Node) health(st *state, c config.Connection) (string, bool) {
	switch {
	case !st.Installed:
		return "not installed", false
	case c.Role.Copies() && !st.active(c.Name):
		return "not activated", false
	case n.Runtime == nil:
		return "activated", false
	}
	return n.Runtime.ConnectionHealth(c)
}

func pluginState(st *state) string {
	switch {
	case !st.Installed:
		return "not installed"
	case len(st.Active) > 0:
		return "activated"
	}
	return "not activated"
}

// statusAll answers STATUS *: the plugin's state on the first line, then
// one line per configured connection, "NAME: HEALTH…". It fails (code
// 256) when any connection is failing, so that a script's check of the
// code sees it.
func (n *Node) statusAll(st *state) Result {
	lines := []string{pluginState(st)}
	conns, err := n.connections()
	if err != nil {
		return failed("%s\nthe configuration does not load: %v", lines[0], err)
	}
	failing := false
	for _, c := range conns {
		line, f := n.health(st, c)
		failing = failing || f
		lines = append(lines, c.Name+": "+line)
	}
	if failing {
		return failed("%s", strings.Join(lines, "\n"))
	}
	return ok("%s", strings.Join(lines, "\n"))
}

func describeRole(r config.Role) string {
	switch r {
	case config.RoleClient:
		return "client (copies through SSH)"
	case config.RoleServer:
		return "server (accepts SSH tunnels)"
	}
	return "direct (copies over plain FTP)"
}

// decode64 decodes an uploaded file; admins' scripts send b64encode output,
// sometimes wrapped in lines.
func decode64(arg, what string) ([]byte, error) {
	clean := strings.Join(strings.Fields(arg), "")
	if clean == "" {
		return nil, fmt.Errorf("no %s: pass the file base64-encoded", what)
	}
	data, err := base64.StdEncoding.DecodeString(clean)
	if err != nil {
		return nil, fmt.Errorf("the %s is not base64 (%v): pass b64encode(open(FILE).read())", what, err)
	}
	return data, nil
}

// uploadConfig merges an uploaded file into the connections file (see
// config.Merge): the connections it names are replaced, added or removed
// (a block Name { REMOVE = true }), the others are kept with their
// activation and keys. The activation of a removed connection is dropped.
// The reply lists what was added, replaced, kept and removed.
func (n *Node) uploadConfig(st *state, arg string) (Result, error) {
	data, err := decode64(arg, "configuration")
	if err != nil {
		return failed("%v", err), nil
	}
	up, err := config.ParseUpload("", data)
	if err != nil {
		return failed("configuration not changed: %s", diagLines(err)), nil
	}
	path := n.Settings.ConnectionsFile
	current, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return failed("configuration not changed: %v", err), nil
	}
	merged, res := config.Merge(current, up, time.Now())
	conns, err := config.ParseConnections(path, merged)
	if err != nil {
		problems := err.Error()
		if len(res.Problems) > 0 {
			for i := range res.Problems {
				res.Problems[i].File = path
			}
			problems = res.Problems.Error()
		}
		return failed("configuration not changed: the connections file does not load, and this upload does not repair it:\n%s\n"+
			"Upload a corrected block of each connection named there, or remove it with a block Name { REMOVE = true }.", problems), nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return failed("configuration not changed: %v", err), nil
	}
	if err := atomicfile.Write(path, merged, 0o600); err != nil {
		return failed("configuration not changed: %v", err), nil
	}
	n.changed()

	role := map[string]config.Role{}
	for _, c := range conns {
		role[strings.ToLower(c.Name)] = c.Role
	}
	describe := func(names []string) string {
		parts := make([]string, len(names))
		for i, name := range names {
			parts[i] = name
			if r, ok := role[strings.ToLower(name)]; ok {
				parts[i] += " (" + string(r)
				if st.active(name) {
					parts[i] += ", activated"
				}
				parts[i] += ")"
			}
		}
		return strings.Join(parts, ", ")
	}
	lines := []string{fmt.Sprintf("configuration uploaded (file sha256 %s): %d added, %d replaced, %d unchanged, %d kept, %d removed",
		up.SHA256[:12], len(res.Added), len(res.Replaced), len(res.Unchanged), len(res.Kept), len(res.Removed))}
	for _, l := range []struct {
		what  string
		names []string
	}{{"added", res.Added}, {"replaced", res.Replaced}, {"unchanged (this file uploaded before)", res.Unchanged},
		{"kept", res.Kept}, {"removed", res.Removed}} {
		if len(l.names) > 0 {
			lines = append(lines, l.what+": "+describe(l.names))
		}
	}
	if len(res.Absent) > 0 {
		lines = append(lines, "not configured, nothing to remove: "+strings.Join(res.Absent, ", "))
	}
	var dropped []string
	for _, name := range res.Removed {
		if st.active(name) {
			dropped = append(dropped, name)
			st.Active = slices.DeleteFunc(st.Active, func(a string) bool { return strings.EqualFold(a, name) })
		}
	}
	if len(dropped) > 0 {
		if err := n.saveState(st); err != nil {
			return failed("%s\nthe activation of %s could not be dropped: %v: run DEACTIVATE %s",
				strings.Join(lines, "\n"), strings.Join(dropped, ", "), err, dropped[0]), nil
		}
		lines = append(lines, "note: "+strings.Join(dropped, ", ")+" was activated: its activation was dropped with it")
	}
	if len(res.Removed) > 0 {
		lines = append(lines, "note: the SSH keys of removed connections stay on the node (a connection uploaded again under the same name uses them)")
	}
	for _, a := range st.Active {
		if _, ok := role[strings.ToLower(a)]; !ok {
			lines = append(lines, fmt.Sprintf("warning: active connection %s is no longer configured and will not run", a))
		}
	}
	lines = append(lines, remoteNodeLines(n.Settings, up.Connections)...)
	return ok("%s", strings.Join(lines, "\n")), nil
}

// diagLines shows a parse error's diagnostics as LINE:COL: message lines
// (the uploaded file has no name on the node).
func diagLines(err error) string {
	var diags config.Diagnostics
	if !errors.As(err, &diags) {
		return err.Error()
	}
	lines := make([]string, len(diags))
	for i, d := range diags {
		lines[i] = fmt.Sprintf("%d:%d: %s", d.Line, d.Col, d.Message)
	}
	return strings.Join(lines, "\n")
}

// sshKey: on a client node, the connection's public key (created on first
// need); on a server node, bind the keys uploaded for no connection to it,
// activate the client keys uploaded for it and return this node's host key
// line. Activating keys makes the daemon start its SSH server (Changed).
func (n *Node) sshKey(name string) (Result, error) {
	c, err := n.connection(name)
	if err != nil {
		return failed("%v", err), nil
	}
	switch c.Role {
	case config.RoleClient:
		line, err := n.Keys.ClientKeyLine(c.Name, "")
		if err != nil {
			return failed("sshkey: %v", err), nil
		}
		return ok("%s", line), nil
	case config.RoleServer:
		if _, err := n.Keys.BindPending(c.Name); err != nil {
			return failed("sshkey: %v", err), nil
		}
		activated, err := n.Keys.Activate(c.Name)
		if err != nil {
			return failed("sshkey: %v", err), nil
		}
		if activated > 0 {
			n.changed()
		}
		line, err := n.Keys.HostKeyLine(c.Name, "")
		if err != nil {
			return failed("sshkey: %v", err), nil
		}
		return ok("%s", line), nil
	}
	return failed("connection %s has SSH = none: it uses no SSH key", c.Name), nil
}

// uploadKey stores the keys of an uploaded key file (tunnel.ParseKeyLines:
// any comment, RSA, lines wrapped as a terminal prints them) and says, one
// line per key, what it did with each: a host key is pinned for its
// connection; a client key is stored pending for the connection its
// comment names, or for the next SSHKEY of a server-role connection here
// when it names none. Nothing is stored, and the reply says so, for this
// node's own client keys (the guide uploads the same file on the client
// cluster), a client key for a connection that is SSH = client here, a
// key already authorized, and an unbound key on a node without any
// SSH = server connection. An invalid key stores nothing at all.
func (n *Node) uploadKey(arg string) (Result, error) {
	data, err := decode64(arg, "key file")
	if err != nil {
		return failed("%v", err), nil
	}
	keys, err := tunnel.ParseKeyLines(data)
	if err != nil {
		return failed("no key stored: %v", err), nil
	}
	if len(keys) == 0 {
		return failed("no key stored: the upload holds no public key line (pass b64encode of the SSHKEY output saved to a file)"), nil
	}
	// A configuration that does not load stores every key, as before.
	conns, _ := n.connections()
	roles := map[string]config.Role{}
	var servers []string
	for _, c := range conns {
		roles[strings.ToLower(c.Name)] = c.Role
		if c.Role == config.RoleServer {
			servers = append(servers, c.Name)
		}
	}
	self := n.Settings.Node.Name
	replies := make([]string, len(keys))
	var store []tunnel.KeyLine
	var storedAt []int // index in keys of each key in store
	for i, k := range keys {
		fp := k.Fingerprint()
		from := k.Node
		if k.Role == tunnel.RoleUnbound && from == "" {
			from = fmt.Sprintf("comment %q", clip(k.Original, 60))
		}
		if k.Role != tunnel.RoleHost {
			if own, isOwn, err := n.Keys.OwnClientKey(k.Key); err != nil {
				return failed("no key stored: %v", err), nil
			} else if isOwn {
				replies[i] = fmt.Sprintf("%s: this node's own key for %s: nothing to store", self, own)
				continue
			}
			state, authConn, err := n.Keys.LookupClientKey(k.Key)
			if err != nil {
				return failed("no key stored: %v", err), nil
			}
			if state == tunnel.KeyAuthorized && (k.Role == tunnel.RoleUnbound || strings.EqualFold(authConn, k.Connection)) {
				replies[i] = fmt.Sprintf("%s: client key %s of %s is already authorized for %s: nothing to store", self, fp, from, authConn)
				continue
			}
		}
		switch k.Role {
		case tunnel.RoleClient:
			if roles[strings.ToLower(k.Connection)] == config.RoleClient {
				replies[i] = fmt.Sprintf("%s: client key %s of %s for %s: %s is SSH = client on this node, which authorizes no client keys: nothing to store",
					self, fp, from, k.Connection, k.Connection)
				continue
			}
		case tunnel.RoleUnbound:
			if len(conns) > 0 && len(servers) == 0 {
				replies[i] = fmt.Sprintf("%s: client key %s of %s: no connection on this node has SSH = server, so it authorizes no client keys: nothing to store",
					self, fp, from)
				continue
			}
		}
		store = append(store, k)
		storedAt = append(storedAt, i)
	}
	if err := n.Keys.Apply(store); err != nil {
		return failed("no key stored: %v", err), nil
	}
	for j, k := range store {
		i := storedAt[j]
		fp := k.Fingerprint()
		switch k.Role {
		case tunnel.RoleHost:
			replies[i] = fmt.Sprintf("%s: pinned host key %s of %s for %s", self, fp, k.Node, k.Connection)
		case tunnel.RoleClient:
			replies[i] = fmt.Sprintf("%s: stored client key %s of %s for %s (pending: run SSHKEY %s here to authorize)", self, fp, k.Node, k.Connection, k.Connection)
			if _, configured := roles[strings.ToLower(k.Connection)]; !configured && len(conns) > 0 {
				replies[i] += fmt.Sprintf("; note: %s is not configured on this node (it has %s): the connection name must be the same on both clusters",
					k.Connection, strings.Join(connNames(conns), ", "))
			}
		default:
			of := k.Node
			if keys[i].Node == "" {
				of = fmt.Sprintf("%s (comment %q)", k.Node, clip(k.Original, 60))
			}
			target, step := "the next SSHKEY CONN on this node", "SSHKEY CONN"
			if len(servers) == 1 {
				target, step = servers[0], "SSHKEY "+servers[0]
			}
			replies[i] = fmt.Sprintf("%s: stored client key %s of %s for %s (pending: run %s here to authorize)", self, fp, of, target, step)
		}
	}
	return ok("%s", strings.Join(replies, "\n")), nil
}

func connNames(conns []config.Connection) []string {
	names := make([]string, len(conns))
	for i, c := range conns {
		names[i] = c.Name
	}
	return names
}

// clip shortens an uploaded comment for a reply.
func clip(s string, max int) string {
	if r := []rune(s); len(r) > max {
		return string(r[:max]) + "…"
	}
	return s
}

func (n *Node) activate(st *state, name string) (Result, error) {
	var targets []config.Connection
	if name == "" {
		conns, err := n.connections()
		if err != nil {
			return failed("the configuration does not load: %v", err), nil
		}
		if len(conns) == 0 {
			return failed("nothing to activate: no configuration uploaded yet (UPLOAD_CONFIG)"), nil
		}
		targets = conns
	} else {
		c, err := n.connection(name)
		if err != nil {
			return failed("%v", err), nil
		}
		targets = []config.Connection{c}
	}
	for _, c := range targets {
		if missing := n.missing(c); missing != "" {
			return failed("cannot activate %s: %s", c.Name, missing), nil
		}
	}
	for _, c := range targets {
		if !st.active(c.Name) {
			st.Active = append(st.Active, c.Name)
		}
	}
	if err := n.saveState(st); err != nil {
		return failed("activate: %v", err), nil
	}
	n.changed()
	return ok("activated"), nil
}

// missing says what a connection lacks before it can run, or "".
func (n *Node) missing(c config.Connection) string {
	switch c.Role {
	case config.RoleClient:
		if _, err := n.Keys.ClientKeyLine(c.Name, ""); err != nil {
			return "its SSH key: " + err.Error()
		}
		// In accept-new mode the first login pins the remote's host keys.
		if n.Settings.SSHClient.HostKeyPolicy() == config.HostKeysPinned {
			if pinned, err := n.Keys.PinnedHostKeys(c.Name); err != nil || len(pinned) == 0 {
				return "no host key of the remote cluster is pinned for it (ssh_client.host_keys = \"pinned\"): run SSHKEY " + c.Name +
					" on the remote (server) cluster and upload its output here with UPLOAD_KEY"
			}
		}
	case config.RoleServer:
		if keys, err := n.Keys.AuthorizedKeys(c.Name); err != nil || len(keys) == 0 {
			pending, _ := n.Keys.PendingKeys(c.Name)
			unbound, _ := n.Keys.UnboundKeys()
			pending = append(pending, unbound...)
			if len(pending) > 0 {
				return fmt.Sprintf("%d uploaded client key(s) are not yet authorized: run SSHKEY %s here first", len(pending), c.Name)
			}
			return "no client key is authorized for it: upload the client cluster's SSHKEY " + c.Name +
				" output with UPLOAD_KEY, then run SSHKEY " + c.Name + " here"
		}
	}
	return ""
}

func (n *Node) deactivate(st *state, name string) (Result, error) {
	if name == "" {
		st.Active = nil
	} else {
		if !st.active(name) {
			// A misspelt name must not look like a successful deactivation.
			if _, err := n.connection(name); err != nil {
				return failed("%v", err), nil
			}
			return ok("not activated"), nil
		}
		st.Active = slices.DeleteFunc(st.Active, func(a string) bool { return strings.EqualFold(a, name) })
	}
	if err := n.saveState(st); err != nil {
		return failed("deactivate: %v", err), nil
	}
	n.changed()
	return ok("not activated"), nil
}

// DefaultLogLines is what GETLOG returns without an argument.
const DefaultLogLines = 200

func (n *Node) getLog(st *state, arg string) Result {
	lines := DefaultLogLines
	if arg != "" {
		v, err := strconv.Atoi(arg)
		if err != nil || v < 1 {
			return failed("GETLOG takes a number of lines, e.g. 200")
		}
		lines = v
	}
	if n.Log == nil {
		return ok("")
	}
	tail, err := n.Log.Tail(lines)
	if err != nil {
		return failed("getlog: %v", err)
	}
	// Health first: the verdict before the evidence, within the lines
	// asked for.
	conns, _ := n.connections() // a configuration that does not load is in the log
	var head []string
	for _, c := range conns {
		line, _ := n.health(st, c)
		head = append(head, "health: "+c.Name+": "+line)
	}
	if len(head) >= lines {
		return ok("%s", strings.Join(head[:lines], "\n"))
	}
	tail = append(head, tail[max(0, len(tail)-(lines-len(head))):]...)
	return ok("%s", strings.Join(tail, "\n"))
}
