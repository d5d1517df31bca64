package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSeedFilesParse(t *testing.T) {
	client := mustRead(t, "../../testdata/seed/client.cfg")
	if len(client) != 1 {
		t.Fatalf("client.cfg: %d connections, want 1", len(client))
	}
	c := client[0]
	want := Connection{
		Name: "Connection1", File: "../../testdata/seed/client.cfg", Line: 2, Role: RoleClient,
		Database: "exa_db1", Schedule: "*/2 * * * *",
		LocalURL:       ArchiveURL{Scheme: "ftp", User: "FTPbackup", Password: "**PW**", Path: "/v0003"},
		RemoteURL:      ArchiveURL{Scheme: "ftp", User: "FTPbackup", Password: "**PW**", Path: "/v0002"},
		RemoteNodes:    []string{"10.60.102.11", "10.60.102.12"},
		Verbose:        true,
		Parallel:       4,
		SettleTime:     2 * time.Minute,
		Delete:         true,
		schedule:       c.schedule,
		BandwidthLimit: 0,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("client.cfg parsed to\n%+v\nwant\n%+v", c, want)
	}
	if c.schedule == nil {
		t.Fatal("schedule not parsed")
	}
	from := time.Date(2026, 11, 25, 12, 1, 30, 0, time.UTC)
	if got := c.Next(from); !got.Equal(time.Date(2026, 11, 25, 12, 2, 0, 0, time.UTC)) {
		t.Errorf("Next(%v) = %v", from, got)
	}
	if c.LocalURL.Volume() != "v0003" || c.RemoteURL.Volume() != "v0002" {
		t.Errorf("volumes %q %q", c.LocalURL.Volume(), c.RemoteURL.Volume())
	}
	if c.RemoteNode(1) != "10.60.102.12" || c.RemoteNode(2) != "10.60.102.11" {
		t.Errorf("RemoteNode: %q %q", c.RemoteNode(1), c.RemoteNode(2))
	}

	server := mustRead(t, "../../testdata/seed/server.cfg")
	want = Connection{Name: "Connection1", File: "../../testdata/seed/server.cfg", Line: 2, Role: RoleServer,
		Verbose: true, Parallel: 4, SettleTime: 2 * time.Minute, Delete: true}
	if len(server) != 1 || !reflect.DeepEqual(server[0], want) {
		t.Errorf("server.cfg parsed to %+v, want %+v", server, want)
	}
	if !server[0].Next(from).IsZero() {
		t.Error("a server connection has no schedule")
	}
}

func mustRead(t *testing.T, path string) []Connection {
	t.Helper()
	conns, err := ReadConnections(path)
	if err != nil {
		t.Fatalf("ReadConnections(%s): %v", path, err)
	}
	return conns
}

const secret = "Pa55#;@ w%25rd"

// client is a valid client block; cases edit it.
const client = `Connection1
{
DATABASE_NAME = exa_db1
START_CYCLE = */2 * * * *
LOCAL_URL = ftp://FTPbackup:` + secret + `@%s/v0003
REMOTE_URL = ftp://FTPbackup:` + secret + `@%s:2021/v0002
REMOTE_NODES = 10.60.102.11; 10.60.102.12
Verbose = true
SSH = client
}
`

