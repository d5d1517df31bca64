// Package plugin implements the verbs of the BackupSync plugin on one node —
// INSTALL, UNINSTALL, UPLOAD_CONFIG, SSHKEY, UPLOAD_KEY, ACTIVATE,
// DEACTIVATE, STATUS, GETLOG — with the plugin's state kept under the
// node's state directory. It answers as EXAoperation's callPlugin does:
// a code (0 on success, 256 — exit status 1 as a wait status — on failure)
// and one output text, which never contains a password or key material.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	gosync "sync"
	"time"

	"backupsync/internal/config"
	"backupsync/internal/tunnel"
)

// Codes of a verb's result, as EXAoperation reports a plugin's exit status.
const (
	CodeOK     = 0
	CodeFailed = 256 // exit status 1, as a wait status
)

// Name is the plugin's name in showPluginList without the version.
const Name = "Administration.BackupSync"

// Verbs and their descriptions, as showPluginFunctions returns them.
var Functions = map[string]string{
	"ACTIVATE":      "Activate plugin.",
	"DEACTIVATE":    "Deactivate plugin.",
	"GETLOG":        "Return the log output.",
	"INSTALL":       "Install plugin.",
	"SSHKEY":        "Prepare public key for ssh.",
	"STATUS":        "Show status of plugin (not installed, activated, not activated).",
	"UNINSTALL":     "Uninstall plugin.",
	"UPLOAD_CONFIG": "Upload configuration.",
	"UPLOAD_KEY":    "Upload public key for ssh",
}

// Extensions are our verbs beyond the guide's nine: callPlugin runs them,
// showPluginFunctions does not list them (scripts compare its answer with
// the guide's list).
var Extensions = map[string]string{
	"TEST": "Test a connection now on this node: log in to both archive volumes, list, write and remove a probe file (TEST Connection1).",
}

// Known reports whether verb (any case, spaces trimmed) is one of Functions
// or Extensions.
func Known(verb string) bool {
	verb = strings.ToUpper(strings.TrimSpace(verb))
	_, fn := Functions[verb]
	_, ext := Extensions[verb]
	return fn || ext
}

// CallTimeout is how long a caller should wait for verb's answer, 0 for
// the caller's default: TEST logs in to two archive volumes and may take
// up to TestTimeout.
func CallTimeout(verb string) time.Duration {
	if strings.EqualFold(strings.TrimSpace(verb), "TEST") {
		return TestTimeout + 5*time.Second
	}
	return 0
}

// ErrUnknownVerb is a verb that is not one of Functions or Extensions.
var ErrUnknownVerb = errors.New("unknown plugin function")

// Result is what a verb answers: callPlugin returns [Code, Output].
type Result struct {
	Code   int
	Output string
}

func ok(format string, args ...any) Result {
	return Result{CodeOK, fmt.Sprintf(format, args...)}
}

func failed(format string, args ...any) Result {
	return Result{CodeFailed, fmt.Sprintf(format, args...)}
}

// LogTail reads the last lines of this node's plugin log.
type LogTail interface {
	Tail(n int) ([]string, error)
}

// Runtime reports what the daemon knows of a connection, for STATUS and
// GETLOG.
type Runtime interface {
	// ConnectionHealth is c's health on this node in one line, health
	// first ("ok, lag 0s, …", "failing since …: cause; next: step"), and
	// whether it is failing.
	ConnectionHealth(c config.Connection) (line string, failing bool)
	// ConnectionStatus is the rest of STATUS CONN: schedule, last cycle.
	ConnectionStatus(name string) []string
}

// Node is the plugin on one node.
type Node struct {
	Settings *config.Settings
	Keys     *tunnel.KeyStore
	Log      LogTail // nil: GETLOG says there is no log yet
	Runtime  Runtime // nil: STATUS CONN shows configuration only
	// Changed is called after the configuration or the set of active
	// connections changed, so that the daemon reloads its schedules.
	Changed func()

	mu      gosync.Mutex // one verb at a time changes state
	changes bool         // a verb changed what the daemon runs; under mu
}

// Call runs verb (case-insensitive) with arg. Only an unknown verb is an
// error; a verb that fails answers CodeFailed with the reason.
func (n *Node) Call(ctx context.Context, verb, arg string) (Result, error) {
	verb = strings.ToUpper(strings.TrimSpace(verb))
	arg = strings.TrimSpace(arg)
	if !Known(verb) {
		return Result{}, fmt.Errorf("%w %q: use one of %s", ErrUnknownVerb, verb, strings.Join(verbNames(), ", "))
	}
	if verb == "TEST" {
		// Outside the lock: a test takes seconds and changes no state.
		return n.test(ctx, arg), nil
	}
	n.mu.Lock()
	r, err := n.call(verb, arg)
	changed := n.changes
	n.changes = false
	n.mu.Unlock()
	// Outside the lock: the daemon's reload reads the plugin state.
	if changed && n.Changed != nil {
		n.Changed()
	}
	return r, err
}

func (n *Node) call(verb, arg string) (Result, error) {
	st, err := n.loadState()
	if err != nil {
		return failed("%v", err), nil
	}
	switch verb {
	case "INSTALL":
		return n.install(st)
	case "STATUS":
		return n.status(st, arg), nil
	case "UNINSTALL":
		return n.uninstall(st)
	}
	if !st.Installed {
		return failed("not installed: run INSTALL first"), nil
	}
	switch verb {
	case "UPLOAD_CONFIG":
		return n.uploadConfig(st, arg)
	case "SSHKEY":
		return n.sshKey(arg)
	case "UPLOAD_KEY":
		return n.uploadKey(arg)
	case "ACTIVATE":
		return n.activate(st, arg)
	case "DEACTIVATE":
		return n.deactivate(st, arg)
	case "GETLOG":
		return n.getLog(st, arg), nil
	}
	return Result{}, fmt.Errorf("%w %q", ErrUnknownVerb, verb) // unreachable: Functions lists every verb
}

func verbNames() []string {
	names := make([]string, 0, len(Functions)+len(Extensions))
	for v := range Functions {
		names = append(names, v)
	}
	for v := range Extensions {
		names = append(names, v)
	}
	sort.Strings(names)
	return names
}

// changed notes that Changed must be called once the verb is done.
func (n *Node) changed() { n.changes = true }

// connections reads the node's connections file; a missing file is none.
func (n *Node) connections() ([]config.Connection, error) {
	conns, err := config.ReadConnections(n.Settings.ConnectionsFile)
	if err != nil && errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return conns, err
}

func (n *Node) connection(name string) (config.Connection, error) {
	if name == "" {
		return config.Connection{}, errors.New("name a connection, e.g. Connection1")
	}
	conns, err := n.connections()
	if err != nil {
		return config.Connection{}, fmt.Errorf("the configuration does not load: %v", err)
	}
	for _, c := range conns {
		if strings.EqualFold(c.Name, name) {
			return c, nil
		}
	}
	if len(conns) == 0 {
		return config.Connection{}, fmt.Errorf("no connection %q: no configuration uploaded yet (UPLOAD_CONFIG)", name)
	}
	names := make([]string, len(conns))
	for i, c := range conns {
		names[i] = c.Name
	}
	return config.Connection{}, fmt.Errorf("no connection %q in the configuration (it has %s)", name, strings.Join(names, ", "))
}
