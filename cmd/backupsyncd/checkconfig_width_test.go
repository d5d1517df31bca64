package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// check-config's listing fits 100 columns whatever its values, and with
// the settings' cluster block it says which node's part goes to which
// remote node, REMOTE_NODES wrapping around when it has fewer entries.
func TestCheckConfigWidth(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("x", 70)
	cfg := filepath.Join(dir, "wide.cfg")
	os.WriteFile(cfg, []byte("Connection_with_a_rather_long_name_for_a_wide_table\n{\nDATABASE_NAME = EXA_DATABASE_WITH_A_LONG_NAME\n"+
		"START_CYCLE = 0,15,30,45 1,2,3,4,5,6,7,8 * * 1-5\n"+
		"LOCAL_URL = ftps://backup_operator_user:pw-wide@%s:2021/v0003/"+long+"\n"+
		"REMOTE_URL = ftp://backup_operator_user:pw-wide@%s:2021/v0002\n"+
		"REMOTE_NODES = 10.60.102.11; 10.60.102.12\nSSH = client\n}\n"), 0o600)
	settings := filepath.Join(dir, "backupsyncd.hcl")
	os.WriteFile(settings, []byte(`node {
  name  = "n0011"
  ip    = "127.0.7.1"
  index = 0
}
connections_file = "wide.cfg"
state_dir        = "state"
cluster {
  user     = "admin"
  password = "pw-cluster"
  node "n0011" { url = "https://127.0.7.1:4443/" }
  node "n0012" { url = "https://127.0.7.2:4443/" }
  node "n0013" { url = "https://127.0.7.3:4443/" }
}
`), 0o600)
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", "--settings", settings}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	got := out.String()
	for i, l := range strings.Split(got, "\n") {
		if n := len([]rune(l)); n > 100 {
			t.Errorf("line %d is %d columns wide: %q", i+1, n, l)
		}
	}
	for _, want := range []string{
		"remote nodes  node_0 n0011 → 10.60.102.11\n",
		"node_1 n0012 → 10.60.102.12\n",
		"node_2 n0013 → 10.60.102.11 (shared with node_0: REMOTE_NODES has 2 entries)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("listing lacks %q:\n%s", want, got)
		}
	}
	// Wrapped, nothing is lost: the long URL is there, character for character.
	if !strings.Contains(strings.Join(strings.Fields(got), ""), "ftps://backup_operator_user:***@%s:2021/v0003/"+long) {
		t.Errorf("the long URL is not whole:\n%s", got)
	}
	if strings.Contains(got, "pw-wide") || strings.Contains(got, "pw-cluster") {
		t.Errorf("a password printed:\n%s", got)
	}
}

func TestWrapLine(t *testing.T) {
	for _, tc := range []struct {
		line  string
		width int
		want  string
	}{
		{"    a b c", 20, "    a b c"},
		{"    label  one two three four", 16, "    label  one\n      two three\n      four"},
		{"    label  abcdefghijklmnop", 12, "    label\n      abcdef\n      ghijkl\n      mnop"},
	} {
		if got := wrapLine(tc.line, tc.width, "      "); got != tc.want {
			t.Errorf("wrapLine(%q, %d) =\n%s\nwant\n%s", tc.line, tc.width, got, tc.want)
		}
		for _, l := range strings.Split(wrapLine(tc.line, tc.width, "      "), "\n") {
			if len(l) > tc.width {
				t.Errorf("%q wider than %d", l, tc.width)
			}
		}
	}
}
