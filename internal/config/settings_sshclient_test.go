package config

import (
	"strings"
	"testing"
)

func TestSSHClientHostKeys(t *testing.T) {
	node := "node {\n  name = \"n0011\"\n  ip = \"127.0.0.11\"\n  index = 0\n}\n"
	for _, tc := range []struct {
		name, src, policy, err string
	}{
		{"no block", node, HostKeysAcceptNew, ""},
		{"default", node + "ssh_client {\n  port = 2022\n}\n", HostKeysAcceptNew, ""},
		{"accept-new", node + "ssh_client {\n  host_keys = \"accept-new\"\n}\n", HostKeysAcceptNew, ""},
		{"pinned", node + "ssh_client {\n  host_keys = \"pinned\"\n}\n", HostKeysPinned, ""},
		{"unknown", node + "ssh_client {\n  host_keys = \"ask\"\n}\n", "", "s.hcl:7,3: Invalid host key policy; ssh_client.host_keys \"ask\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSettings("s.hcl", []byte(tc.src))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.SSHClient.HostKeyPolicy(); got != tc.policy {
				t.Errorf("policy %q, want %q", got, tc.policy)
			}
		})
	}
	s := &Settings{Node: Node{Name: "n0011", IP: "127.0.0.11"}, SSHClient: &SSHClient{HostKeys: HostKeysPinned}}
	back, err := ParseSettings("s.hcl", s.Marshal())
	if err != nil || back.SSHClient.HostKeys != HostKeysPinned {
		t.Fatalf("round trip: %v %+v", err, back.SSHClient)
	}
}