func TestValidVariants(t *testing.T) {
	for _, tc := range []struct {
		name  string
		src   string
		check func(t *testing.T, cs []Connection)
	}{
		{"password with # ; @ space and escape", client, func(t *testing.T, cs []Connection) {
			if cs[0].LocalURL.Password != "Pa55#;@ w%rd" {
				t.Errorf("password %q", cs[0].LocalURL.Password)
			}
			if cs[0].RemoteURL.Port != 2021 || cs[0].LocalURL.Port != 0 {
				t.Errorf("ports %d %d", cs[0].RemoteURL.Port, cs[0].LocalURL.Port)
			}
		}},
		{"CRLF, BOM, tabs, indented comments", "\ufeff# top\r\n" + strings.ReplaceAll(strings.ReplaceAll(client, "\n", "\r\n"), " = ", "\t=\t") + "\t# end\r\n", func(t *testing.T, cs []Connection) {
			if cs[0].Database != "exa_db1" || cs[0].RemoteNodes[1] != "10.60.102.12" {
				t.Errorf("%+v", cs[0])
			}
		}},
		{"brace on the name line, lower-case keys", strings.Replace(strings.ToLower(client[:12])+"{\n"+client[14:], "Verbose", "verbose", 1), func(t *testing.T, cs []Connection) {
			if cs[0].Name != "connection1" || !cs[0].Verbose {
				t.Errorf("%+v", cs[0])
			}
		}},
		{"two connections", client + "\nConnection2 {\nSSH = server\n}\n", func(t *testing.T, cs []Connection) {
			if len(cs) != 2 || cs[1].Role != RoleServer || cs[1].Line != 12 {
				t.Errorf("%+v", cs)
			}
		}},
		{"no SSH key means direct FTP", strings.Replace(client, "SSH = client\n", "", 1), func(t *testing.T, cs []Connection) {
			if cs[0].Role != RoleDirect || !cs[0].Role.Copies() {
				t.Errorf("role %q", cs[0].Role)
			}
		}},
		{"CRON_TZ and descriptors", strings.Replace(client, "*/2 * * * *", "CRON_TZ=Europe/Berlin 30 2 * * *", 1), func(t *testing.T, cs []Connection) {
			next := cs[0].Next(time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC))
			if !next.Equal(time.Date(2026, 7, 1, 0, 30, 0, 0, time.UTC)) {
				t.Errorf("next %v", next)
			}
		}},
		{"@every", strings.Replace(client, "*/2 * * * *", "@every 5m", 1), nil},
		{"@hourly", strings.Replace(client, "*/2 * * * *", "@hourly", 1), nil},
		{"extension keys", strings.Replace(client, "SSH = client", "SSH = client\nPARALLEL = 16\nBANDWIDTH_LIMIT = 50M\nSETTLE_TIME = 90s\nDELETE = no\nMAX_DELETE_SETS = 2", 1), func(t *testing.T, cs []Connection) {
			c := cs[0]
			if c.Parallel != 16 || c.BandwidthLimit != 50<<20 || c.SettleTime != 90*time.Second || c.Delete || c.MaxDeleteSets != 2 {
				t.Errorf("%+v", c)
			}
		}},
		{"host names and IPv6 nodes", strings.Replace(client, "10.60.102.11; 10.60.102.12", "node-a.example;fd00::1 ;node-c", 1), func(t *testing.T, cs []Connection) {
			if !reflect.DeepEqual(cs[0].RemoteNodes, []string{"node-a.example", "fd00::1", "node-c"}) {
				t.Errorf("%q", cs[0].RemoteNodes)
			}
		}},
		{"ftps and a sub path", strings.Replace(client, "ftp://FTPbackup:"+secret+"@%s/v0003", "ftps://FTPbackup:pw@%s:2121/v0003/sub", 1), func(t *testing.T, cs []Connection) {
			u := cs[0].LocalURL
			if u.Scheme != "ftps" || u.Port != 2121 || u.Path != "/v0003/sub" || u.Volume() != "v0003" {
				t.Errorf("%+v", u)
			}
		}},
		{"empty file", "", func(t *testing.T, cs []Connection) {
			if len(cs) != 0 {
				t.Errorf("%+v", cs)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := ParseConnections("c.cfg", []byte(tc.src))
			if err != nil {
				t.Fatalf("unexpected error:\n%v", err)
			}
			if tc.check != nil {
				tc.check(t, cs)
			}
		})
	}
}

// edit replaces the first line of client that starts with prefix by repl
// ("" deletes it).
func edit(prefix, repl string) string {
	lines := strings.SplitAfter(client, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			if repl == "" {
				lines[i] = ""
			} else {
				lines[i] = repl + "\n"
			}
			return strings.Join(lines, "")
		}
	}
	panic("no line " + prefix)
}

