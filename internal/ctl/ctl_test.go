package ctl

// These tests use a fake plugin surface (an xmlrpc.Server) on 127.0.10.31;
// cmd/backupsyncctl tests the real daemons.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"backupsync/internal/xmlrpc"
)

func TestMaskURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://admin:pw@10.0.0.1/cluster1/":      "https://admin:***@10.0.0.1/cluster1/",
		"https://admin@10.0.0.1/cluster1/":         "https://admin@10.0.0.1/cluster1/",
		"https://10.0.0.1:4443/cluster1/":          "https://10.0.0.1:4443/cluster1/",
		"https://admin:p/w@10.0.0.1/":              "https://admin:***@10.0.0.1/",
		"https://admin:12/x@10.0.0.1/":             "https://admin:***@10.0.0.1/", // parses, oddly
		"https://admin:p%40w@10.0.0.1:4443/c/":     "https://admin:***@10.0.0.1:4443/c/",
		"https://admin:p@w@10.0.0.1:4443/cluster1": "https://admin:***@10.0.0.1:4443/cluster1",
		"not a url": "not a url",
	} {
		if got := MaskURL(in); got != want {
			t.Errorf("MaskURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	var b bytes.Buffer
	WriteTable(&b, []Row{
		{Node: "n0011", Output: "activated"},
		{Node: "n0012", Code: 256, Output: "connection: C1\nrole: client\r\n\x1b[2J"},
		{Node: "n0013", Err: &xmlrpc.Fault{Code: -1, String: "Unexpected Zope exception: unknown node"}},
		{Node: "n00144", Output: ""},
	})
	want := "NODE    CODE  OUTPUT\n" +
		"n0011   0     activated\n" +
		"n0012   256   connection: C1\n" +
		"              role: client\n" +
		"              \uFFFD[2J\n" +
		"n0013   -     error: unknown node\n" +
		"n00144  0\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	rows := JSONRows([]Row{{Node: "a", Code: 256, Output: "x"}, {Node: "b", Err: errors.New("boom")}})
	if rows[0].OK || *rows[0].Code != 256 || rows[1].Code != nil || rows[1].Error != "boom" {
		t.Errorf("JSON rows: %+v", rows)
	}
}

// fakeSurface serves a plugin surface of nodes whose STATUS takes delay
// (per node) and answers "ok NODE"; n0013 answers code 256.
func fakeSurface(t *testing.T, delay map[string]time.Duration, inFlight *atomic.Int32, peak *atomic.Int32) string {
	t.Helper()
	srv := &xmlrpc.Server{}
	srv.Register("showPluginList", func(context.Context, []any) (any, error) {
		return []string{"Administration.BackupSync-9.9"}, nil
	})
	srv.Register("getNodeList", func(context.Context, []any) (any, error) {
		return []string{"n0011", "n0012", "n0013"}, nil
	})
	srv.Register("callPlugin", func(ctx context.Context, p []any) (any, error) {
		name, _ := xmlrpc.Arg[string](p, 0)
		node, _ := xmlrpc.Arg[string](p, 1)
		if name != "Administration.BackupSync-9.9" {
			return nil, xmlrpc.ZopeFault("unknown plugin %q", name)
		}
		if node == "n0099" {
			return nil, xmlrpc.ZopeFault("unknown node %q", node)
		}
		n := inFlight.Add(1)
		for {
			if p := peak.Load(); n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(delay[node])
		inFlight.Add(-1)
		if node == "n0013" {
			return []any{256, "failed on " + node}, nil
		}
		return []any{0, "ok " + node}, nil
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

func TestEach(t *testing.T) {
	var inFlight, peak atomic.Int32
	url := fakeSurface(t, map[string]time.Duration{"n0011": 300 * time.Millisecond, "n0012": 10 * time.Millisecond, "n0013": 200 * time.Millisecond}, &inFlight, &peak)
	c, err := Dial(Options{URL: url, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	nodes, err := c.Prepare(ctx, []string{"n0013", "n0011"})
	if err != nil || strings.Join(nodes, ",") != "n0011,n0013" {
		t.Fatalf("Prepare = %v, %v; want the cluster's order", nodes, err)
	}
	_, err = c.Prepare(ctx, []string{"n0011", "n0099"})
	if err == nil || Explain(err) != "unknown node n0099: the cluster has n0011, n0012, n0013" {
		t.Fatalf("Prepare of an unknown node: %v", err)
	}
	rows := c.Each(ctx, []string{"n0011", "n0012", "n0013", "n0099"}, "STATUS", "")
	if peak.Load() < 2 {
		t.Errorf("at most %d calls in flight: not concurrent", peak.Load())
	}
	got := []string{}
	for _, r := range rows {
		got = append(got, r.Node+"="+codeText(r)+":"+r.Reason())
	}
	want := "n0011=0:ok n0011|n0012=0:ok n0012|n0013=256:failed on n0013|n0099=-:unknown node \"n0099\""
	if strings.Join(got, "|") != want {
		t.Errorf("rows %s\nwant %s", strings.Join(got, "|"), want)
	}
	if AllOK(rows) || !AllOK(rows[:2]) {
		t.Error("AllOK")
	}

	// --plugin is taken as given: a wrong one is the server's fault.
	c2, _ := Dial(Options{URL: url, Insecure: true, Plugin: "Administration.Other"})
	if r := c2.Call(ctx, "n0011", "STATUS", ""); r.OK() || Explain(r.Err) != `unknown plugin "Administration.Other"` {
		t.Errorf("wrong plugin: %+v", r)
	}
}

func TestExplain(t *testing.T) {
	ctx := context.Background()
	// 401.
	ln, err := net.Listen("tcp", "127.0.10.31:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	hs.Listener = ln
	hs.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	hs.StartTLS()
	defer hs.Close()
	c, _ := Dial(Options{URL: "https://u:secret-pw@" + ln.Addr().String() + "/", Insecure: true})
	_, err = c.Nodes(ctx)
	if msg := Explain(err); !strings.HasPrefix(msg, "wrong user or password") || strings.Contains(msg, "secret-pw") {
		t.Errorf("401: %q", msg)
	}
	// An unverified certificate says how to pin it.
	c, _ = Dial(Options{URL: "https://" + ln.Addr().String() + "/"})
	_, err = c.Nodes(ctx)
	fp := xmlrpc.Fingerprint(hs.Certificate().Raw)
	if msg := Explain(err); !strings.Contains(msg, "not trusted") || !strings.Contains(msg, "--fingerprint "+fp) {
		t.Errorf("unverified: %q", msg)
	}
	// A wrong pin names what the server presented.
	c, _ = Dial(Options{URL: "https://" + ln.Addr().String() + "/", Fingerprint: "SHA256:" + strings.Repeat("A", 43)})
	_, err = c.Nodes(ctx)
	if msg := Explain(err); !strings.Contains(msg, "does not match --fingerprint (it presented "+fp+")") {
		t.Errorf("wrong pin: %q", msg)
	}
	// HTTPS to a plain HTTP server.
	ln2, err := net.Listen("tcp", "127.0.10.31:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := httptest.NewUnstartedServer(http.NotFoundHandler())
	plain.Listener = ln2
	plain.Start()
	defer plain.Close()
	c, _ = Dial(Options{URL: "https://" + ln2.Addr().String() + "/", Insecure: true})
	_, err = c.Nodes(ctx)
	if msg := Explain(err); !strings.Contains(msg, "does not speak HTTPS") && !strings.Contains(msg, "HTTP response to HTTPS client") {
		t.Errorf("plain HTTP: %q", msg)
	}
	// An http:// URL says to use https://, before it sends anything.
	if _, err := Dial(Options{URL: "http://admin:pw-http@" + ln2.Addr().String() + "/cluster1/"}); err == nil ||
		!strings.Contains(err.Error(), "backupsyncd serves only HTTPS: use https://admin:***@"+ln2.Addr().String()+"/cluster1/") ||
		strings.Contains(err.Error(), "pw-http") {
		t.Errorf("http://: %v", err)
	}
	// Nobody listening.
	addr := ln2.Addr().String()
	plain.Close()
	c, _ = Dial(Options{URL: "https://" + addr + "/", Insecure: true, Timeout: 2 * time.Second})
	_, err = c.Nodes(ctx)
	if msg := Explain(err); !strings.Contains(msg, "cannot connect to "+addr+" (connection refused)") {
		t.Errorf("refused: %q", msg)
	}
	// A URL that does not parse keeps its password out of the message.
	if _, err := Dial(Options{URL: "https://admin:pw-77/x@127.0.10.31:1/"}); err == nil || strings.Contains(err.Error(), "pw-77") {
		t.Errorf("odd URL: %v", err)
	}
}

// fakeCluster serves a plugin surface of nodes whose callPlugin answers
// verb(node, VERB, arg); it records the verbs called.
func fakeCluster(t *testing.T, nodes []string, verb func(node, v, arg string) (int, string), calls *[]string, mu *sync.Mutex) *Cluster {
	t.Helper()
	srv := &xmlrpc.Server{}
	srv.Register("showPluginList", func(context.Context, []any) (any, error) {
		return []string{"Administration.BackupSync-9.9"}, nil
	})
	srv.Register("getNodeList", func(context.Context, []any) (any, error) { return nodes, nil })
	srv.Register("callPlugin", func(ctx context.Context, p []any) (any, error) {
		node, _ := xmlrpc.Arg[string](p, 1)
		v, _ := xmlrpc.Arg[string](p, 2)
		arg, _ := xmlrpc.Arg[string](p, 3)
		mu.Lock()
		*calls = append(*calls, node+" "+v)
		mu.Unlock()
		code, out := verb(node, v, arg)
		return []any{code, out}, nil
	})
	ln, err := net.Listen("tcp", "127.0.10.31:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	hs.Listener = ln
	hs.StartTLS()
	t.Cleanup(hs.Close)
	c, err := Dial(Options{URL: "https://" + ln.Addr().String() + "/", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPairStops checks that Pair stops at the first step that fails on a
// node, says where and what, and calls nothing after it.
func TestPairStops(t *testing.T) {
	var (
		mu    sync.Mutex
		calls []string
	)
	ok := func(node, v, arg string) (int, string) {
		if v == "STATUS" {
			return 256, "no connection \"C1\": no configuration uploaded yet (UPLOAD_CONFIG)"
		}
		return 0, "installed"
	}
	src := fakeCluster(t, []string{"n0011", "n0012"}, ok, &calls, &mu)
	dst := fakeCluster(t, []string{"n0021", "n0022"}, func(node, v, arg string) (int, string) {
		if v == "INSTALL" && node == "n0022" {
			return 256, "install: no space left on device"
		}
		return ok(node, v, arg)
	}, &calls, &mu)
	var progress bytes.Buffer
	steps, err := Pair(context.Background(), PairSpec{
		Source: src, Dest: dst, Connection: "c1",
		SourceConfig: File{"client.cfg", []byte("C1\n{\nDATABASE_NAME = db\nSTART_CYCLE = 0 * * * *\nLOCAL_URL = ftp://u:secret@%s/v1\nREMOTE_URL = ftp://u:secret@%s/v2\nREMOTE_NODES = 10.0.0.1\nSSH = client\n}\n")},
		DestConfig:   File{"server.cfg", []byte("C1\n{\nSSH = server\n}\n")},
		Progress:     &progress,
	})
	var pe *PairError
	if !errors.As(err, &pe) || pe.Step.Step != 4 || pe.Step.Side != "destination" {
		t.Fatalf("Pair = %v, want a PairError at step 4 on the destination", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "pair stopped at step 4 (install the plugin on the destination): n0022: install: no space left on device\nFix that and run the same pair command again") {
		t.Errorf("message:\n%s", msg)
	}
	if len(steps) != 6 || strings.Contains(progress.String(), "secret") {
		t.Errorf("%d steps; progress:\n%s", len(steps), progress.String())
	}
	for _, c := range calls {
		if !strings.HasSuffix(c, " STATUS") && !strings.HasSuffix(c, " INSTALL") {
			t.Errorf("Pair went on after the failed step: %s", c)
		}
	}
	// The configs spell the connection C1; --connection c1 finds it, and
	// the steps use the configs' spelling.
	if !strings.Contains(progress.String(), "C1: SSH = client") {
		t.Errorf("progress:\n%s", progress.String())
	}
}
