package plugin

import (
	"strings"
	"testing"

	"backupsync/internal/config"
)

// UPLOAD_CONFIG's reply says which remote node this node's part goes to,
// REMOTE_NODES wrapping around when it has fewer entries than the cluster
// has nodes.
func TestRemoteNodeLines(t *testing.T) {
	conns, err := config.ParseConnections("c.cfg", []byte("Connection1\n{\nDATABASE_NAME = db\nSTART_CYCLE = 0 * * * *\n"+
		"LOCAL_URL = ftp://u:pw@%s/v1\nREMOTE_URL = ftp://u:pw@%s/v2\nREMOTE_NODES = 10.0.0.21; 10.0.0.22\nSSH = client\n}\n"+
		"Connection2\n{\nSSH = server\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cluster := &config.Cluster{Nodes: []config.ClusterNode{{Name: "n0011"}, {Name: "n0012"}, {Name: "n0013"}, {Name: "n0014"}, {Name: "n0015"}}}
	for _, tc := range []struct {
		index   int
		cluster *config.Cluster
		want    string
	}{
		{0, nil, "Connection1: this node (nX, node_0) copies to 10.0.0.21, REMOTE_NODES entry 1 of 2"},
		{1, cluster, "Connection1: this node (nX, node_1) copies to 10.0.0.22, REMOTE_NODES entry 2 of 2 (shared with node_3 n0014: fewer entries than nodes)"},
		{0, cluster, "Connection1: this node (nX, node_0) copies to 10.0.0.21, REMOTE_NODES entry 1 of 2 (shared with node_2 n0013 and node_4 n0015: fewer entries than nodes)"},
		{2, nil, "Connection1: this node (nX, node_2) copies to 10.0.0.21, REMOTE_NODES entry 1 of 2 (fewer entries than nodes: node_2 shares it with node_0)"},
	} {
		s := &config.Settings{Node: config.Node{Name: "nX", Index: tc.index}, Cluster: tc.cluster}
		if got := strings.Join(remoteNodeLines(s, conns), "\n"); got != tc.want {
			t.Errorf("index %d:\n got %s\nwant %s", tc.index, got, tc.want)
		}
	}
	// Through the verb.
	n := newNode(t, "n0013")
	n.Settings.Node.Index = 2
	expect(t, call(t, n, "INSTALL", ""), CodeOK, "")
	expect(t, call(t, n, "UPLOAD_CONFIG", b64("Connection1\n{\nDATABASE_NAME = db\nSTART_CYCLE = 0 * * * *\n"+
		"LOCAL_URL = ftp://u:pw@%s/v1\nREMOTE_URL = ftp://u:pw@%s/v2\nREMOTE_NODES = 10.0.0.21; 10.0.0.22\nSSH = client\n}\n")), CodeOK,
		"\nConnection1: this node (n0013, node_2) copies to 10.0.0.21, REMOTE_NODES entry 1 of 2 (fewer entries than nodes: node_2 shares it with node_0)")
	// A misspelt SSH value is the one problem UPLOAD_CONFIG reports.
	r := call(t, n, "UPLOAD_CONFIG", b64("Connection1\n{\nSSH = sever\n}\n"))
	if want := "configuration not changed: 3:7: SSH is \"sever\": did you mean server? Use client, server or none"; r.Code != CodeFailed || r.Output != want {
		t.Errorf("SSH = sever: [%d, %q], want %q alone", r.Code, r.Output, want)
	}
}