func TestMalformed(t *testing.T) {
	const cron = "START_CYCLE = " // value column 15
	const local = "LOCAL_URL = "  // value column 13
	for _, tc := range []struct {
		name      string
		src       string
		line, col int
		msg       string
	}{
		{"missing opening brace", strings.Replace(client, "{\n", "", 1), 1, 12, "expected '{' after connection name"},
		{"missing closing brace", strings.TrimSuffix(client, "}\n"), 1, 1, `connection "Connection1" is not closed`},
		{"key outside a block", "DATABASE_NAME = exa_db1\n" + client, 1, 1, "outside a connection block"},
		{"closing brace without block", "}\n" + client, 1, 1, "'}' without an open connection block"},
		{"opening brace without name", "{\n", 1, 1, "'{' without a connection name"},
		{"next block before closing brace", strings.Replace(client, "}\n", "Connection2\n{\nSSH = server\n}\n", 1), 1, 1, "no closing '}' before the next block at line 10"},
		{"text after closing brace", strings.Replace(client, "}\n", "} Connection2\n", 1), 10, 2, "unexpected text after '}'"},
		{"bad connection name", strings.Replace(client, "Connection1", "Connection 1", 1), 1, 1, "connection name \"Connection 1\""},
		{"duplicate connection", client + client, 11, 1, `defined twice (first at line 1)`},
		{"line without =", edit("Verbose", "Verbose true"), 8, 1, "expected KEY = value"},
		{"key missing before =", edit("Verbose", "= true"), 8, 1, "a key is missing"},
		{"unknown key with suggestion", edit("DATABASE_NAME", "DATABSE_NAME = exa_db1"), 3, 1, "did you mean DATABASE_NAME?"},
		{"unknown key", edit("Verbose", "COLOUR = blue"), 8, 1, `unknown key "COLOUR"`},
		{"unknown key near miss lower case", edit("Verbose", "verbos = true"), 8, 1, "did you mean Verbose?"},
		{"duplicate key", edit("Verbose", "Verbose = true\nVERBOSE = false"), 9, 1, "Verbose is set twice in connection \"Connection1\" (first at line 8)"},
		{"missing required key", edit("REMOTE_URL", ""), 1, 1, "needs REMOTE_URL"},
		{"missing database", edit("DATABASE_NAME", ""), 1, 1, "needs DATABASE_NAME"},
		{"empty value", edit("DATABASE_NAME", "DATABASE_NAME ="), 3, 16, "DATABASE_NAME has no value"},
		{"database with space", edit("DATABASE_NAME", "DATABASE_NAME = exa db"), 3, 17, "DATABASE_NAME \"exa db\""},
		{"cron with four fields", edit(cron, cron+"*/2 * * *"), 4, 15, "START_CYCLE \"*/2 * * *\""},
		{"cron out of range", edit(cron, cron+"61 * * * *"), 4, 15, "START_CYCLE \"61 * * * *\""},
		{"cron bad descriptor", edit(cron, cron+"@fortnightly"), 4, 15, "START_CYCLE \"@fortnightly\""},
		{"cron @every without duration", edit(cron, cron+"@every"), 4, 15, "START_CYCLE \"@every\""},
		{"TZ without schedule (library panic)", edit(cron, cron+"TZ=UTC"), 4, 15, "a schedule must follow the time zone"},
		{"CRON_TZ unknown zone", edit(cron, cron+"CRON_TZ=Mars/Olympus * * * * *"), 4, 23, `unknown time zone "Mars/Olympus"`},
		{"CRON_TZ empty zone", edit(cron, cron+"CRON_TZ= * * * * *"), 4, 23, "name a time zone"},
		{"URL wrong scheme", edit(local, local+"http://u:p@%s/v0003"), 5, 13, `scheme "http" is not supported`},
		{"URL sftp scheme", edit(local, local+"sftp://u:p@%s/v0003"), 5, 13, `scheme "sftp" is not supported`},
		{"URL not a URL", edit(local, local+"v0003"), 5, 13, "not a URL"},
		{"URL %s missing", edit(local, local+"ftp://u:"+secret+"@10.0.0.1/v0003"), 5, 19, "the host must be %s"},
		{"URL %s twice", edit(local, local+"ftp://u:p@%s/%s"), 5, 26, "exactly once"},
		{"URL %s not the host", edit(local, local+"ftp://u:p@host/%s"), 5, 28, "%s must be the host"},
		{"URL without user", edit(local, local+"ftp://%s/v0003"), 5, 19, "user and password missing"},
		{"URL without password", edit(local, local+"ftp://FTPbackup@%s/v0003"), 5, 19, "user and password missing"},
		{"URL empty password", edit(local, local+"ftp://FTPbackup:@%s/v0003"), 5, 29, "password missing"},
		{"URL bad percent encoding", edit(local, local+"ftp://u:"+"x%zz"+secret+"@%s/v0003"), 5, 21, "bad percent-encoding"},
		{"URL bad port", edit(local, local+"ftp://u:"+secret+"@%s:99999/v0003"), 5, 39, `port "99999"`},
		{"URL port not a number", edit(local, local+"ftp://u:p@%s:ftp/v0003"), 5, 26, `port "ftp"`},
		{"URL no path", edit(local, local+"ftp://u:p@%s"), 5, 25, "must start with the archive volume"},
		{"URL root path", edit(local, local+"ftp://u:p@%s/"), 5, 25, "must start with the archive volume"},
		{"URL path escapes", edit(local, local+"ftp://u:p@%s/v0003/../etc"), 5, 25, "plain name"},
		{"URL junk after host", edit(local, local+"ftp://u:p@%sX/v0003"), 5, 25, "expected :PORT or /VOLUME"},
		{"REMOTE_NODES empty", edit("REMOTE_NODES", "REMOTE_NODES =  "), 7, 15, "REMOTE_NODES has no value"},
		{"REMOTE_NODES empty entry", edit("REMOTE_NODES", "REMOTE_NODES = 10.0.0.1;;10.0.0.2"), 7, 25, "entry 2 is empty"},
		{"REMOTE_NODES duplicate", edit("REMOTE_NODES", "REMOTE_NODES = 10.0.0.1; 10.0.0.1"), 7, 26, `lists "10.0.0.1" twice`},
		{"REMOTE_NODES bad IP", edit("REMOTE_NODES", "REMOTE_NODES = 10.0.0.300"), 7, 16, "neither an IP address nor a host name"},
		{"REMOTE_NODES bad host", edit("REMOTE_NODES", "REMOTE_NODES = node_1"), 7, 16, "neither an IP address nor a host name"},
		{"Verbose not a bool", edit("Verbose", "Verbose = maybe"), 8, 11, `Verbose is "maybe"`},
		{"SSH unknown role", edit("SSH", "SSH = tunnel"), 9, 7, `SSH is "tunnel"`},
		{"server with client keys", "Connection1\n{\nSSH = server\nDATABASE_NAME = exa_db1\n}\n", 4, 1, "DATABASE_NAME does not belong in connection \"Connection1\" with SSH = server"},
		{"server with extension key", "Connection1\n{\nSSH = server\nPARALLEL = 4\n}\n", 4, 1, "PARALLEL does not belong"},
		{"PARALLEL zero", edit("Verbose", "PARALLEL = 0"), 8, 12, "1 to 64"},
		{"PARALLEL too high", edit("Verbose", "PARALLEL = 65"), 8, 12, "1 to 64"},
		{"BANDWIDTH_LIMIT words", edit("Verbose", "BANDWIDTH_LIMIT = fast"), 8, 19, `BANDWIDTH_LIMIT is "fast"`},
		{"BANDWIDTH_LIMIT overflow", edit("Verbose", "BANDWIDTH_LIMIT = 99999999999999G"), 8, 19, "too large"},
		{"SETTLE_TIME words", edit("Verbose", "SETTLE_TIME = 2 minutes"), 8, 15, `SETTLE_TIME is "2 minutes"`},
		{"SETTLE_TIME negative", edit("Verbose", "SETTLE_TIME = -1s"), 8, 15, `SETTLE_TIME is "-1s"`},
		{"DELETE not a bool", edit("Verbose", "DELETE = perhaps"), 8, 10, `DELETE is "perhaps"`},
		{"MAX_DELETE_SETS negative", edit("Verbose", "MAX_DELETE_SETS = -1"), 8, 19, "MAX_DELETE_SETS is \"-1\""},
		{"key with a space (no = after key)", edit(local, "LOCAL URL = ftp://u:"+secret+"@%s/v0003"), 5, 1, `found "LOCAL URL" before '='`},
		{"URL typed without =", edit(local, "LOCAL_URL ftp://u:"+secret+"@%s/v0003"), 5, 1, "expected KEY = value"},
		{"invalid UTF-8", edit("Verbose", "Verbose = tr\xffue"), 8, 1, "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConnections("c.cfg", []byte(tc.src))
			var diags Diagnostics
			if !errors.As(err, &diags) || len(diags) == 0 {
				t.Fatalf("want diagnostics, got %v", err)
			}
			d := diags[0]
			if d.Line != tc.line || d.Col != tc.col || !strings.Contains(d.Message, tc.msg) || d.File != "c.cfg" {
				t.Errorf("got  %v\nwant c.cfg:%d:%d: …%s…", err, tc.line, tc.col, tc.msg)
			}
			for _, s := range []string{secret, "Pa55", "w%25rd", "w%rd"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error text contains the password (%q): %v", s, err)
				}
			}
		})
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	src := edit("Verbose", "Verbose = maybe\nPARALLEL = 0\nCOLOUR = blue")
	src = strings.Replace(src, "*/2 * * * *", "bad", 1) + "oops = 1\n"
	_, err := ParseConnections("c.cfg", []byte(src))
	var diags Diagnostics
	if !errors.As(err, &diags) {
		t.Fatalf("%v", err)
	}
	var lines []int
	for _, d := range diags {
		lines = append(lines, d.Line)
	}
	if want := []int{4, 8, 9, 10, 13}; !reflect.DeepEqual(lines, want) {
		t.Errorf("diagnostics on lines %v, want %v:\n%v", lines, want, err)
	}
	if n := strings.Count(err.Error(), "\n"); n != len(diags)-1 {
		t.Errorf("want one line per problem:\n%v", err)
	}
}

