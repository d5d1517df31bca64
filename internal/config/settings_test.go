package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestExampleSettings(t *testing.T) {
	s, err := ReadSettings("../../testdata/settings/backupsyncd.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if s.Node != (Node{Name: "n0011", IP: "127.0.0.11", Index: 0}) {
		t.Errorf("node %+v", s.Node)
	}
	if want := filepath.Join("../../testdata/settings", "../seed/client.cfg"); s.ConnectionsFile != want {
		t.Errorf("connections_file %q, want %q (relative to the settings file)", s.ConnectionsFile, want)
	}
	if s.StateDir != "/tmp/backupsync-example-state" || s.FTPDefaultPort != 2021 {
		t.Errorf("%+v", s)
	}
	if _, err := ReadConnections(s.ConnectionsFile); err != nil {
		t.Errorf("the example's connections file: %v", err)
	}
}

func TestSettingsDefaults(t *testing.T) {
	s, err := ParseSettings("/etc/backupsync/backupsyncd.hcl", []byte(`node {
  name = "n0012"
  ip = "::1"
  index = 1
}
xmlrpc {
  listen = "127.0.0.1:4443"
  user "admin" {
    password_hash = "$2a$10$Q0UurHQnJ0BbK.3Db7ncgeVs.NP3bS4.T5ZBbehykvyvOd.mvZvfG"
  }
}
ssh_server {
  listen = "127.0.0.1:2022"
}
cluster {
  node "n0011" { url = "https://127.0.0.11:4443/" }
  node "n0012" { url = "https://127.0.0.12:4443/" }
}
`))
	if err != nil {
		t.Fatal(err)
	}
	if s.ConnectionsFile != DefaultConnectionsFile || s.StateDir != DefaultStateDir || s.FTPDefaultPort != DefaultFTPPort {
		t.Errorf("defaults: %+v", s)
	}
	if s.XMLRPC == nil || len(s.XMLRPC.Users) != 1 || s.XMLRPC.Users[0].Name != "admin" {
		t.Errorf("xmlrpc: %+v", s.XMLRPC)
	}
	if s.Cluster == nil || len(s.Cluster.Nodes) != 2 || s.Cluster.Nodes[1].Name != "n0012" {
		t.Errorf("cluster: %+v", s.Cluster)
	}
}

func TestSettingsErrors(t *testing.T) {
	node := "node {\n  name = \"n0011\"\n  ip = \"127.0.0.11\"\n  index = 0\n}\n"
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown attribute", node + "stat_dir = \"/x\"\n", `s.hcl:6,1: Unsupported argument; An argument named "stat_dir" is not expected here. Did you mean "state_dir"?`},
		{"unknown attribute in node", strings.Replace(node, "index", "idx", 1), `s.hcl:4,3: Unsupported argument`},
		{"missing node block", "state_dir = \"/x\"\n", `s.hcl:1,1: Missing node block; A node block is required.`},
		{"bad IP", strings.Replace(node, "127.0.0.11", "10.0.0.300", 1), `s.hcl:3,3: Invalid node IP`},
		{"negative index", strings.Replace(node, "index = 0", "index = -1", 1), `s.hcl:4,3: Invalid node index`},
		{"bad port", node + "ftp_default_port = 70000\n", `s.hcl:6,1: Invalid port`},
		{"wrong type", node + "ftp_default_port = \"ftp\"\n", `s.hcl:6,21: Unsuitable value type`},
		{"syntax", node + "state_dir = \n", `s.hcl:6`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSettings("s.hcl", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant …%s…", err, tc.want)
			}
		})
	}
}

// The README's settings examples must stay valid.
func TestREADMESettingsExamples(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, part := range strings.Split(string(readme), "```hcl\n")[1:] {
		body, _, _ := strings.Cut(part, "```")
		blocks = append(blocks, body)
	}
	if len(blocks) < 2 {
		t.Fatalf("want the README's two hcl examples, found %d", len(blocks))
	}
	// Indented examples inside list items: HCL does not mind.
	if _, err := ParseSettings("README.md", []byte(strings.Join(blocks, "\n"))); err != nil {
		t.Errorf("the README's settings do not parse:\n%v", err)
	}
}

// Strings that HCL would read as escapes or templates come back as written.
func TestMarshalQuotesWhatHCLWouldInterpret(t *testing.T) {
	for _, pw := range []string{`"quoted"`, `back\slash`, "${var}", "%{ if x }", "$${kept}", "tab\tnew\nline\r", "\x01\x7f", "ünïcode ✓", "$", "%", "{}", "a$"} {
		s := &Settings{Node: Node{Name: "n0011", IP: "127.0.0.11"}, Cluster: &Cluster{User: "admin", Password: pw}}
		back, err := ParseSettings("/etc/x/backupsyncd.hcl", s.Marshal())
		if err != nil {
			t.Errorf("%q: %v\n%s", pw, err, s.Marshal())
			continue
		}
		if got := back.Cluster.Password; got != pw {
			t.Errorf("%q came back as %q\n%s", pw, got, s.Marshal())
		}
	}
}

