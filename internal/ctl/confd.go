package ctl

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"backupsync/internal/xmlrpc"
)

// The dialects a Cluster speaks (Options.API).
const (
	// APIAuto speaks the plugin surface where the cluster answers
	// showPluginList, and ConfD's job_exec where it does not have that
	// method but answers job_list.
	APIAuto = "auto"
	// APIPlugin is EXAoperation's plugin surface: callPlugin per node.
	APIPlugin = "plugin"
	// APIConfD is ConfD's dialect: job_exec('backupsync_<verb>',
	// {'params': {..., 'nodes': [node]}}), node_list for the nodes.
	APIConfD = "confd"
)

// APIs lists the values Options.API takes ("" is APIAuto).
var APIs = []string{APIAuto, APIPlugin, APIConfD}

// JobError is a ConfD job that failed as a whole (an unknown job or
// parameter, a node not in the cluster): its result code, name and reason.
type JobError struct {
	Job  string
	Code int
	Name string
	Desc string
}

func (e *JobError) Error() string {
	return fmt.Sprintf("%s: %s (result_code %d, %s)", e.Job, e.Desc, e.Code, e.Name)
}

// API returns the dialect the cluster is driven through: Options.API, or
// for APIAuto the one the cluster answers (asked once; a plugin surface
// is preferred where a daemon answers both).
func (c *Cluster) API(ctx context.Context) (string, error) {
	switch c.opts.API {
	case APIPlugin, APIConfD:
		return c.opts.API, nil
	case "", APIAuto:
	default:
		return "", fmt.Errorf("unknown API %q: use one of %s", c.opts.API, strings.Join(APIs, ", "))
	}
	c.detectMu.Lock()
	defer c.detectMu.Unlock()
	if api := c.resolved(); api != "" {
		return api, nil
	}
	var names []string
	err := c.client.Call(ctx, "showPluginList", &names)
	if err == nil {
		c.mu.Lock()
		if c.plugin == "" && len(names) > 0 {
			c.plugin = names[0]
		}
		c.api = APIPlugin
		c.mu.Unlock()
		return APIPlugin, nil
	}
	if !unknownMethod(err) {
		return "", err
	}
	var reply any
	if jerr := c.client.Call(ctx, "job_list", &reply); jerr == nil {
		if m, ok := reply.(map[string]any); ok && m["result_code"] == int64(0) {
			c.mu.Lock()
			c.api = APIConfD
			c.mu.Unlock()
			return APIConfD, nil
		}
	}
	return "", fmt.Errorf("the cluster answers neither the plugin surface (showPluginList: %s) nor ConfD's job_list", Explain(err))
}

// resolved is the dialect once it is known, "" before (also while API is
// finding it: the caller goes on as with the plugin surface).
func (c *Cluster) resolved() string {
	switch c.opts.API {
	case APIPlugin, APIConfD:
		return c.opts.API
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.api
}

// unknownMethod reports whether err says the server lacks the method
// called: what a ConfD-only server answers to the plugin surface.
func unknownMethod(err error) bool {
	var fault *xmlrpc.Fault
	var httpErr *xmlrpc.HTTPError
	switch {
	case errors.As(err, &fault):
		return fault.Code == xmlrpc.CodeMethodNotFound || strings.Contains(strings.ToLower(fault.String), "unknown method") ||
			strings.Contains(strings.ToLower(fault.String), "not supported")
	case errors.As(err, &httpErr):
		return httpErr.StatusCode == 404 || httpErr.StatusCode == 405 || httpErr.StatusCode == 501
	}
	return false
}

// job runs job_exec(name, {'params': params}) and returns its result dict,
// checked for the fields every result has.
func (c *Cluster) job(ctx context.Context, name string, params map[string]any) (map[string]any, error) {
	var reply any
	var err error
	if params == nil {
		err = c.client.Call(ctx, "job_exec", &reply, name)
	} else {
		err = c.client.Call(ctx, "job_exec", &reply, name, map[string]any{"params": params})
	}
	if err != nil {
		return nil, err
	}
	m, ok := reply.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("job_exec(%s) answered %s, want a result dict", name, xmlrpc.TypeName(reply))
	}
	if _, ok := m["result_code"].(int64); !ok {
		return nil, fmt.Errorf("job_exec(%s) answered a dict without result_code", name)
	}
	return m, nil
}

