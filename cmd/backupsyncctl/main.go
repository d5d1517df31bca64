// Command backupsyncctl is the admin tool of backupsync: it drives the
// plugin verbs of a cluster's daemons over XML-RPC, as admins' scripts drive
// the original BackupSync plugin through EXAoperation, runs each verb on all
// nodes at once and prints one row per node, and pairs two clusters in one
// command (pair). --api confd drives the same commands through ConfD's
// job_exec dialect. Run "backupsyncctl help" for the commands and flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"backupsync/internal/ctl"
	"backupsync/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := newApp(ctx, os.Stdin, os.Stdout, os.Stderr, os.Getenv).main(os.Args[1:])
	stop()
	os.Exit(code)
}

// run runs backupsyncctl with args and returns its exit status: 0 when
// everything succeeded, 1 when a node or the cluster failed, 2 on a usage
// error.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return newApp(context.Background(), stdin, stdout, stderr, os.Getenv).main(args)
}

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

const usageLine = "usage: backupsyncctl [--url URL] [flags] COMMAND [ARGS]   (backupsyncctl help: commands and flags)"

// app is one run of the command.
type app struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	g    globals
	cmd  *command
	opts cmdOpts
}

func newApp(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) *app {
	return &app{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv,
		g: globals{timeout: 30 * time.Second}}
}

// globals are the flags every command takes, before or after its name.
type globals struct {
	url, user, password string
	insecure            bool
	fingerprint         string
	nodes               string
	json                bool
	timeout             time.Duration
	plugin              string
	api                 string
	version, help       bool
	urlFlag             bool // --url was given (pair refuses it)
}

// register adds the global flags to fs, keeping the values parsed so far.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.url, "url", g.url, "")
	fs.StringVar(&g.user, "user", g.user, "")
	fs.StringVar(&g.password, "password", g.password, "")
	fs.BoolVar(&g.insecure, "insecure", g.insecure, "")
	fs.StringVar(&g.fingerprint, "fingerprint", g.fingerprint, "")
	fs.StringVar(&g.nodes, "nodes", g.nodes, "")
	fs.BoolVar(&g.json, "json", g.json, "")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "")
	fs.StringVar(&g.plugin, "plugin", g.plugin, "")
	fs.StringVar(&g.api, "api", g.api, "")
	fs.BoolVar(&g.version, "version", g.version, "")
	fs.BoolVar(&g.help, "help", g.help, "")
	fs.BoolVar(&g.help, "h", g.help, "")
}

// cmdOpts are the flags of single commands.
type cmdOpts struct {
	lines int    // getlog
	out   string // sshkey
	pair  pairFlags
}

type pairFlags struct {
	source, dest, connection, sourceConfig, destConfig string
	sourceFingerprint, destFingerprint                 string
}

// command is one subcommand.
type command struct {
	name, args, help string
	min, max         int
	flags            func(fs *flag.FlagSet, o *cmdOpts)
	run              func(a *app, args []string) int
}

var commands []*command

