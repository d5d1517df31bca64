package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestCheckConfigSeedFiles(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"check-config", "../../testdata/seed/client.cfg", "../../testdata/seed/server.cfg"}, &out, &errOut)
	if code != exitOK || errOut.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	got := out.String()
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "CONNECTION   ROLE    DATABASE  SCHEDULE     NEXT RUN") {
		t.Fatalf("want a header and a row per connection:\n%s", got)
	}
	if !regexp.MustCompile(`^Connection1  client  exa_db1   \*/2 \* \* \* \*  \d{4}-\d\d-\d\dT\d\d:\d\d:00Z$`).MatchString(lines[1]) {
		t.Errorf("client row (next run in RFC 3339, UTC): %q", lines[1])
	}
	for _, want := range []string{
		"\n    local URL     ftp://FTPbackup:***@%s:2021/v0003\n",
		"\n    remote nodes  node_0 → 10.60.102.11\n                  node_1 → 10.60.102.12\n",
		"\n    origin        written in ../../testdata/seed/client.cfg line 2\n",
		"\nConnection1  server  -         -            -\n    origin        written in ../../testdata/seed/server.cfg line 2\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("listing lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(out.String(), "**PW**") {
		t.Error("check-config printed the password")
	}
}

func TestCheckConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.cfg")
	os.WriteFile(bad, []byte("Connection1\n{\nSSH = client\nLOCAL_URL = ftp://u:hunter2@host/v0003\nVerbos = true\n}\n"), 0o600)
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", bad, "../../testdata/seed/server.cfg"}, &out, &errOut); code != exitFailed {
		t.Fatalf("exit %d, want %d", code, exitFailed)
	}
	got := errOut.String()
	for _, want := range []string{
		bad + ":4:19: the host must be %s",
		bad + ":5:1: unknown key \"Verbos\" in connection \"Connection1\"; did you mean Verbose?",
		bad + ":1:1: connection \"Connection1\" needs DATABASE_NAME",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("stderr lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got+out.String(), "hunter2") {
		t.Error("the password was printed")
	}
}

func TestCheckConfigUsage(t *testing.T) {
	for _, args := range [][]string{{"check-config"}, {"check-config", "--nope"}, {"frobnicate"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
	// No command runs the daemon (the default command) with its default
	// settings, which a test machine lacks.
	var stderr bytes.Buffer
	if code := run(nil, &stderr, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "read settings") || !strings.Contains(stderr.String(), DefaultSettings) {
		t.Errorf("no command: exit %d, %q", code, stderr.String())
	}
	var out bytes.Buffer
	if code := run([]string{"--version"}, &out, &out); code != exitOK || !strings.HasPrefix(out.String(), "backupsyncd ") {
		t.Errorf("--version: %d %q", code, out.String())
	}
}

func TestCheckConfigWithSettings(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", "--settings", "../../testdata/settings/backupsyncd.hcl"}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "exa_db1") {
		t.Errorf("the settings' connections_file was not checked:\n%s", out.String())
	}
	dir := t.TempDir()
	s := filepath.Join(dir, "s.hcl")
	os.WriteFile(s, []byte("node {\n  name = \"n1\"\n  ip = \"127.0.0.1\"\n  index = 0\n}\nbogus = 1\n"), 0o600)
	errOut.Reset()
	if code := run([]string{"check-config", "--settings", s, "../../testdata/seed/server.cfg"}, &out, &errOut); code != exitFailed {
		t.Errorf("exit %d", code)
	}
	if !strings.Contains(errOut.String(), s+":6,1: Unsupported argument") {
		t.Errorf("stderr: %s", errOut.String())
	}
}

// Settings without an xmlrpc user are valid, but check-config warns: such a
// daemon answers every call 401. A password_hash that is not a bcrypt hash
// is an error at its position.
func TestCheckConfigSettingsUsers(t *testing.T) {
	dir := t.TempDir()
	node := "node {\n  name = \"n1\"\n  ip = \"127.0.0.1\"\n  index = 0\n}\n"
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, src string
		code      int
		want      string // on stderr; "" for nothing
	}{
		{"no xmlrpc block", node, exitOK, ": warning: no xmlrpc user is configured: every call will answer 401; add `user \"admin\" { password_hash = \"…\" }` to the xmlrpc block (backupsyncctl hash-password / see README)"},
		{"no user", node + "xmlrpc {\n  # user \"admin\" {\n  #   password_hash = \"...\"\n  # }\n}\n", exitOK, ": warning: no xmlrpc user is configured"},
		{"a user", node + "xmlrpc {\n  user \"admin\" {\n    password_hash = \"$2a$10$Q0UurHQnJ0BbK.3Db7ncgeVs.NP3bS4.T5ZBbehykvyvOd.mvZvfG\"\n  }\n}\n", exitOK, ""},
		{"a plain password", node + "xmlrpc {\n  user \"admin\" {\n    password_hash = \"s3cret-pw\"\n  }\n}\n", exitFailed, ":8,5: Invalid password_hash; the password_hash of xmlrpc user \"admin\" is not a bcrypt hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := write(strings.ReplaceAll(tc.name, " ", "_")+".hcl", tc.src)
			var out, errOut bytes.Buffer
			code := run([]string{"check-config", "--settings", s, "../../testdata/seed/server.cfg"}, &out, &errOut)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %s", code, tc.code, errOut.String())
			}
			switch {
			case tc.want == "" && errOut.Len() != 0:
				t.Errorf("stderr %q, want nothing", errOut.String())
			case tc.want != "" && !strings.Contains(errOut.String(), s+tc.want):
				t.Errorf("stderr %q lacks %q", errOut.String(), s+tc.want)
			}
			if strings.Contains(errOut.String()+out.String(), "s3cret-pw") {
				t.Error("check-config printed the value of password_hash")
			}
		})
	}
}