func TestFormatMasksAndRoundTrips(t *testing.T) {
	cs, err := ParseConnections("c.cfg", []byte(client+"Connection2\n{\nSSH = server\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	out := Format(cs)
	if strings.Contains(out, "Pa55") {
		t.Fatalf("Format shows the password:\n%s", out)
	}
	for _, want := range []string{
		"LOCAL_URL = ftp://FTPbackup:***@%s/v0003\n",
		"REMOTE_URL = ftp://FTPbackup:***@%s:2021/v0002\n",
		"REMOTE_NODES = 10.60.102.11; 10.60.102.12\n",
		"PARALLEL = 4\n", "SETTLE_TIME = 2m0s\n", "DELETE = true\n",
		"Connection2\n{\nSSH = server\nVerbose = false\n}\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Format lacks %q:\n%s", want, out)
		}
	}
	again, err := ParseConnections("again.cfg", []byte(out))
	if err != nil {
		t.Fatalf("Format output does not parse: %v\n%s", err, out)
	}
	for i := range cs {
		cs[i].LocalURL.Password, cs[i].RemoteURL.Password = "***", "***"
		if cs[i].Role == RoleServer {
			cs[i].LocalURL, cs[i].RemoteURL = ArchiveURL{}, ArchiveURL{}
		}
		cs[i].File, again[i].File = "", ""
		cs[i].Line, again[i].Line = 0, 0
		cs[i].schedule, again[i].schedule = nil, nil
	}
	if !reflect.DeepEqual(cs, again) {
		t.Errorf("round trip differs:\n%+v\n%+v", cs, again)
	}
}

