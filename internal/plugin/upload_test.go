package plugin

import (
	"os"
	"strings"
	"testing"

	"backupsync/internal/tunnel"
)

// edu03Cfg is the client side of a second pairing (to EDU03).
const edu03Cfg = `Connection3
{
DATABASE_NAME = exa_db3
START_CYCLE = 0 * * * *
LOCAL_URL = ftp://FTPbackup:s3cret@%s/v0003
REMOTE_URL = ftp://FTPbackup:other@%s/v0005
REMOTE_NODES = 127.0.9.31
SSH = client
}
`

// TestUploadConfigPerPairing: a cluster that is the server of EDU01's
// Connection1 and the client of Connection3 to EDU03 gets one file per
// pairing; the second upload keeps the first connection, its activation
// and its keys; a removal drops the connection and its activation.
func TestUploadConfigPerPairing(t *testing.T) {
	n := newNode(t, "n0011")
	call(t, n, "INSTALL", "")
	expect(t, call(t, n, "UPLOAD_CONFIG", b64(serverCfg)), CodeOK, "added: Connection1 (server)")
	// Connection1 is paired and activated: a client key authorized.
	if _, err := n.Keys.Upload([]byte(clientKeyLine(t) + "\n")); err != nil {
		t.Fatal(err)
	}
	expect(t, call(t, n, "SSHKEY", "Connection1"), CodeOK, "ssh-")
	expect(t, call(t, n, "ACTIVATE", "Connection1"), CodeOK, "activated")
	before, _ := n.Keys.AuthorizedKeys("Connection1")

	r := call(t, n, "UPLOAD_CONFIG", b64(edu03Cfg))
	expect(t, r, CodeOK, "1 added, 0 replaced, 0 unchanged, 1 kept, 0 removed\nadded: Connection3 (client)\nkept: Connection1 (server, activated)")
	if strings.Contains(r.Output, "s3cret") || strings.Contains(r.Output, "warning") {
		t.Errorf("reply: %q", r.Output)
	}
	conns, err := n.connections()
	if err != nil || len(conns) != 2 {
		t.Fatalf("connections %v, %v", conns, err)
	}
	if !strings.HasPrefix(conns[0].Origin(), "uploaded ") || !strings.Contains(conns[1].Origin(), "connection 1 of 1") {
		t.Errorf("origins %q, %q", conns[0].Origin(), conns[1].Origin())
	}
	expect(t, call(t, n, "STATUS", ""), CodeOK, "activated")
	expect(t, call(t, n, "STATUS", "Connection1"), CodeOK, "origin: uploaded ")
	after, _ := n.Keys.AuthorizedKeys("Connection1")
	if len(before) == 0 || len(after) != len(before) {
		t.Errorf("authorized keys of Connection1: %d before, %d after the second upload", len(before), len(after))
	}

	// The first file again: Connection1 unchanged (the file is byte for
	// byte the same), Connection3 kept; an edited first file replaces it.
	data, _ := os.ReadFile(n.Settings.ConnectionsFile)
	expect(t, call(t, n, "UPLOAD_CONFIG", b64(serverCfg)), CodeOK, "0 added, 0 replaced, 1 unchanged, 1 kept, 0 removed\nunchanged (this file uploaded before): Connection1 (server, activated)\nkept: Connection3 (client)")
	if again, _ := os.ReadFile(n.Settings.ConnectionsFile); string(again) != string(data) {
		t.Errorf("uploading the same file again changed the connections file:\n%s\nwas:\n%s", again, data)
	}
	expect(t, call(t, n, "UPLOAD_CONFIG", b64("# edited\n"+serverCfg)), CodeOK, "0 added, 1 replaced, 0 unchanged, 1 kept, 0 removed\nreplaced: Connection1 (server, activated)\nkept: Connection3 (client)")

	// Removal: the block form; the activation goes with it.
	r = call(t, n, "UPLOAD_CONFIG", b64("Connection1\n{\nREMOVE = true\n}\nConnection7\n{\nREMOVE = true\n}\n"))
	expect(t, r, CodeOK, "0 added, 0 replaced, 0 unchanged, 1 kept, 1 removed\nkept: Connection3 (client)\nremoved: Connection1\nnot configured, nothing to remove: Connection7\nnote: Connection1 was activated: its activation was dropped with it")
	expect(t, call(t, n, "STATUS", ""), CodeOK, "not activated")
	expect(t, call(t, n, "STATUS", "Connection1"), CodeFailed, `no connection "Connection1" in the configuration (it has Connection3)`)
}

