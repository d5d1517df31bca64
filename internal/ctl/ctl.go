// Package ctl is what backupsyncctl does behind its command line: it runs
// the BackupSync plugin's verbs on the nodes of a cluster through the
// cluster's plugin surface (EXAoperation's XML-RPC: showPluginList,
// getNodeList, showPluginFunctions, callPlugin), on all nodes concurrently,
// renders the answers as a table or JSON, explains failures in words an
// admin can act on, and pairs two clusters as the installation guide's steps
// 4 to 10 do.
//
// The same commands run through ConfD's dialect (Options.API = APIConfD, or
// found by APIAuto where the cluster answers job_list but not the plugin
// surface): a verb on a node is job_exec('backupsync_<verb>', {'params':
// {..., 'nodes': [node]}}) and its row is that node's {'code', 'output'},
// the same code and output callPlugin answers; the nodes are node_list's.
//
// Nothing here prints a password: clients are built from URLs whose user
// information is dropped (xmlrpc.Client.URL) or masked (MaskURL).
package ctl

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"backupsync/internal/xmlrpc"
)

// Options say how to reach one cluster's plugin surface.
type Options struct {
	// URL is the cluster's control URL, e.g.
	// https://admin:pw@10.60.101.10/cluster1/; it may carry the user and
	// password.
	URL string
	// User and Password, when User is set, replace those of the URL.
	User, Password string
	// Insecure accepts any certificate; Fingerprint pins one (see
	// xmlrpc.ClientOptions). Neither: the system roots (or RootCAs) verify.
	Insecure    bool
	Fingerprint string
	RootCAs     *x509.CertPool
	// Timeout bounds each call; 0 means xmlrpc.DefaultTimeout.
	Timeout time.Duration
	// Plugin is the plugin name to call; "" means the first of
	// showPluginList.
	Plugin string
	// API is the dialect: APIPlugin, APIConfD, or APIAuto ("").
	API string
}

// Cluster is one cluster's plugin surface, reached through one daemon.
type Cluster struct {
	client *xmlrpc.Client
	opts   Options

	mu     sync.Mutex
	plugin string

	detectMu sync.Mutex // held while APIAuto finds the dialect
	api      string     // the dialect found, under mu; "" before
}

// MaxParallel bounds how many callPlugin calls Each has in flight at once.
const MaxParallel = 32

// Dial returns the Cluster behind opts.URL. It does not connect yet.
func Dial(opts Options) (*Cluster, error) {
	if opts.URL == "" {
		return nil, errors.New("no cluster URL: pass --url https://USER:PASSWORD@HOST:PORT/cluster1/ or set BACKUPSYNC_URL")
	}
	if u, err := url.Parse(opts.URL); err == nil && strings.EqualFold(u.Scheme, "http") {
		u.Scheme = "https"
		return nil, fmt.Errorf("%s: backupsyncd serves only HTTPS: use %s (the same host, port and path)",
			MaskURL(opts.URL), MaskURL(u.String()))
	}
	c, err := xmlrpc.NewClient(opts.URL, xmlrpc.ClientOptions{
		Username: opts.User, Password: opts.Password,
		Timeout:  opts.Timeout,
		Insecure: opts.Insecure, Fingerprint: opts.Fingerprint, RootCAs: opts.RootCAs,
	})
	if err != nil {
		if _, perr := url.Parse(opts.URL); perr != nil && strings.Contains(opts.URL, "@") {
			// The parser's reason may quote a piece of the password (as an
			// "invalid port"): say what is wrong without it.
			return nil, fmt.Errorf("%s: the URL does not parse; a password holding '/', '?', '#' or '@' must be "+
				"percent-encoded in the URL, or given with --password or BACKUPSYNC_PASSWORD", MaskURL(opts.URL))
		}
		return nil, fmt.Errorf("%s: %s", MaskURL(opts.URL), strings.TrimPrefix(err.Error(), "xmlrpc: "))
	}
	return &Cluster{client: c, opts: opts, plugin: opts.Plugin}, nil
}

// URL is the cluster's URL without user and password (masked further
// where a password with '/' made it parse oddly).
func (c *Cluster) URL() string { return MaskURL(c.client.URL()) }

// Close releases idle connections.
func (c *Cluster) Close() { c.client.Close() }

// Plugins returns showPluginList. The ConfD dialect has none.
func (c *Cluster) Plugins(ctx context.Context) ([]string, error) {
	if c.resolved() == APIConfD {
		return nil, errNoPluginList
	}
	var names []string
	if err := c.client.Call(ctx, "showPluginList", &names); err != nil {
		return nil, err
	}
	return names, nil
}

// Nodes returns getNodeList: the cluster's node names in order (through
// ConfD, node_list's names in the order of their ids).
func (c *Cluster) Nodes(ctx context.Context) ([]string, error) {
	if c.resolved() == APIConfD {
		return c.confdNodes(ctx)
	}
	var names []string
	if err := c.client.Call(ctx, "getNodeList", &names); err != nil {
		if c.opts.API != APIPlugin && unknownMethod(err) {
			if api, aerr := c.API(ctx); aerr == nil && api == APIConfD {
				return c.confdNodes(ctx)
			}
		}
		return nil, err
	}
	return names, nil
}

var errNoPluginList = errors.New("the ConfD dialect has no plugin list: this cluster is driven through job_exec (--api confd)")