func init() {
	commands = []*command{
		{name: "plugins", help: "list the cluster's plugins (showPluginList)", run: (*app).cmdPlugins},
		{name: "nodes", help: "list the cluster's nodes (getNodeList)", run: (*app).cmdNodes},
		{name: "functions", help: "list the plugin's verbs (showPluginFunctions)", run: (*app).cmdFunctions},
		{name: "install", help: "INSTALL on every node", run: verbCmd("INSTALL")},
		{name: "uninstall", help: "UNINSTALL on every node (refused while a connection is active)", run: verbCmd("UNINSTALL")},
		{name: "activate", args: "CONN", min: 1, max: 1, help: "ACTIVATE a connection on every node", run: verbCmd("ACTIVATE")},
		{name: "deactivate", args: "[CONN]", max: 1, help: "DEACTIVATE a connection, or all of them, on every node", run: verbCmd("DEACTIVATE")},
		{name: "status", args: "[CONN]", max: 1, help: "health of every connection on every node, or one connection's report (STATUS); exit 1 when any is failing", run: (*app).cmdStatus},
		{name: "getlog", args: "[--lines N]", help: "GETLOG: the last N (default 200) lines of every node's plugin log",
			flags: func(fs *flag.FlagSet, o *cmdOpts) { fs.IntVar(&o.lines, "lines", 0, "") }, run: (*app).cmdGetlog},
		{name: "sshkey", args: "CONN [-o FILE]", min: 1, max: 1,
			help: "SSHKEY: client key (client side) or host key (server side) of every node; -o writes them to FILE for upload-key",
			flags: func(fs *flag.FlagSet, o *cmdOpts) {
				fs.StringVar(&o.out, "o", "", "")
				fs.StringVar(&o.out, "out", "", "")
			}, run: (*app).cmdSSHKey},
		{name: "upload-config", args: "FILE", min: 1, max: 1, help: "UPLOAD_CONFIG of a connection config file to every node: replaces the connections it names, keeps the others; a block Name { REMOVE = true } removes one", run: (*app).cmdUploadConfig},
		{name: "upload-key", args: "FILE", min: 1, max: 1, help: "UPLOAD_KEY of a key file (sshkey -o output of the other cluster) to every node", run: (*app).cmdUploadKey},
		{name: "test", args: "CONN", min: 1, max: 1, help: "pre-flight test of a connection on every node now (TEST): both logins (through the tunnel for SSH = client), listings, a probe file written and removed at the destination; exit 1 when a node fails", run: (*app).cmdTest},
		{name: "pair", args: "--source URL --dest URL --connection NAME --source-config FILE --dest-config FILE",
			help: "pair two clusters: install, configs, keys both ways, activate (the guide's steps 4-10), idempotently; then test on the source",
			flags: func(fs *flag.FlagSet, o *cmdOpts) {
				fs.StringVar(&o.pair.source, "source", "", "")
				fs.StringVar(&o.pair.dest, "dest", "", "")
				fs.StringVar(&o.pair.connection, "connection", "", "")
				fs.StringVar(&o.pair.sourceConfig, "source-config", "", "")
				fs.StringVar(&o.pair.destConfig, "dest-config", "", "")
				fs.StringVar(&o.pair.sourceFingerprint, "source-fingerprint", "", "")
				fs.StringVar(&o.pair.destFingerprint, "dest-fingerprint", "", "")
			}, run: (*app).cmdPair},
		{name: "backups", args: "DB", min: 1, max: 1, help: "the backup sets of database DB with each node's part at the destination (synced, partial, missing); exit 1 when a node did not list", run: (*app).cmdBackups},
		{name: "hash-password", help: "read a password (stdin, or a prompt without echo) and print its bcrypt hash for the settings", run: (*app).cmdHashPassword},
		{name: "version", help: "print the version", run: func(a *app, _ []string) int {
			fmt.Fprintln(a.stdout, version.String("backupsyncctl"))
			return exitOK
		}},
		{name: "help", args: "[COMMAND]", max: 1, help: "print this help, or a command's help", run: func(a *app, args []string) int {
			if len(args) == 0 {
				a.printHelp(a.stdout)
				return exitOK
			}
			c := lookup(args[0])
			if c == nil {
				return a.usage("no command %q: backupsyncctl help lists them", args[0])
			}
			printCommandHelp(a.stdout, c)
			return exitOK
		}},
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (a *app) printHelp(w io.Writer) {
	fmt.Fprintln(w, usageLine)
	fmt.Fprintln(w, "\nCommands (each verb runs on every node, or --nodes, at once; one row per node):")
	for _, c := range commands {
		name := c.name
		if c.args != "" {
			name += " " + c.args
		}
		text := wrap(c.help, helpWidth, strings.Repeat(" ", 34))
		if len(name) > 30 {
			fmt.Fprintf(w, "  %s\n  %-30s  %s\n", name, "", text)
			continue
		}
		fmt.Fprintf(w, "  %-30s  %s\n", name, text)
	}
	fmt.Fprint(w, `
Flags (before or after the command):
  --url URL               the cluster, https://USER:PASSWORD@HOST:PORT/cluster1/
                          (env BACKUPSYNC_URL; only https://: backupsyncd serves HTTPS only)
  --user, --password      credentials, if not in the URL (env BACKUPSYNC_USER, BACKUPSYNC_PASSWORD)
  --fingerprint SHA256:…  pin the daemon's certificate (backupsyncd logs it when it starts)
  --insecure              accept any certificate (trusted networks only)
  --nodes n0011,n0012     run on these nodes only (default: getNodeList)
  --plugin NAME           plugin to call (default: the first of showPluginList)
  --api auto|plugin|confd the dialect: EXAoperation's plugin surface (callPlugin) or ConfD's
                          job_exec (backupsync_<verb> jobs, node_list); auto (default) takes the
                          plugin surface where the cluster answers it, else ConfD
                          (env BACKUPSYNC_API)
  --timeout 30s           bound on each call
  --json                  machine-readable output
  --version               print the version
pair also takes --source-fingerprint and --dest-fingerprint (default --fingerprint).
backupsyncctl help COMMAND (or COMMAND --help) prints a command's help (pair's: which file goes
where and what is tested).

Exit status: 0 when every node succeeded, 1 when a node or the cluster failed, 2 on a usage error.
`)
}

// usage reports a usage error: the message and a usage line, status 2.
func (a *app) usage(format string, args ...any) int {
	fmt.Fprintf(a.stderr, "backupsyncctl: "+format+"\n", args...)
	if a.cmd != nil {
		fmt.Fprintln(a.stderr, strings.TrimSpace("usage: backupsyncctl [flags] "+a.cmd.name+" "+a.cmd.args))
	} else {
		fmt.Fprintln(a.stderr, usageLine)
	}
	return exitUsage
}

// fail reports an error that ends the command, status 1.
func (a *app) fail(format string, args ...any) int {
	fmt.Fprintf(a.stderr, "backupsyncctl: "+format+"\n", args...)
	return exitFailed
}

func (a *app) main(args []string) int {
	fs := a.flagSet()
	a.g.register(fs)
	if err := fs.Parse(args); err != nil {
		return a.usage("%v", err)
	}
	if a.g.version {
		fmt.Fprintln(a.stdout, version.String("backupsyncctl"))
		return exitOK
	}
	if a.g.help {
		a.printHelp(a.stdout)
		return exitOK
	}
	a.g.urlFlag = a.g.url != ""
	if fs.NArg() == 0 {
		return a.usage("no command given")
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	a.cmd = lookup(name)
	if a.cmd == nil {
		return a.usage("unknown command %q", name)
	}
	fs = a.flagSet()
	a.g.register(fs)
	if a.cmd.flags != nil {
		a.cmd.flags(fs, &a.opts)
	}
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		return a.usage("%v", err)
	}
	if a.g.help {
		printCommandHelp(a.stdout, a.cmd)
		return exitOK
	}
	if a.g.version {
		fmt.Fprintln(a.stdout, version.String("backupsyncctl"))
		return exitOK
	}
	a.g.urlFlag = a.g.urlFlag || a.g.url != ""
	if len(pos) < a.cmd.min {
		return a.usage("%s needs %s", a.cmd.name, a.cmd.args)
	}
	if len(pos) > a.cmd.max {
		return a.usage("%s takes %s, not %q", a.cmd.name, orNothing(a.cmd.args), strings.Join(pos, " "))
	}
	if a.g.timeout <= 0 {
		return a.usage("--timeout must be positive, e.g. 30s")
	}
	if a.g.insecure && a.g.fingerprint != "" {
		return a.usage("--insecure and --fingerprint exclude each other: a pinned certificate is verified")
	}
	if a.g.api == "" {
		a.g.api = a.getenv("BACKUPSYNC_API")
	}
	if a.g.api != "" && !slices.Contains(ctl.APIs, a.g.api) {
		return a.usage("--api must be one of %s, not %q", strings.Join(ctl.APIs, ", "), a.g.api)
	}
	if a.g.api == ctl.APIConfD && a.g.plugin != "" {
		return a.usage("--plugin names a plugin of the plugin surface; the ConfD dialect (--api confd) has none")
	}
	return a.cmd.run(a, pos)
}

func orNothing(s string) string {
	if s == "" {
		return "no arguments"
	}
	return s
}

// flagSet returns a FlagSet that reports errors to its caller only: the
// flag package's own messages would print defaults (the password among
// them).
func (a *app) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("backupsyncctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseInterspersed parses flags anywhere among the arguments, as in
// "status Connection1 --json"; "--" ends the flags. It returns the
// positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if len(args) > 0 && args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		before := len(args)
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		// The flag package consumed a "--" if it stopped right after one.
		if consumed := before - len(rest); consumed > 0 && args[consumed-1] == "--" && !isFlagValue(fs, args, consumed-1) {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// isFlagValue reports whether args[i] is the value of the flag before it
// ("--password --" sets the password to "--").
func isFlagValue(fs *flag.FlagSet, args []string, i int) bool {
	if i == 0 {
		return false
	}
	prev := args[i-1]
	if !strings.HasPrefix(prev, "-") || strings.Contains(prev, "=") {
		return false
	}
	f := fs.Lookup(strings.TrimLeft(prev, "-"))
	if f == nil {
		return false
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return false
	}
	return true
}

// clusterOptions returns how to reach the cluster at rawURL: credentials
// from --user/--password, else the URL's, else BACKUPSYNC_USER and
// BACKUPSYNC_PASSWORD.
func (a *app) clusterOptions(rawURL, fingerprint string) ctl.Options {
	o := ctl.Options{URL: rawURL, Insecure: a.g.insecure, Fingerprint: fingerprint,
		Timeout: a.g.timeout, Plugin: a.g.plugin, API: a.g.api}
	var urlUser, urlPass string
	var urlHasPass bool
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		urlUser = u.User.Username()
		urlPass, urlHasPass = u.User.Password()
	}
	user := firstOf(a.g.user, urlUser, a.getenv("BACKUPSYNC_USER"))
	pass := a.g.password
	if pass == "" && urlHasPass && user == urlUser {
		pass = urlPass
	}
	if pass == "" {
		pass = a.getenv("BACKUPSYNC_PASSWORD")
	}
	if user != "" {
		o.User, o.Password = user, pass
	}
	return o
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// dial connects to the cluster of --url (or BACKUPSYNC_URL).
func (a *app) dial() (*ctl.Cluster, int) {
	raw := firstOf(a.g.url, a.getenv("BACKUPSYNC_URL"))
	if raw == "" {
		return nil, a.usage("no cluster URL: pass --url https://USER:PASSWORD@HOST:PORT/cluster1/ or set BACKUPSYNC_URL")
	}
	c, err := ctl.Dial(a.clusterOptions(raw, a.g.fingerprint))
	if err != nil {
		return nil, a.usage("%v", err)
	}
	return c, exitOK
}

// clusterFailed reports an error of the cluster as a whole.
func (a *app) clusterFailed(c *ctl.Cluster, err error) int {
	var unknown *ctl.UnknownNodesError
	if errors.As(err, &unknown) {
		return a.usage("--nodes: %s", ctl.Explain(err))
	}
	return a.fail("%s: %s", c.URL(), ctl.Explain(err))
}

// wantNodes is --nodes as a list.
func (a *app) wantNodes() []string {
	var out []string
	for _, n := range strings.FieldsFunc(a.g.nodes, func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
		out = append(out, n)
	}
	return out
}

func (a *app) cmdPlugins(_ []string) int {
	c, code := a.dial()
	if c == nil {
		return code
	}
	defer c.Close()
	names, err := c.Plugins(a.ctx)
	if err != nil {
		return a.clusterFailed(c, err)
	}
	return a.printList(names)
}

func (a *app) cmdNodes(_ []string) int {
	c, code := a.dial()
	if c == nil {
		return code
	}
	defer c.Close()
	names, err := c.Nodes(a.ctx)
	if err != nil {
		return a.clusterFailed(c, err)
	}
	return a.printList(names)
}

func (a *app) printList(names []string) int {
	if names == nil {
		names = []string{}
	}
	if a.g.json {
		ctl.WriteJSON(a.stdout, names)
		return exitOK
	}
	for _, n := range names {
		fmt.Fprintln(a.stdout, n)
	}
	return exitOK
}

func (a *app) cmdFunctions(_ []string) int {
	c, code := a.dial()
	if c == nil {
		return code
	}
	defer c.Close()
	fns, err := c.Functions(a.ctx)
	if err != nil {
		return a.clusterFailed(c, err)
	}
	if a.g.json {
		ctl.WriteJSON(a.stdout, fns)
		return exitOK
	}
	verbs := make([]string, 0, len(fns))
	width := len("VERB")
	for v := range fns {
		verbs = append(verbs, v)
		width = max(width, len(v))
	}
	sort.Strings(verbs)
	fmt.Fprintf(a.stdout, "%-*s  %s\n", width, "VERB", "DESCRIPTION")
	for _, v := range verbs {
		fmt.Fprintf(a.stdout, "%-*s  %s\n", width, v, fns[v])
	}
	return exitOK
}
