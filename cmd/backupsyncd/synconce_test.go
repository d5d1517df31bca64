package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"backupsync/internal/ftptest"
	"backupsync/internal/sync"
)

// This package's tests use 127.0.7.x.

// syncSetup writes settings and a connections file for a direct connection
// from src to dst and returns the settings path.
func syncSetup(t *testing.T, src, dst *ftptest.Server, remoteNodes string) string {
	dir := t.TempDir()
	cfg := fmt.Sprintf("Conn1\n{\nDATABASE_NAME = DB\nSTART_CYCLE = @hourly\nLOCAL_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_NODES = %s\nSSH = none\nSETTLE_TIME = 10s\n}\n",
		src.User, src.Password, src.Port, src.Volume, dst.User, dst.Password, dst.Port, dst.Volume, remoteNodes)
	os.WriteFile(filepath.Join(dir, "connections.cfg"), []byte(cfg), 0o600)
	settings := filepath.Join(dir, "backupsyncd.hcl")
	os.WriteFile(settings, []byte(fmt.Sprintf("node {\n  name = \"n0011\"\n  ip = %q\n  index = 0\n}\nconnections_file = \"connections.cfg\"\nstate_dir = \"state\"\n", src.Host)), 0o600)
	return settings
}

func writeBackup(t *testing.T, s *ftptest.Server, rel string, data string) {
	p := filepath.Join(s.Dir, s.Volume, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte(data), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
}

func TestSyncOnce(t *testing.T) {
	src := ftptest.Start(t, "embedded", "127.0.7.1")
	dst := ftptest.Start(t, "embedded", "127.0.7.2")
	writeBackup(t, src, "DB/id_1/level_0/node_0/data", "data")
	writeBackup(t, src, "DB/id_1/level_0/node_0/metadata", "meta")
	settings := syncSetup(t, src, dst, "127.0.7.2")

	var out, errOut bytes.Buffer
	if code := run([]string{"sync-once", "--settings", settings, "--connection", "conn1", "--dry-run"}, &out, &errOut); code != exitOK {
		t.Fatalf("dry run: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "copy        DB/id_1/level_0/node_0/data (4 bytes)") ||
		!strings.Contains(out.String(), "would copy 2 file(s), 8 B; 0 file(s) up to date") {
		t.Errorf("dry run output:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(dst.Dir, dst.Volume, "DB")); err == nil {
		t.Fatal("--dry-run changed the destination")
	}

	out.Reset()
	if code := run([]string{"sync-once", "--settings", settings, "--connection", "Conn1", "--json"}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rep sync.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Copied != 2 {
		t.Fatalf("report %+v, %v:\n%s", rep, err, out.String())
	}
	if got, _ := os.ReadFile(filepath.Join(dst.Dir, dst.Volume, "DB/id_1/level_0/node_0/metadata")); string(got) != "meta" {
		t.Errorf("metadata at the destination: %q", got)
	}
	if strings.Contains(out.String()+errOut.String(), src.Password) {
		t.Error("the password was printed")
	}
}

func TestSyncOnceExitCodes(t *testing.T) {
	src := ftptest.Start(t, "embedded", "127.0.7.1")
	dst := ftptest.Start(t, "embedded", "127.0.7.2")
	for _, tc := range []struct {
		name string
		args func(settings string) []string
		want int
		msg  string
	}{
		{"unknown connection", func(s string) []string { return []string{"--settings", s, "--connection", "Nope"} }, exitUsage, `no connection "Nope" (it has: Conn1)`},
		{"missing flags", func(s string) []string { return []string{"--settings", s} }, exitUsage, "usage:"},
		{"bad settings", func(s string) []string { return []string{"--settings", s + ".missing", "--connection", "Conn1"} }, exitUsage, "read settings"},
		// 127.0.7.9 has no server: the remote is unreachable.
		{"unreachable remote", func(s string) []string { return []string{"--settings", s, "--connection", "Conn1"} }, exitNetwork, "unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			settings := syncSetup(t, src, dst, "127.0.7.9")
			var out, errOut bytes.Buffer
			code := run(append([]string{"sync-once"}, tc.args(settings)...), &out, &errOut)
			if code != tc.want || !strings.Contains(errOut.String(), tc.msg) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut.String(), tc.want, tc.msg)
			}
		})
	}
}

// A large file: the progress says how far the copy is while its bytes
// move, not only once it is done.
func TestSyncOnceShowsProgressWhileAFileMoves(t *testing.T) {
	progressEvery = 200 * time.Millisecond
	t.Cleanup(func() { progressEvery = 10 * time.Second })
	src := ftptest.Start(t, "embedded", "127.0.7.1")
	dst := ftptest.Start(t, "embedded", "127.0.7.2")
	writeBackup(t, src, "DB/id_1/level_0/node_0/data", strings.Repeat("x", 3<<20))
	settings := syncSetup(t, src, dst, "127.0.7.2")
	cfg := filepath.Join(filepath.Dir(settings), "connections.cfg")
	b, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(b), "SSH = none\n", "SSH = none\nBANDWIDTH_LIMIT = 2M\n", 1)), 0o600)

	var out, errOut bytes.Buffer
	if code := run([]string{"sync-once", "--settings", settings, "--connection", "Conn1"}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	// Lines like "... 0 of 1 files, 1.2 MiB of 3.0 MiB, 2.0 MiB/s, ETA 1s"
	// while the one file moves.
	var mid int
	for _, l := range strings.Split(errOut.String(), "\n") {
		if strings.HasPrefix(l, "... 0 of 1 files, ") && strings.Contains(l, " of 3.0 MiB, ") && !strings.HasPrefix(l, "... 0 of 1 files, 0 B") {
			mid++
		}
	}
	if mid == 0 {
		t.Errorf("no progress while the file moved:\n%s", errOut.String())
	}
}