// Plugin returns the plugin name the verbs are called on: Options.Plugin,
// or else the first name of showPluginList (asked once); "" through the
// ConfD dialect, which has no plugin names.
func (c *Cluster) Plugin(ctx context.Context) (string, error) {
	if api, err := c.API(ctx); err != nil {
		return "", err
	} else if api == APIConfD {
		return "", nil
	}
	c.mu.Lock()
	name := c.plugin
	c.mu.Unlock()
	if name != "" {
		return name, nil
	}
	names, err := c.Plugins(ctx)
	if err != nil {
		return "", err
	}
	if len(names) == 0 {
		return "", errors.New("showPluginList: the cluster has no plugin installed")
	}
	c.mu.Lock()
	c.plugin = names[0]
	c.mu.Unlock()
	return names[0], nil
}

// Functions returns showPluginFunctions of the plugin (through ConfD, the
// verbs of the backupsync_* jobs and their job_desc).
func (c *Cluster) Functions(ctx context.Context) (map[string]string, error) {
	name, err := c.Plugin(ctx)
	if err != nil {
		return nil, err
	}
	if c.resolved() == APIConfD {
		return c.confdFunctions(ctx)
	}
	var fns map[string]string
	if err := c.client.Call(ctx, "showPluginFunctions", &fns, name); err != nil {
		return nil, err
	}
	return fns, nil
}

// Prepare resolves the plugin name and the nodes to run verbs on, asking the
// cluster for both at once: the nodes are want in the cluster's order, or
// all of them when want is empty. A name in want the cluster does not have
// is an error that lists the cluster's nodes.
func (c *Cluster) Prepare(ctx context.Context, want []string) ([]string, error) {
	var (
		wg        sync.WaitGroup
		pluginErr error
	)
	wg.Go(func() { _, pluginErr = c.Plugin(ctx) })
	all, err := c.Nodes(ctx)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if pluginErr != nil {
		return nil, pluginErr
	}
	if len(want) == 0 {
		return all, nil
	}
	var unknown []string
	for _, n := range want {
		if !slices.Contains(all, n) {
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		return nil, &UnknownNodesError{Unknown: unknown, Cluster: all}
	}
	var nodes []string
	for _, n := range all {
		if slices.Contains(want, n) {
			nodes = append(nodes, n)
		}
	}
	return nodes, nil
}

// UnknownNodesError is a --nodes list naming nodes the cluster lacks.
type UnknownNodesError struct {
	Unknown, Cluster []string
}

func (e *UnknownNodesError) Error() string {
	return fmt.Sprintf("unknown node %s: the cluster has %s", strings.Join(e.Unknown, ", "), strings.Join(e.Cluster, ", "))
}

// Row is one node's answer to a verb: the code and output callPlugin
// returned, or Err when the call itself failed (a fault, an HTTP refusal,
// a timeout, a connection that could not be made).
type Row struct {
	Node   string
	Code   int
	Output string
	Err    error
}

// OK reports whether the verb succeeded on the node.
func (r Row) OK() bool { return r.Err == nil && r.Code == 0 }

// Reason is what went wrong on a failed row, in one text: the explained
// error, or the verb's output.
func (r Row) Reason() string {
	if r.Err != nil {
		return Explain(r.Err)
	}
	return r.Output
}

// Call runs verb with arg on one node (through ConfD: the job
// backupsync_<verb> with nodes = [node]).
func (c *Cluster) Call(ctx context.Context, node, verb, arg string) Row {
	row := Row{Node: node}
	name, err := c.Plugin(ctx)
	if err != nil {
		row.Err = err
		return row
	}
	if c.resolved() == APIConfD {
		return c.confdCall(ctx, node, verb, arg)
	}
	var reply []any
	if err := c.client.Call(ctx, "callPlugin", &reply, name, node, verb, arg); err != nil {
		row.Err = err
		return row
	}
	if len(reply) != 2 {
		row.Err = fmt.Errorf("callPlugin answered %d values, want [code, output]", len(reply))
		return row
	}
	code, ok1 := reply[0].(int64)
	out, ok2 := reply[1].(string)
	if !ok1 || !ok2 {
		row.Err = fmt.Errorf("callPlugin answered [%s, %s], want [int, string]", xmlrpc.TypeName(reply[0]), xmlrpc.TypeName(reply[1]))
		return row
	}
	row.Code, row.Output = int(code), out
	return row
}

// Each runs verb with arg on every node concurrently (at most MaxParallel
// calls at once) and returns the rows in the order of nodes. A node that
// fails costs only its own row.
func (c *Cluster) Each(ctx context.Context, nodes []string, verb, arg string) []Row {
	rows := make([]Row, len(nodes))
	sem := make(chan struct{}, MaxParallel)
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			rows[i] = c.Call(ctx, n, verb, arg)
		})
	}
	wg.Wait()
	return rows
}

// AllOK reports whether every row succeeded.
func AllOK(rows []Row) bool {
	for _, r := range rows {
		if !r.OK() {
			return false
		}
	}
	return true
}

// MaskURL returns raw with its password replaced by "***" (the user stays,
// so that a message says who logged in). It masks URLs that do not parse,
// or that parse oddly because the password holds '/', '?' or '#', too: when
// in doubt it masks more, since a message must never carry a password.
func MaskURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			// url escapes '*': mask with a token it keeps as it is.
			u.User = url.UserPassword(u.User.Username(), "MASKED")
			return strings.Replace(u.String(), ":MASKED@", ":***@", 1)
		}
		return u.String()
	}
	start := strings.Index(raw, "//")
	if start < 0 {
		return raw
	}
	start += 2
	at := strings.LastIndexByte(raw[start:], '@')
	if at < 0 {
		return raw
	}
	info := raw[start : start+at]
	i := strings.IndexByte(info, ':')
	if i < 0 {
		return raw
	}
	return raw[:start] + info[:i] + ":***" + raw[start+at:]
}
