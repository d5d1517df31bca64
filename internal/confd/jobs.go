package confd

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"backupsync/internal/control"
	"backupsync/internal/plugin"
	"backupsync/internal/xmlrpc"
)

// job is one job of job_list.
type job struct {
	name, desc          string
	mandatory, optional []string
	// substitutes maps a parameter to the mandatory one it may replace
	// (ConfD's remote_volume_id for remote_volume_name).
	substitutes map[string]string
	mutating    bool
	run         func(s *Service, ctx context.Context, args map[string]any) outcome
}

// check reports a missing mandatory or an unknown parameter, naming it.
func (j *job) check(args map[string]any) (outcome, bool) {
	for _, m := range j.mandatory {
		if _, ok := args[m]; ok {
			continue
		}
		sub := ""
		for p, of := range j.substitutes {
			if of == m {
				if _, ok := args[p]; ok {
					sub = p
				}
			}
		}
		if sub == "" {
			return failed(CodeInvalidParam, "missing mandatory parameter '%s' of job %s", m, j.name), true
		}
	}
	var unknown []string
	for k := range args {
		if !slices.Contains(j.mandatory, k) && !slices.Contains(j.optional, k) && j.substitutes[k] == "" {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		takes := slices.Concat(j.mandatory, j.optional)
		for p := range j.substitutes {
			takes = append(takes, p)
		}
		what := "no parameters"
		if len(takes) > 0 {
			what = strings.Join(takes, ", ")
		}
		return failed(CodeInvalidParam, "unknown parameter '%s' of job %s: it takes %s", strings.Join(unknown, "', '"), j.name, what), true
	}
	return outcome{}, false
}

// jobs are the jobs backupsync provides, by name.
var jobs = map[string]*job{}

func init() {
	verbJob := func(verb, param string, mandatory bool, mutating bool, desc string) {
		j := &job{name: "backupsync_" + strings.ToLower(verb), desc: desc, mutating: mutating, optional: []string{"nodes"}}
		if param != "" {
			if mandatory {
				j.mandatory = []string{param}
			} else {
				j.optional = []string{param, "nodes"}
			}
		}
		j.run = func(s *Service, ctx context.Context, args map[string]any) outcome {
			return s.runVerb(ctx, j, verb, param, args)
		}
		jobs[j.name] = j
	}
	verbJob("INSTALL", "", false, true, "Install the BackupSync plugin on the nodes (INSTALL).")
	verbJob("UNINSTALL", "", false, true, "Uninstall the BackupSync plugin on the nodes: activations and sync state go, SSH keys and backups stay (UNINSTALL).")
	verbJob("UPLOAD_CONFIG", "config", true, true, "Upload the connections file (its text, or base64 of it) to the nodes (UPLOAD_CONFIG).")
	verbJob("SSHKEY", "connection", true, true, "Each node's public key of a connection: the client key on the client side; on the server side it authorizes the uploaded client keys and answers the host key (SSHKEY).")
	verbJob("UPLOAD_KEY", "key", true, true, "Upload the other cluster's key lines (their text, or base64 of it) to the nodes (UPLOAD_KEY).")
	verbJob("ACTIVATE", "connection", true, true, "Activate a connection on the nodes (ACTIVATE).")
	verbJob("DEACTIVATE", "connection", false, true, "Deactivate a connection, or every connection, on the nodes (DEACTIVATE).")
	verbJob("STATUS", "connection", false, false, "The plugin's status (not installed, activated, not activated), or a connection's report, on the nodes (STATUS).")
	verbJob("GETLOG", "lines", false, false, "The last lines (default 200) of each node's plugin log (GETLOG).")
	verbJob("TEST", "connection", true, false, "The pre-flight test of a connection on the nodes: log in to both archive volumes (through the tunnel where configured), list, write and remove a probe file at the destination (TEST).")

	for _, j := range []*job{
		{name: "node_list", desc: "List the cluster's nodes (the daemons of backupsync's cluster settings).", run: (*Service).nodeList},
		{name: "node_state", desc: "State of the cluster's nodes: online when the node's backupsyncd answers, else offline; booted is when that daemon started.", run: (*Service).nodeState},
		{name: "remote_volume_list", desc: "List the remote archive volumes: the destination of each copying connection, named after the connection.", run: (*Service).remoteVolumeList},
		{name: "remote_volume_state", desc: "Connection state of a remote archive volume on every node (Online, Unmounted, Connection problem), found by logging in to it.",
			mandatory: []string{"remote_volume_name"}, substitutes: map[string]string{"remote_volume_id": "remote_volume_name"}, run: (*Service).remoteVolumeState},
		{name: "db_backup_list", desc: "List the backups of a database on the local archive volume, with whether the destination holds a verified copy (synced); " +
			"per_node = True adds 'nodes' (each node's part at the destination: synced, partial, missing or unknown), 'bytes' and 'time' (RFC 3339, UTC).",
			mandatory: []string{"db_name"}, optional: []string{"per_node"}, run: (*Service).dbBackupList},
	} {
		jobs[j.name] = j
	}
}

// notProvided are ConfD jobs that only the database's own ConfD can do.
var notProvided = map[string]string{}

func init() {
	const db = "it is a job of the database's own ConfD (Exasol's cluster management); backupsync only copies the backups of the archive volumes"
	for _, name := range []string{
		"db_start", "db_stop", "db_state", "db_info", "db_list", "db_create", "db_delete", "db_configure",
		"db_backup_start", "db_backup_abort", "db_backups_delete", "db_backup_change_expiration",
		"db_backup_delete_unusable", "db_restore", "db_backup_add_schedule", "db_backup_remove_schedule",
		"db_backup_modify_schedule", "db_backup_list_schedules", "db_backup_progress",
		"remote_volume_add", "remote_volume_remove", "remote_volume_modify", "remote_volume_info",
		"node_add", "node_remove", "node_info", "node_suspend", "node_resume",
		"st_volume_info", "st_volume_list", "st_volume_set_io_status", "st_volume_add_label", "st_volume_remove_label",
		"st_volume_enlarge", "st_volume_shrink", "st_volume_append_node", "st_volume_move_node",
		"st_volume_increase_redundancy", "st_volume_decrease_redundancy", "st_volume_lock", "st_volume_unlock",
		"st_volume_clear_data", "st_volume_add", "st_volume_remove",
	} {
		notProvided[name] = db
	}
}

// nodeResult is one node's answer to a verb job in result_output.
func nodeResult(code int, output string) map[string]any {
	return map[string]any{"code": code, "output": output}
}

// runVerb runs a plugin verb on the nodes, concurrently, through the
// surface (locally or forwarded, exactly as callPlugin does).
func (s *Service) runVerb(ctx context.Context, j *job, verb, param string, args map[string]any) outcome {
	nodes, o, invalid := s.nodesParam(args)
	if invalid {
		return o
	}
	arg := ""
	if _, given := args[param]; given && param != "" {
		var err error
		if arg, err = verbArg(param, args[param]); err != nil {
			return failed(CodeInvalidParam, "parameter '%s' of job %s: %v", param, j.name, err)
		}
	}
	type row struct {
		r   plugin.Result
		err error
	}
	rows := fanOut(ctx, nodes, func(ctx context.Context, p control.Peer) row {
		r, err := s.Surface.CallNode(ctx, p.Name, verb, arg)
		return row{r, err}
	})
	out := map[string]any{}
	var bad []string
	succeeded := false
	for i, p := range nodes {
		r := rows[i]
		if r.err != nil {
			msg := r.err.Error()
			var f *xmlrpc.Fault
			if errors.As(r.err, &f) {
				msg = strings.TrimPrefix(f.String, "Unexpected Zope exception: ")
			}
			r.r = plugin.Result{Code: plugin.CodeFailed, Output: msg}
		}
		out[p.Name] = nodeResult(r.r.Code, r.r.Output)
		if r.r.Code != plugin.CodeOK {
			bad = append(bad, p.Name+": "+firstLine(r.r.Output))
		} else {
			succeeded = true
		}
	}
	o = outcome{output: out, changed: j.mutating && succeeded}
	if len(bad) > 0 {
		o.code = CodeFailed
		o.desc = fmt.Sprintf("%s failed on %d of %d node(s): %s", j.name, len(bad), len(nodes), strings.Join(bad, "; "))
	}
	return o
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// verbArg turns a job parameter into the verb's argument.
func verbArg(param string, v any) (string, error) {
	switch param {
	case "lines":
		switch n := v.(type) {
		case int64:
			if n < 1 {
				return "", fmt.Errorf("want a positive number of lines, not %d", n)
			}
			return strconv.FormatInt(n, 10), nil
		case string:
			n = strings.TrimSpace(n)
			if v, err := strconv.Atoi(n); err != nil || v < 1 {
				return "", fmt.Errorf("want a positive number of lines, not %q", n)
			}
			return n, nil
		}
		return "", fmt.Errorf("want a number of lines, not %s", xmlrpc.TypeName(v))
	case "config", "key":
		var text string
		switch b := v.(type) {
		case string:
			text = b
		case []byte: // Python 3 bytes, e.g. b64encode()'s, travel as base64
			text = string(b)
		default:
			return "", fmt.Errorf("want the file's text or its base64, not %s", xmlrpc.TypeName(v))
		}
		if strings.TrimSpace(text) == "" {
			return "", fmt.Errorf("it is empty")
		}
		// The verb takes base64; a file's own text never decodes as base64
		// (its braces, '=' signs inside lines, ':' and '@' are outside the
		// alphabet), so anything that does not is the text itself.
		if _, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(text), "")); err != nil {
			return base64.StdEncoding.EncodeToString([]byte(text)), nil
		}
		return text, nil
	default: // connection
		name, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("want a connection name, not %s", xmlrpc.TypeName(v))
		}
		return strings.TrimSpace(name), nil
	}
}

