package plugin

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"backupsync/internal/config"
	"backupsync/internal/tunnel"
)

const clientCfg = `Connection1
{
DATABASE_NAME = exa_db1
START_CYCLE = */2 * * * *
LOCAL_URL = ftp://FTPbackup:s3cret@%s/v0003
REMOTE_URL = ftp://FTPbackup:s3cret@%s/v0002
REMOTE_NODES = 127.0.9.11; 127.0.9.12
Verbose = true
SSH = client
}
`

const serverCfg = "Connection1\n{\nVerbose = true\nSSH = server\n}\n"

func newNode(t *testing.T, name string) *Node {
	t.Helper()
	dir := t.TempDir()
	s := &config.Settings{Node: config.Node{Name: name, IP: "127.0.9.1"}, StateDir: filepath.Join(dir, "state"),
		ConnectionsFile: filepath.Join(dir, "etc", "connections.cfg"), FTPDefaultPort: 2021}
	keys, err := tunnel.NewKeyStore(s.StateDir, name)
	if err != nil {
		t.Fatal(err)
	}
	return &Node{Settings: s, Keys: keys}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// call runs a verb and fails the test on an unknown verb.
func call(t *testing.T, n *Node, verb, arg string) Result {
	t.Helper()
	r, err := n.Call(context.Background(), verb, arg)
	if err != nil {
		t.Fatalf("%s: %v", verb, err)
	}
	return r
}

func expect(t *testing.T, r Result, code int, output string) {
	t.Helper()
	if r.Code != code || !strings.Contains(r.Output, output) {
		t.Errorf("got [%d, %q], want [%d, …%q…]", r.Code, r.Output, code, output)
	}
}

func TestPairingFlow(t *testing.T) {
	client, server := newNode(t, "n0011"), newNode(t, "n0021")
	changes := 0
	client.Changed = func() { changes++ }

	expect(t, call(t, client, "STATUS", ""), CodeOK, "not installed")
	expect(t, call(t, client, "SSHKEY", "Connection1"), CodeFailed, "not installed: run INSTALL first")
	expect(t, call(t, client, "install", ""), CodeOK, "installed")
	expect(t, call(t, client, "INSTALL", ""), CodeOK, "installed") // idempotent
	expect(t, call(t, client, "STATUS", ""), CodeOK, "not activated")
	expect(t, call(t, server, "INSTALL", ""), CodeOK, "installed")

	expect(t, call(t, client, "UPLOAD_CONFIG", b64(clientCfg)), CodeOK, "1 added, 0 replaced, 0 unchanged, 0 kept, 0 removed\nadded: Connection1 (client)")
	expect(t, call(t, server, "UPLOAD_CONFIG", b64(serverCfg)), CodeOK, "Connection1 (server)")

	// Nothing authorized yet: the server's ACTIVATE says what is missing.
	expect(t, call(t, server, "ACTIVATE", "Connection1"), CodeFailed, "no client key is authorized")

	clientKey := call(t, client, "SSHKEY", "Connection1")
	expect(t, clientKey, CodeOK, "backupsync:Connection1@n0011")
	if !strings.HasPrefix(clientKey.Output, "ssh-ed25519 AAAA") || strings.Contains(clientKey.Output, "PRIVATE") {
		t.Fatalf("SSHKEY output %q", clientKey.Output)
	}
	expect(t, call(t, server, "UPLOAD_KEY", b64(clientKey.Output+"\n")), CodeOK, "n0021: stored client key SHA256:")
	expect(t, call(t, server, "UPLOAD_KEY", b64(clientKey.Output+"\n")), CodeOK, " of n0011 for Connection1 (pending: run SSHKEY Connection1 here to authorize)")
	expect(t, call(t, server, "ACTIVATE", "Connection1"), CodeFailed, "not yet authorized: run SSHKEY Connection1 here first")
	hostKey := call(t, server, "SSHKEY", "Connection1")
	expect(t, hostKey, CodeOK, "backupsync-host:Connection1@n0021")
	expect(t, call(t, server, "ACTIVATE", "Connection1"), CodeOK, "activated")

	expect(t, call(t, client, "UPLOAD_KEY", b64(hostKey.Output)), CodeOK, "n0011: pinned host key SHA256:")
	expect(t, call(t, client, "UPLOAD_KEY", b64(hostKey.Output)), CodeOK, " of n0021 for Connection1")
	expect(t, call(t, client, "ACTIVATE", "Connection1"), CodeOK, "activated")
	expect(t, call(t, client, "STATUS", ""), CodeOK, "activated")
	st := call(t, client, "STATUS", "Connection1")
	expect(t, st, CodeOK, "connection: Connection1 (activated)\nrole: client")
	if strings.Contains(st.Output, "s3cret") {
		t.Errorf("STATUS shows the password: %s", st.Output)
	}
	if active, _ := client.ActiveConnections(); len(active) != 1 || active[0] != "Connection1" {
		t.Errorf("active %q", active)
	}

	expect(t, call(t, client, "UNINSTALL", ""), CodeFailed, "connection Connection1 is active: DEACTIVATE it first")
	expect(t, call(t, client, "DEACTIVATE", ""), CodeOK, "not activated")
	expect(t, call(t, client, "STATUS", ""), CodeOK, "not activated")
	expect(t, call(t, client, "UNINSTALL", ""), CodeOK, "not installed")
	expect(t, call(t, client, "STATUS", ""), CodeOK, "not installed")
	if changes != 4 { // upload, activate, deactivate, uninstall … and nothing for failed verbs
		t.Errorf("Changed called %d times", changes)
	}
}

func TestBrokenConfigKeepsTheOldOne(t *testing.T) {
	n := newNode(t, "n0011")
	call(t, n, "INSTALL", "")
	expect(t, call(t, n, "UPLOAD_CONFIG", b64(clientCfg)), CodeOK, "uploaded")
	good, _ := os.ReadFile(n.Settings.ConnectionsFile)
	broken := strings.Replace(clientCfg, "*/2 * * * *", "every two minutes", 1)
	broken = strings.Replace(broken, "s3cret@%s/v0002", "s3cret@10.0.0.1/v0002", 1)
	r := call(t, n, "UPLOAD_CONFIG", b64(broken))
	expect(t, r, CodeFailed, "configuration not changed: 4:15: START_CYCLE \"every two minutes\"")
	expect(t, r, CodeFailed, "\n6:20: the host must be %s")
	if strings.Contains(r.Output, "s3cret") {
		t.Errorf("error shows the password: %s", r.Output)
	}
	if got, _ := os.ReadFile(n.Settings.ConnectionsFile); string(got) != string(good) {
		t.Errorf("the old configuration was replaced:\n%s", got)
	}
	expect(t, call(t, n, "UPLOAD_CONFIG", "%%%not base64"), CodeFailed, "is not base64")
	expect(t, call(t, n, "UPLOAD_CONFIG", ""), CodeFailed, "no configuration")
}

func TestBadInputs(t *testing.T) {
	n := newNode(t, "n0011")
	if _, err := n.Call(context.Background(), "REBOOT", ""); !errors.Is(err, ErrUnknownVerb) {
		t.Errorf("unknown verb: %v", err)
	}
	call(t, n, "INSTALL", "")
	expect(t, call(t, n, "SSHKEY", "Connection1"), CodeFailed, "no configuration uploaded yet")
	call(t, n, "UPLOAD_CONFIG", b64(clientCfg))
	expect(t, call(t, n, "SSHKEY", "Connection9"), CodeFailed, `no connection "Connection9" in the configuration (it has Connection1)`)
	expect(t, call(t, n, "SSHKEY", ""), CodeFailed, "name a connection")
	expect(t, call(t, n, "UPLOAD_KEY", b64("ssh-ed25519 AAAAnotakey backupsync:Connection1@n1\n")), CodeFailed, "no key stored: ")
	expect(t, call(t, n, "GETLOG", "many"), CodeFailed, "number of lines")
	expect(t, call(t, n, "DEACTIVATE", "Connection1"), CodeOK, "not activated")
	expect(t, call(t, n, "DEACTIVATE", "Conection1"), CodeFailed, `no connection "Conection1"`)
}

type fakeLog []string

func (f fakeLog) Tail(n int) ([]string, error) { return f[max(0, len(f)-n):], nil }

func TestGetLog(t *testing.T) {
	n := newNode(t, "n0011")
	n.Log = fakeLog{"a", "b", "c"}
	call(t, n, "INSTALL", "")
	expect(t, call(t, n, "GETLOG", "2"), CodeOK, "b\nc")
	expect(t, call(t, n, "GETLOG", ""), CodeOK, "a\nb\nc")
}
