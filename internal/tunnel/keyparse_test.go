package tunnel

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// wrapLine cuts s into lines of w characters, as a terminal prints a long
// line.
func wrapLine(s string, w int) string {
	var b strings.Builder
	for len(s) > w {
		b.WriteString(s[:w] + "\n")
		s = s[w:]
	}
	b.WriteString(s)
	return b.String()
}

func rsaLine(t testing.TB, comment string) (string, ssh.PublicKey) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return publicLine(pub, comment), pub
}

func edLine(t testing.TB, comment string) (string, ssh.PublicKey) {
	t.Helper()
	p, _, _ := ed25519.GenerateKey(rand.Reader)
	pub, err := ssh.NewPublicKey(p)
	if err != nil {
		t.Fatal(err)
	}
	line := publicLine(pub, comment)
	if comment == "" {
		line = strings.TrimSpace(line)
	}
	return line, pub
}

// TestParseKeyLinesGuideForms: the forms the plugin guide's SSHKEY output
// takes once an admin pasted it into a file: RSA with the original's
// root@n0011… comment, wrapped the way a terminal prints it, anywhere.
func TestParseKeyLinesGuideForms(t *testing.T) {
	guide, guideKey := rsaLine(t, "root@n0011.c0001.exacluster.local")
	ours, oursKey := edLine(t, "backupsync:Connection1@n0012")
	bare, bareKey := edLine(t, "")
	laptop, laptopKey := edLine(t, "admin@laptop")
	f := strings.Fields(guide)
	type want struct {
		role       Role
		conn, node string
		key        ssh.PublicKey
	}
	guideWant := want{RoleUnbound, "", "n0011", guideKey}
	cases := []struct {
		name string
		text string
		want []want
	}{
		{"one line", guide + "\n", []want{guideWant}},
		{"wrapped at 60", wrapLine(guide, 60), []want{guideWant}},
		{"wrapped at 70, CRLF", strings.ReplaceAll(wrapLine(guide, 70), "\n", "\r\n") + "\r\n", []want{guideWant}},
		{"wrapped at 7", wrapLine(guide, 7), []want{guideWant}},
		{"wrapped at the end of the base64", f[0] + " " + f[1] + "\n" + f[2] + "\n", []want{guideWant}},
		{"wrapped in the comment", f[0] + " " + f[1] + " root@n0011.c0001.exa\ncluster.local\n", []want{guideWant}},
		{"indented continuation", strings.ReplaceAll(wrapLine(guide, 64), "\n", "\n   "), []want{guideWant}},
		{"two wrapped and one of ours, with comments and blanks",
			"# EDU01\n\n" + wrapLine(guide, 64) + "\n\n" + ours + "\n" + wrapLine(laptop, 50) + "\n",
			[]want{guideWant, {RoleClient, "Connection1", "n0012", oursKey}, {RoleUnbound, "", "", laptopKey}}},
		{"ours wrapped", wrapLine(ours, 33), []want{{RoleClient, "Connection1", "n0012", oursKey}}},
		{"no comment", bare + "\n", []want{{RoleUnbound, "", "", bareKey}}},
		{"the same key twice", guide + "\n" + wrapLine(guide, 50) + "\n", []want{guideWant}},
		{"per-address host pin", strings.Replace(ours, "backupsync:Connection1@n0012", "backupsync-host:Connection1@10.60.102.11:2022", 1),
			[]want{{RoleHost, "Connection1", "10.60.102.11:2022", oursKey}}},
		{"stored unbound form", strings.Replace(ours, "backupsync:Connection1@n0012", "backupsync-pending@key-3", 1),
			[]want{{RoleUnbound, "", "key-3", oursKey}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKeyLines([]byte(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d keys, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Role != w.role || g.Connection != w.conn || g.Node != w.node || !bytes.Equal(g.Key.Marshal(), w.key.Marshal()) {
					t.Errorf("key %d: %s %q %q, want %s %q %q", i, g.Role, g.Connection, g.Node, w.role, w.conn, w.node)
				}
			}
		})
	}
	// The original comment is kept for the reply.
	got, _ := ParseKeyLines([]byte(wrapLine(guide, 60)))
	if got[0].Original != "root@n0011.c0001.exacluster.local" || got[0].LineNo != 1 {
		t.Errorf("original %q line %d", got[0].Original, got[0].LineNo)
	}
}

func TestNodeFromComment(t *testing.T) {
	for c, want := range map[string]string{
		"root@n0011.c0001.exacluster.local": "n0011",
		"root@n0011":                        "n0011",
		"root@N12":                          "N12",
		"root@10.60.101.11":                 "",
		"admin@laptop":                      "",
		"n0011":                             "",
		"":                                  "",
		"root@n0011x.cluster":               "",
		"backupsync-pending@key-2":          "key-2",
		"backupsync-pending@../x":           "",
	} {
		if got := nodeFromComment(c); got != want {
			t.Errorf("nodeFromComment(%q) = %q, want %q", c, got, want)
		}
	}
}

// FuzzParseKeyLines: the parser of uploaded text never panics, reports
// errors by line number without the text, and every key it returns is
// acceptable and, in the store's form, parses back to itself.
func FuzzParseKeyLines(f *testing.F) {
	guide, _ := rsaLine(f, "root@n0011.c0001.exacluster.local")
	ours, _ := edLine(f, "backupsync:Connection1@n0012")
	host, _ := edLine(f, "backupsync-host:Connection1@[::1]:2022")
	for _, s := range []string{
		guide, wrapLine(guide, 60), ours + "\r\n" + wrapLine(guide, 13), host, "# c\n\n" + ours,
		"ssh-rsa", "ssh-ed25519 AAAA\nBBBB\n", "restrict " + ours, ours + "\nstray",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		keys, err := ParseKeyLines(text)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tunnel: key line ") {
				t.Fatalf("error without a line number: %v", err)
			}
			return
		}
		for _, k := range keys {
			if err := acceptableKey(k.Key); err != nil {
				t.Fatalf("unacceptable key returned: %v", err)
			}
			switch k.Role {
			case RoleUnbound:
				if k.Node != "" && validName(k.Node) != nil {
					t.Fatalf("unbound node %q", k.Node)
				}
				if k.Node == "" {
					k.Node = "key-1"
				}
			case RoleClient, RoleHost:
				if validName(k.Connection) != nil || validNode(k.Role, k.Node) != nil {
					t.Fatalf("bad names %q %q", k.Connection, k.Node)
				}
			default:
				t.Fatalf("role %q", k.Role)
			}
			back, err := ParseKeyLines([]byte(k.String()))
			if err != nil || len(back) != 1 || back[0].Comment() != k.Comment() || !bytes.Equal(back[0].Key.Marshal(), k.Key.Marshal()) {
				t.Fatalf("%q does not parse back: %v %+v", k.String(), err, back)
			}
		}
	})
}