func TestResolveURL(t *testing.T) {
	cs, err := ParseConnections("c.cfg", []byte(client))
	if err != nil {
		t.Fatal(err)
	}
	masked, addr := cs[0].LocalURL.Resolve("127.0.0.11", 2021)
	if masked != "ftp://FTPbackup:***@127.0.0.11:2021/v0003" || addr != "127.0.0.11:2021" {
		t.Errorf("Resolve: %q %q", masked, addr)
	}
	masked, addr = cs[0].RemoteURL.Resolve("::1", 9)
	if masked != "ftp://FTPbackup:***@[::1]:2021/v0002" || addr != "[::1]:2021" {
		t.Errorf("Resolve: %q %q", masked, addr)
	}
}

func TestKeyDocsCoverEveryKey(t *testing.T) {
	for _, d := range KeyDocs() {
		if d.Doc == "" {
			t.Errorf("key %s has no documentation", d.Name)
		}
	}
	readme, err := os.ReadFile("../../docs/CONNECTIONS.md")
	if err != nil {
		t.Fatalf("the connection keys must be documented in docs/CONNECTIONS.md: %v", err)
	}
	for _, d := range KeyDocs() {
		if !strings.Contains(string(readme), "`"+d.Name+"`") {
			t.Errorf("docs/CONNECTIONS.md does not document %s", d.Name)
		}
	}
}