func jobError(name string, m map[string]any) *JobError {
	code, _ := m["result_code"].(int64)
	rn, _ := m["result_name"].(string)
	desc, _ := m["result_desc"].(string)
	return &JobError{Job: name, Code: int(code), Name: rn, Desc: desc}
}

// confdNodes returns the cluster's node names from node_list, ordered by
// their numeric ConfD ids (the order of the cluster settings where names
// end in increasing numbers, as n0011, n0012).
func (c *Cluster) confdNodes(ctx context.Context) ([]string, error) {
	m, err := c.job(ctx, "node_list", nil)
	if err != nil {
		return nil, err
	}
	if m["result_code"] != int64(0) {
		return nil, jobError("node_list", m)
	}
	out, _ := m["result_output"].(map[string]any)
	type node struct {
		id   string
		name string
	}
	var nodes []node
	for id, v := range out {
		n, _ := v.(map[string]any)
		name, _ := n["name"].(string)
		if name == "" {
			return nil, fmt.Errorf("node_list: node %s has no name", id)
		}
		nodes = append(nodes, node{id, name})
	}
	slices.SortFunc(nodes, func(a, b node) int {
		ai, aerr := strconv.Atoi(a.id)
		bi, berr := strconv.Atoi(b.id)
		if aerr == nil && berr == nil {
			return cmp.Compare(ai, bi)
		}
		return cmp.Compare(a.id, b.id)
	})
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.name
	}
	return names, nil
}

// verbJob is the ConfD job of a plugin verb and its parameters for arg.
func verbJob(verb, arg string) (string, map[string]any) {
	verb = strings.ToUpper(strings.TrimSpace(verb))
	params := map[string]any{}
	switch verb {
	case "UPLOAD_CONFIG":
		params["config"] = arg
	case "UPLOAD_KEY":
		params["key"] = arg
	case "GETLOG":
		if n, err := strconv.Atoi(arg); err == nil {
			params["lines"] = n
		} else if arg != "" {
			params["lines"] = arg
		}
	case "SSHKEY", "ACTIVATE":
		params["connection"] = arg
	case "INSTALL", "UNINSTALL":
	default: // STATUS, DEACTIVATE, and anything the server will refuse
		if arg != "" {
			params["connection"] = arg
		}
	}
	return "backupsync_" + strings.ToLower(verb), params
}

// confdCall runs verb on node through job_exec.
func (c *Cluster) confdCall(ctx context.Context, node, verb, arg string) Row {
	row := Row{Node: node}
	name, params := verbJob(verb, arg)
	params["nodes"] = []string{node}
	m, err := c.job(ctx, name, params)
	if err != nil {
		row.Err = err
		return row
	}
	out, _ := m["result_output"].(map[string]any)
	r, ok := out[node].(map[string]any)
	if !ok {
		row.Err = jobError(name, m)
		if m["result_code"] == int64(0) {
			row.Err = fmt.Errorf("%s: result_output has no entry for %s", name, node)
		}
		return row
	}
	code, ok1 := r["code"].(int64)
	output, ok2 := r["output"].(string)
	if !ok1 || !ok2 {
		row.Err = fmt.Errorf("%s: the entry of %s is not {'code': int, 'output': str}", name, node)
		return row
	}
	row.Code, row.Output = int(code), output
	return row
}

// confdFunctions returns the verbs of the backupsync_* jobs with their
// descriptions, as showPluginFunctions would.
func (c *Cluster) confdFunctions(ctx context.Context) (map[string]string, error) {
	list, err := c.method(ctx, "job_list")
	if err != nil {
		return nil, err
	}
	names, _ := list["result_output"].([]any)
	fns := map[string]string{}
	for _, n := range names {
		name, _ := n.(string)
		verb, ok := strings.CutPrefix(name, "backupsync_")
		if !ok {
			continue
		}
		d, err := c.method(ctx, "job_desc", name)
		if err != nil {
			return nil, err
		}
		desc, _ := d["result_output"].(string)
		fns[strings.ToUpper(verb)] = desc
	}
	return fns, nil
}

// method calls job_list, job_help or job_desc and returns the result dict
// of a successful call.
func (c *Cluster) method(ctx context.Context, method string, args ...any) (map[string]any, error) {
	var reply any
	if err := c.client.Call(ctx, method, &reply, args...); err != nil {
		return nil, err
	}
	m, ok := reply.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s answered %s, want a result dict", method, xmlrpc.TypeName(reply))
	}
	if m["result_code"] != int64(0) {
		return nil, jobError(method, m)
	}
	return m, nil
}
