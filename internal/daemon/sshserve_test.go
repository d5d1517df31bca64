package daemon

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
	"time"

	"backupsync/internal/config"
	"backupsync/internal/tunnel"
)

// TestSSHServerRunsOnceKeysAreAuthorized: the guide never activates the
// server cluster: its tunnel server runs once an SSH = server connection
// has authorized keys (UPLOAD_KEY, then SSHKEY), and stops when the
// connection leaves the configuration.
func TestSSHServerRunsOnceKeysAreAuthorized(t *testing.T) {
	dir := t.TempDir()
	s, err := config.ParseSettings(filepath.Join(dir, "backupsyncd.hcl"), []byte(`node {
  name = "n0021"
  ip = "127.0.13.3"
  index = 0
}
connections_file = "c.cfg"
state_dir = "state"
xmlrpc {
  listen = "127.0.13.3:0"
}
ssh_server {
  listen = "127.0.13.3:0"
}
`))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "c.cfg"), []byte("Connection1\n{\nSSH = server\n}\n"), 0o600)
	d, err := New(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	runDaemon(t, d)

	call := func(verb, arg string) string {
		t.Helper()
		r, err := d.Plugin().Call(context.Background(), verb, arg)
		if err != nil || r.Code != 0 {
			t.Fatalf("%s: %v %+v", verb, err, r)
		}
		return r.Output
	}
	running := func() bool { _, ok := d.SSHHealth(); return ok }
	waitFor := func(want bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); running() != want; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("SSH server running %v, want %v", running(), want)
			}
		}
	}
	call("INSTALL", "")
	waitFor(false)
	client, _ := tunnel.NewKeyStore(t.TempDir(), "n0011")
	line, _ := client.ClientKeyLine("Connection1", "")
	call("UPLOAD_KEY", base64.StdEncoding.EncodeToString([]byte(line)))
	if running() {
		t.Fatal("the SSH server runs for a pending key")
	}
	call("SSHKEY", "Connection1")
	waitFor(true)
	if st := call("STATUS", ""); st != "not activated" {
		t.Errorf("STATUS %q", st)
	}
	os.WriteFile(filepath.Join(dir, "c.cfg"), []byte("Connection2\n{\nSSH = server\n}\n"), 0o600)
	d.Reload()
	waitFor(false)
}
