package ctl

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"backupsync/internal/xmlrpc"
)

// backupsyncCluster serves a plugin surface whose STATUS says "not
// configured" and whose INSTALL fails (so that Pair stops before changing
// anything), and ConfD's node_list with each node's private_ip.
func backupsyncCluster(t *testing.T, nodes, ips []string) *Cluster {
	t.Helper()
	srv := &xmlrpc.Server{}
	srv.Register("showPluginList", func(context.Context, []any) (any, error) { return []string{"Administration.BackupSync-9.9"}, nil })
	srv.Register("getNodeList", func(context.Context, []any) (any, error) { return nodes, nil })
	srv.Register("callPlugin", func(ctx context.Context, p []any) (any, error) {
		if v, _ := xmlrpc.Arg[string](p, 2); v == "STATUS" {
			return []any{256, "no connection \"C1\""}, nil
		}
		return []any{256, "install: read-only file system"}, nil
	})
	srv.Register("job_exec", func(ctx context.Context, p []any) (any, error) {
		out := map[string]any{}
		for i, n := range nodes {
			id := string(rune('1'+i)) + "1"
			out[id] = map[string]any{"id": id, "name": n, "private_ip": ips[i]}
		}
		return map[string]any{"result_code": 0, "result_name": "OK", "result_desc": "Success", "result_jobid": "1.1", "result_output": out}, nil
	})
	ln, err := net.Listen("tcp", "127.0.10.33:0")
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

// Pair says which source node goes to which REMOTE_NODES entry (fewer
// entries than source nodes is legal: nodes share) and flags an entry that
// is not a node of the destination, before it changes anything.
func TestPairRemoteNodes(t *testing.T) {
	src := backupsyncCluster(t, []string{"n0011", "n0012", "n0013"}, []string{"10.0.0.11", "10.0.0.12", "10.0.0.13"})
	dst := backupsyncCluster(t, []string{"n0021", "n0022"}, []string{"10.0.0.21", "10.0.0.22"})
	for _, tc := range []struct {
		name, remote string
		want         []string
		not          string
	}{
		{"fewer entries", "10.0.0.21; 10.0.0.22", []string{
			"\n        REMOTE_NODES of C1, which source node goes to which remote node: 3 source node(s), 2 entries (fewer entries than nodes: nodes share an entry, the others are their failover)\n",
			"\n          node_0 n0011 → 10.0.0.21 (n0021)\n",
			"\n          node_1 n0012 → 10.0.0.22 (n0022)\n",
			"\n          node_2 n0013 → 10.0.0.21 (n0021) (shared with node_0: REMOTE_NODES has 2 entries)\n",
		}, "warning"},
		{"names", "n0021; 10.0.0.22; n0022", []string{"node_0 n0011 → n0021\n", "node_1 n0012 → 10.0.0.22 (n0022)\n", "node_2 n0013 → n0022\n"}, "warning"},
		{"a stranger", "10.0.0.21; 10.0.0.99", []string{
			"node_1 n0012 → 10.0.0.99\n",
			"warning: REMOTE_NODES entry 10.0.0.99 is not a node of the destination cluster (n0021 10.0.0.21, n0022 10.0.0.22): " +
				"the source's tunnels go there; correct REMOTE_NODES in client.cfg unless that host is the destination on another network",
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var progress bytes.Buffer
			_, err := Pair(context.Background(), PairSpec{Source: src, Dest: dst, Connection: "C1", Progress: &progress,
				SourceConfig: File{"client.cfg", []byte("C1\n{\nDATABASE_NAME = db\nSTART_CYCLE = 0 * * * *\nLOCAL_URL = ftp://u:pw@%s/v1\n" +
					"REMOTE_URL = ftp://u:pw@%s/v2\nREMOTE_NODES = " + tc.remote + "\nSSH = client\n}\n")},
				DestConfig: File{"server.cfg", []byte("C1\n{\nSSH = server\n}\n")}})
			var pe *PairError
			if !errors.As(err, &pe) || pe.Step.Step != 4 {
				t.Fatalf("Pair = %v, want it to stop at INSTALL", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(progress.String(), w) {
					t.Errorf("progress lacks %q:\n%s", w, progress.String())
				}
			}
			if tc.not != "" && strings.Contains(progress.String(), tc.not) {
				t.Errorf("progress has %q:\n%s", tc.not, progress.String())
			}
		})
	}
}