func TestMarshalRoundTrips(t *testing.T) {
	s := &Settings{
		Node:            Node{Name: "n0011", IP: "127.0.0.11", Index: 1},
		ConnectionsFile: "connections.cfg", StateDir: "state", FTPDefaultPort: 2121,
		XMLRPC:    &XMLRPC{Listen: "127.0.0.11:4443", Users: []User{{Name: "admin", PasswordHash: "$2a$04$VCMy7FymS8Pcs539NmbgLu.W7iMqn1M3/Hy99G5bDBT9J7NCUBYs."}}},
		SSHServer: &SSHServer{Listen: "127.0.0.11:2022", PassivePorts: "30000-30099"},
		SSHClient: &SSHClient{Port: 2022},
		Cluster:   &Cluster{User: "admin", Password: "pw", Nodes: []ClusterNode{{Name: "n0011", URL: "https://127.0.0.11:4443/"}}},
	}
	back, err := ParseSettings("/etc/x/backupsyncd.hcl", s.Marshal())
	if err != nil {
		t.Fatalf("%v\n%s", err, s.Marshal())
	}
	s.File, s.ConnectionsFile, s.StateDir = back.File, "/etc/x/connections.cfg", "/etc/x/state"
	if !reflect.DeepEqual(s, back) {
		t.Errorf("round trip:\n%+v\n%+v", s, back)
	}
}

func TestPassivePorts(t *testing.T) {
	node := "node {\n  name = \"n0011\"\n  ip = \"127.0.0.11\"\n  index = 0\n}\n"
	for _, tc := range []struct {
		name, src string
		lo, hi    int
		want      string // error, "" for none
	}{
		{"none", node, 0, 0, ""},
		{"empty", node + "ssh_server {\n  passive_ports = \"\"\n}\n", 0, 0, ""},
		{"range", node + "ssh_server {\n  passive_ports = \"30000-30099\"\n}\n", 30000, 30099, ""},
		{"one port", node + "ssh_server {\n  passive_ports = \"30000\"\n}\n", 30000, 30000, ""},
		{"not a range", node + "ssh_server {\n  passive_ports = \"30000:30099\"\n}\n", 0, 0, "s.hcl:7,3: Invalid passive port range; passive_ports \"30000:30099\" is not a port range"},
		{"reversed", node + "ssh_server {\n  passive_ports = \"30099-30000\"\n}\n", 0, 0, "not a port range"},
		{"privileged", node + "ssh_server {\n  passive_ports = \"20-30000\"\n}\n", 0, 0, "within 1024-65535"},
		{"too high", node + "ssh_server {\n  passive_ports = \"60000-70000\"\n}\n", 0, 0, "within 1024-65535"},
		{"the database port", node + "ssh_server {\n  passive_ports = \"8000-9000\"\n}\n", 0, 0, "include port 8563 of Exasol's database"},
		{"the default SSH port", node + "ssh_server {\n  passive_ports = \"2022-2030\"\n}\n", 0, 0, "include port 2022 of the SSH server"},
		{"the SSH port", node + "ssh_server {\n  listen = \"127.0.0.11:30050\"\n  passive_ports = \"30000-30099\"\n}\n", 0, 0, "include port 30050 of the SSH server"},
		{"the default control port", node + "ssh_server {\n  passive_ports = \"4000-5000\"\n}\n", 0, 0, "include port 4443 of the control plane"},
		{"the control port", node + "xmlrpc {\n  listen = \"127.0.0.11:30001\"\n}\nssh_server {\n  passive_ports = \"30000-30099\"\n}\n", 0, 0, "include port 30001 of the control plane"},
		{"the metrics port", node + "metrics {\n  listen = \"127.0.0.11:30002\"\n}\nssh_server {\n  passive_ports = \"30000-30099\"\n}\n", 0, 0, "include port 30002 of the metrics"},
		{"the archive FTP port", node + "ssh_server {\n  archive_ftp = \"127.0.0.11:30021\"\n  passive_ports = \"30000-30099\"\n}\n", 0, 0, "include port 30021 of the archive FTP"},
		{"the default FTP port", node + "ftp_default_port = 30021\nssh_server {\n  passive_ports = \"30000-30099\"\n}\n", 0, 0, "include port 30021 of the archive FTP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSettings("s.hcl", []byte(tc.src))
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v\nwant …%s…", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			lo, hi, err := s.SSHServer.PassiveRange()
			if err != nil || lo != tc.lo || hi != tc.hi {
				t.Fatalf("range %d-%d %v, want %d-%d", lo, hi, err, tc.lo, tc.hi)
			}
		})
	}
}