// nodesParam resolves the optional 'nodes' parameter: a list of node names
// or ConfD ids ('n0011', '11', 11), or one string of them separated by
// commas or spaces. Absent, the cluster's every node. The nodes come back in
// the cluster's order.
func (s *Service) nodesParam(args map[string]any) ([]control.Peer, outcome, bool) {
	all := s.Surface.Nodes
	v, ok := args["nodes"]
	if !ok {
		return all, outcome{}, false
	}
	var want []string
	add := func(x any) bool {
		switch t := x.(type) {
		case string:
			want = append(want, strings.FieldsFunc(t, func(r rune) bool { return r == ',' || r == ' ' || r == ';' })...)
		case int64:
			want = append(want, strconv.FormatInt(t, 10))
		default:
			return false
		}
		return true
	}
	switch t := v.(type) {
	case []any:
		for _, x := range t {
			if !add(x) {
				return nil, failed(CodeInvalidParam, "parameter 'nodes' lists node names or ids, not %s", xmlrpc.TypeName(x)), true
			}
		}
	default:
		if !add(t) {
			return nil, failed(CodeInvalidParam, "parameter 'nodes' lists node names or ids, not %s", xmlrpc.TypeName(t)), true
		}
	}
	if len(want) == 0 {
		return nil, failed(CodeInvalidParam, "parameter 'nodes' names no node: leave it out for every node"), true
	}
	ids := nodeIDs(all)
	pick := map[int]bool{}
	var unknown []string
	for _, w := range want {
		found := false
		for i, p := range all {
			if p.Name == w || ids[i] == normID(w) {
				pick[i], found = true, true
			}
		}
		if !found {
			unknown = append(unknown, w)
		}
	}
	if len(unknown) > 0 {
		names := make([]string, len(all))
		for i, p := range all {
			names[i] = p.Name
		}
		return nil, failed(CodeInvalidParam, "unknown node '%s' in parameter 'nodes': this cluster has %s",
			strings.Join(unknown, "', '"), strings.Join(names, ", ")), true
	}
	var nodes []control.Peer
	for i, p := range all {
		if pick[i] {
			nodes = append(nodes, p)
		}
	}
	return nodes, outcome{}, false
}

// normID is a node id as nodeIDs writes it: "0011" is "11".
func normID(w string) string {
	for _, r := range w {
		if r < '0' || r > '9' {
			return w
		}
	}
	if t := strings.TrimLeft(w, "0"); t != "" {
		return t
	}
	return "0"
}
