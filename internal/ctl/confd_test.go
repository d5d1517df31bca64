package ctl

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"backupsync/internal/xmlrpc"
)

// fakeConfD serves ConfD's dialect only (no plugin surface) for nodes
// n0011, n0012, n0009 (ids 11, 12, 9); each verb job answers "VERB NODE
// ARGS" with code 0, or 256 on n0012 for ACTIVATE. It records the params.
func fakeConfD(t *testing.T, seen *[]map[string]any, mu *sync.Mutex) string {
	t.Helper()
	srv := &xmlrpc.Server{}
	ok := func(out any) map[string]any {
		return map[string]any{"result_code": 0, "result_name": "OK", "result_desc": "Success", "result_jobid": "11.1", "result_output": out}
	}
	srv.Register("job_list", func(context.Context, []any) (any, error) {
		return ok([]string{"backupsync_activate", "backupsync_status", "node_list"}), nil
	})
	srv.Register("job_desc", func(_ context.Context, p []any) (any, error) {
		name, _ := xmlrpc.Arg[string](p, 0)
		return ok("desc of " + name), nil
	})
	srv.Register("job_exec", func(_ context.Context, p []any) (any, error) {
		name, _ := xmlrpc.Arg[string](p, 0)
		var params map[string]any
		if len(p) > 1 {
			opts, _ := p[1].(map[string]any)
			params, _ = opts["params"].(map[string]any)
		}
		mu.Lock()
		*seen = append(*seen, params)
		mu.Unlock()
		if name == "node_list" {
			return ok(map[string]any{
				"12": map[string]any{"id": "12", "name": "n0012"},
				"9":  map[string]any{"id": "9", "name": "n0009"},
				"11": map[string]any{"id": "11", "name": "n0011"},
			}), nil
		}
		verb, found := strings.CutPrefix(name, "backupsync_")
		if !found || (verb != "status" && verb != "activate" && verb != "getlog") {
			return map[string]any{"result_code": 3, "result_name": "UNKNOWN_JOB", "result_desc": "unknown job \"" + name + "\"", "result_jobid": "11.2"}, nil
		}
		nodes, _ := params["nodes"].([]any)
		node, _ := nodes[0].(string)
		if node == "n0099" {
			return map[string]any{"result_code": 2, "result_name": "INVALID_PARAMETER", "result_desc": "unknown node 'n0099' in parameter 'nodes'", "result_jobid": "11.3"}, nil
		}
		code := 0
		if verb == "activate" && node == "n0012" {
			code = 256
		}
		var args []string
		for _, k := range []string{"connection", "lines"} {
			if v, ok := params[k]; ok {
				args = append(args, fmt.Sprintf("%s=%v", k, v))
			}
		}
		r := ok(map[string]any{node: map[string]any{"code": code, "output": strings.ToUpper(verb) + " " + node + " " + strings.Join(args, ",")}})
		if code != 0 {
			r["result_code"], r["result_name"], r["result_desc"] = 1, "ERROR", "failed on "+node
		}
		return r, nil
	})
	ln, err := net.Listen("tcp", "127.0.10.31:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	hs.Listener = ln
	hs.StartTLS()
	t.Cleanup(hs.Close)
	return "https://u:p@" + ln.Addr().String() + "/"
}

func TestConfDDialect(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []map[string]any
	)
	url := fakeConfD(t, &seen, &mu)
	ctx := context.Background()
	for _, api := range []string{"", APIConfD} {
		c, err := Dial(Options{URL: url, Insecure: true, API: api})
		if err != nil {
			t.Fatal(err)
		}
		nodes, err := c.Prepare(ctx, nil)
		if err != nil || strings.Join(nodes, ",") != "n0009,n0011,n0012" {
			t.Fatalf("api %q: Prepare = %v, %v; want node_list's names by id", api, nodes, err)
		}
		if got, _ := c.API(ctx); got != APIConfD {
			t.Errorf("api %q: detected %q", api, got)
		}
		rows := c.Each(ctx, []string{"n0011", "n0012", "n0099"}, "ACTIVATE", "C1")
		var got []string
		for _, r := range rows {
			got = append(got, r.Node+"="+codeText(r)+":"+r.Reason())
		}
		want := "n0011=0:ACTIVATE n0011 connection=C1|n0012=256:ACTIVATE n0012 connection=C1|n0099=-:unknown node 'n0099' in parameter 'nodes'"
		if strings.Join(got, "|") != want {
			t.Errorf("api %q: rows\n%s\nwant\n%s", api, strings.Join(got, "|"), want)
		}
		if r := c.Call(ctx, "n0011", "STATUS", ""); r.Err != nil || r.Output != "STATUS n0011 " {
			t.Errorf("STATUS without a connection: %+v", r)
		}
		if r := c.Call(ctx, "n0011", "GETLOG", "20"); r.Err != nil || r.Output != "GETLOG n0011 lines=20" {
			t.Errorf("GETLOG 20: %+v", r)
		}
		if r := c.Call(ctx, "n0011", "REBOOT", ""); r.Err == nil || Explain(r.Err) != `unknown job "backupsync_reboot"` {
			t.Errorf("unknown verb: %+v", r)
		}
		fns, err := c.Functions(ctx)
		if err != nil || len(fns) != 2 || fns["STATUS"] != "desc of backupsync_status" {
			t.Errorf("Functions = %v, %v", fns, err)
		}
		if _, err := c.Plugins(ctx); err == nil || !strings.Contains(err.Error(), "no plugin list") {
			t.Errorf("Plugins through ConfD: %v", err)
		}
		c.Close()
	}

	// --api plugin does not fall back.
	c, _ := Dial(Options{URL: url, Insecure: true, API: APIPlugin})
	if _, err := c.Prepare(ctx, nil); err == nil || !strings.Contains(err.Error(), "unknown method") {
		t.Errorf("--api plugin against ConfD: %v", err)
	}
}
