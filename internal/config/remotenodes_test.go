package config

import (
	"strings"
	"testing"
)

// REMOTE_NODES may have fewer entries than the cluster has nodes: node i
// uses entry i mod len, and the mapping says which nodes share an entry.
func TestNodeMapping(t *testing.T) {
	c := Connection{RemoteNodes: []string{"10.0.0.1", "10.0.0.2"}}
	for _, tc := range []struct {
		name  string
		names []string
		count int
		want  []string
	}{
		{"entries only", nil, 0, []string{"node_0 → 10.0.0.1", "node_1 → 10.0.0.2"}},
		{"three nodes named", []string{"n0011", "n0012", "n0013"}, 0, []string{
			"node_0 n0011 → 10.0.0.1", "node_1 n0012 → 10.0.0.2",
			"node_2 n0013 → 10.0.0.1 (shared with node_0: REMOTE_NODES has 2 entries)"}},
		{"more nodes than names", []string{"n0011"}, 3, []string{
			"node_0 n0011 → 10.0.0.1", "node_1       → 10.0.0.2",
			"node_2       → 10.0.0.1 (shared with node_0: REMOTE_NODES has 2 entries)"}},
		{"one node", []string{"n0011"}, 1, []string{"node_0 n0011 → 10.0.0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := c.NodeMapping(tc.names, tc.count)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
	if got := (Connection{}).NodeMapping([]string{"n1"}, 1); got != nil {
		t.Errorf("no REMOTE_NODES: %q", got)
	}
	for i, want := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.2"} {
		if got := c.RemoteNode(i); got != want {
			t.Errorf("RemoteNode(%d) = %q, want %q", i, got, want)
		}
	}
}

// A misspelt SSH value is the block's one problem: the keys a guessed role
// would need or refuse are not listed before or after it.
func TestMisspeltRoleFirst(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"C1\n{\nSSH = sever\n}\n", `3:7: SSH is "sever": did you mean server? Use client, server or none`},
		{"C1\n{\nSSH = clinet\nDATABASE_NAME = db\nREMOTE_NODES = 10.0.0.1\n}\n", `3:7: SSH is "clinet": did you mean client? Use client, server or none`},
		{"C1\n{\nSSH = tunnel\n}\n", `3:7: SSH is "tunnel": use client, server or none`},
	} {
		_, err := ParseConnections("f.cfg", []byte(tc.src))
		ds, ok := err.(Diagnostics)
		if !ok || len(ds) != 1 || !strings.HasSuffix(ds[0].Error(), tc.want) {
			t.Errorf("%q: got %v, want the one line %q", tc.src, err, tc.want)
		}
	}
	// A bad value of another key is still reported beside it.
	_, err := ParseConnections("f.cfg", []byte("C1\n{\nSSH = sever\nDATABASE_NAME = a b\n}\n"))
	if ds, ok := err.(Diagnostics); !ok || len(ds) != 2 || !strings.Contains(ds[0].Message, "sever") {
		t.Errorf("two problems: %v", err)
	}
}