// TestUploadConfigHandWrittenFile: an admin's own connections file keeps
// its blocks and comments; STATUS says where each connection came from.
func TestUploadConfigHandWrittenFile(t *testing.T) {
	n := newNode(t, "n0011")
	call(t, n, "INSTALL", "")
	hand := "# written by the admin\n" + serverCfg
	os.MkdirAll(strings.TrimSuffix(n.Settings.ConnectionsFile, "/connections.cfg"), 0o755)
	if err := os.WriteFile(n.Settings.ConnectionsFile, []byte(hand), 0o600); err != nil {
		t.Fatal(err)
	}
	expect(t, call(t, n, "UPLOAD_CONFIG", b64(edu03Cfg)), CodeOK, "kept: Connection1 (server)")
	data, _ := os.ReadFile(n.Settings.ConnectionsFile)
	if !strings.HasPrefix(string(data), hand) {
		t.Errorf("the hand-written part changed:\n%s", data)
	}
	expect(t, call(t, n, "STATUS", "Connection1"), CodeOK, "origin: written in "+n.Settings.ConnectionsFile+" line 2")

	// A broken hand-written block stops an upload that does not repair it,
	// naming the file; one that replaces it goes through.
	broken := hand + "Connection2\n{\nSSH = sever\n}\n"
	os.WriteFile(n.Settings.ConnectionsFile, []byte(broken), 0o600)
	expect(t, call(t, n, "UPLOAD_CONFIG", b64(edu03Cfg)), CodeFailed, n.Settings.ConnectionsFile+`:9:7: SSH is "sever"`)
	if data, _ := os.ReadFile(n.Settings.ConnectionsFile); string(data) != broken {
		t.Error("a refused upload changed the file")
	}
	expect(t, call(t, n, "UPLOAD_CONFIG", b64("Connection2\n{\nREMOVE = true\n}\n")), CodeOK, "removed: Connection2")
}

func TestUploadConfigRefusals(t *testing.T) {
	n := newNode(t, "n0011")
	call(t, n, "INSTALL", "")
	expect(t, call(t, n, "UPLOAD_CONFIG", b64(serverCfg+serverCfg)), CodeFailed, "configuration not changed: 6:1: connection \"Connection1\" is defined twice")
	expect(t, call(t, n, "UPLOAD_CONFIG", b64("# nothing\n")), CodeFailed, "the file holds no connection block")
	expect(t, call(t, n, "UPLOAD_CONFIG", b64("Connection1\n{\nREMOVE = true\nSSH = server\n}\n")), CodeFailed, "a removal takes no other key")
	if _, err := os.Stat(n.Settings.ConnectionsFile); err == nil {
		t.Error("a refused upload wrote the file")
	}
}

func TestTestVerb(t *testing.T) {
	if !Known("test") || !Known(" TEST ") {
		t.Error("TEST is not known")
	}
	if _, listed := Functions["TEST"]; listed {
		t.Error("showPluginFunctions lists TEST: the guide's nine verbs must stay as they are")
	}
	if CallTimeout("test") <= TestTimeout || CallTimeout("STATUS") != 0 {
		t.Error("CallTimeout")
	}
	n := newNode(t, "n0011")
	expect(t, call(t, n, "TEST", "Connection1"), CodeFailed, "no configuration uploaded yet")
	call(t, n, "INSTALL", "")
	call(t, n, "UPLOAD_CONFIG", b64(serverCfg))
	expect(t, call(t, n, "TEST", "Connection1"), CodeFailed, "run the test of Connection1 on the client cluster")
	call(t, n, "UPLOAD_CONFIG", b64(strings.ReplaceAll(edu03Cfg, "@%s/", "@%s:1/")))
	r := call(t, n, "TEST", "connection3")
	// Nothing listens: the logins fail, each with its cause; no password.
	expect(t, r, CodeFailed, "test of Connection3 on n0011: FAILED at source login, SSH tunnel")
	if strings.Contains(r.Output, "s3cret") || strings.Contains(r.Output, "other") {
		t.Errorf("TEST shows a password: %s", r.Output)
	}
	// A flood of TESTs: once MaxConcurrentTests run, one more is refused at
	// once instead of opening more logins and tunnels.
	for range MaxConcurrentTests {
		testSlots <- struct{}{}
	}
	expect(t, call(t, n, "TEST", "connection3"), CodeFailed, "2 tests already run on n0011: try again")
	for range MaxConcurrentTests {
		<-testSlots
	}
	expect(t, call(t, n, "TEST", "connection3"), CodeFailed, "FAILED at source login")
}

// clientKeyLine is the SSHKEY Connection1 line of a client node n0021.
func clientKeyLine(t *testing.T) string {
	t.Helper()
	keys, err := tunnel.NewKeyStore(t.TempDir(), "n0021")
	if err != nil {
		t.Fatal(err)
	}
	line, err := keys.ClientKeyLine("Connection1", "")
	if err != nil {
		t.Fatal(err)
	}
	return line
}
