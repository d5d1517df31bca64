package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"backupsync/internal/config"
)

// TestCheckConfigOrigin: every connection of the settings' connections file
// is listed with where it came from; a file to upload may remove
// connections, listed as such.
func TestCheckConfigOrigin(t *testing.T) {
	dir := t.TempDir()
	hand := "Connection1\n{\nSSH = server\n}\n"
	up, err := config.ParseUpload("", []byte("Connection3\n{\nSSH = server\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	merged, _ := config.Merge([]byte(hand), up, time.Date(2026, 12, 6, 1, 20, 0, 0, time.UTC))
	conns := filepath.Join(dir, "connections.cfg")
	os.WriteFile(conns, merged, 0o600)
	settings := filepath.Join(dir, "backupsyncd.hcl")
	os.WriteFile(settings, []byte("node {\n  name = \"n0011\"\n  ip = \"127.0.7.1\"\n  index = 0\n}\nconnections_file = \"connections.cfg\"\nstate_dir = \"state\"\n"), 0o600)

	var out, errOut bytes.Buffer
	if code := run([]string{"check-config", "--settings", settings}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if want := "Connection1  server  -         -         -\n" +
		"    origin  written in " + conns + " line 1\n" +
		"Connection3  server  -         -         -\n" +
		"    origin  uploaded 2026-12-06T01:20:00Z (file sha256 " + up.SHA256[:12] + ", connection 1 of 1) in " + conns + "\n"; !strings.HasSuffix(unwrap(out.String()), unwrap(want)) {
		t.Errorf("listing:\n%s\nwant it to end\n%s", out.String(), want)
	}

	removal := filepath.Join(dir, "remove.cfg")
	os.WriteFile(removal, []byte("Connection1\n{\nREMOVE = true\n}\n"), 0o600)
	out.Reset()
	if code := run([]string{"check-config", removal}, &out, &errOut); code != exitOK {
		t.Fatalf("a file that removes a connection: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "Connection1  remove") || !strings.Contains(out.String(), "removes it when uploaded") {
		t.Errorf("removal listing:\n%s", out.String())
	}
	// In the connections file itself a removal is an error.
	os.WriteFile(conns, []byte("Connection1\n{\nREMOVE = true\n}\n"), 0o600)
	errOut.Reset()
	if code := run([]string{"check-config", "--settings", settings}, &out, &errOut); code != exitFailed ||
		!strings.Contains(errOut.String(), "only in a file sent with UPLOAD_CONFIG") {
		t.Errorf("REMOVE in the connections file: exit %d: %s", code, errOut.String())
	}
}

// unwrap joins a listing's words with single spaces, undoing its wrapping.
func unwrap(s string) string { return strings.Join(strings.Fields(s), " ") }
