package plugin

import (
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"backupsync/internal/config"
)

// wrap cuts s into lines of w characters, as a terminal prints it.
func wrap(s string, w int) string {
	var b strings.Builder
	for len(s) > w {
		b.WriteString(s[:w] + "\n")
		s = s[w:]
	}
	return b.String() + s
}

func installed(t *testing.T, name, cfg string) *Node {
	t.Helper()
	n := newNode(t, name)
	call(t, n, "INSTALL", "")
	expect(t, call(t, n, "UPLOAD_CONFIG", b64(cfg)), CodeOK, "uploaded")
	return n
}

// TestGuideKeyFlow: steps 8-10 of the guide as written: the client keys
// go to the server, SSHKEY there authorizes them, the same file goes to
// the client cluster (its own keys: nothing to store), and ACTIVATE on the
// client needs no host key (accept-new).
func TestGuideKeyFlow(t *testing.T) {
	c1, c2 := installed(t, "n0011", clientCfg), installed(t, "n0012", clientCfg)
	server := installed(t, "n0021", serverCfg)
	serverChanged := 0
	server.Changed = func() { serverChanged++ }

	var lines []string
	for _, c := range []*Node{c1, c2} {
		r := call(t, c, "SSHKEY", "Connection1")
		expect(t, r, CodeOK, "ssh-ed25519 ")
		lines = append(lines, r.Output)
	}
	keyFile := wrap(lines[0], 70) + "\n" + wrap(lines[1], 70) + "\n"

	r := call(t, server, "UPLOAD_KEY", b64(keyFile))
	expect(t, r, CodeOK, "n0021: stored client key SHA256:")
	expect(t, r, CodeOK, " of n0011 for Connection1 (pending: run SSHKEY Connection1 here to authorize)\nn0021: stored client key SHA256:")
	expect(t, r, CodeOK, " of n0012 for Connection1 (pending: run SSHKEY Connection1 here to authorize)")
	expect(t, call(t, server, "ACTIVATE", "Connection1"), CodeFailed, "2 uploaded client key(s) are not yet authorized: run SSHKEY Connection1 here first")
	host := call(t, server, "SSHKEY", "Connection1")
	expect(t, host, CodeOK, "backupsync-host:Connection1@n0021")
	if serverChanged != 1 {
		t.Errorf("SSHKEY that authorized keys called Changed %d times", serverChanged)
	}
	if auth, _ := server.Keys.AuthorizedKeys("Connection1"); len(auth) != 2 {
		t.Fatalf("authorized %d", len(auth))
	}
	// Again: already authorized, nothing stored, SSHKEY changes nothing.
	expect(t, call(t, server, "UPLOAD_KEY", b64(keyFile)), CodeOK, "is already authorized for Connection1: nothing to store")
	call(t, server, "SSHKEY", "Connection1")
	if serverChanged != 1 {
		t.Errorf("an SSHKEY that authorized nothing called Changed")
	}

	// Step 10 on the client cluster: the same file.
	r = call(t, c1, "UPLOAD_KEY", b64(keyFile))
	expect(t, r, CodeOK, "n0011: this node's own key for Connection1: nothing to store\n")
	expect(t, r, CodeOK, "of n0012 for Connection1: Connection1 is SSH = client on this node, which authorizes no client keys: nothing to store")
	if p, _ := c1.Keys.PendingKeys("Connection1"); len(p) != 0 {
		t.Errorf("the client stored %d keys", len(p))
	}
	expect(t, call(t, c1, "ACTIVATE", "Connection1"), CodeOK, "activated")
}

// TestGuideRSAKeys: the original plugin's form — RSA, a root@ comment,
// wrapped — is stored pending for the next SSHKEY and bound by it.
func TestGuideRSAKeys(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := ssh.NewPublicKey(&k.PublicKey)
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " root@n0011.c0001.exacluster.local"
	server := installed(t, "n0021", serverCfg)
	r := call(t, server, "UPLOAD_KEY", b64(wrap(line, 64)))
	expect(t, r, CodeOK, "n0021: stored client key "+ssh.FingerprintSHA256(pub)+" of n0011 for Connection1 (pending: run SSHKEY Connection1 here to authorize)")
	expect(t, call(t, server, "SSHKEY", "Connection1"), CodeOK, "backupsync-host:Connection1@n0021")
	auth, _ := server.Keys.AuthorizedKeys("Connection1")
	if len(auth) != 1 || auth[0].Node != "n0011" || auth[0].Key.Type() != ssh.KeyAlgoRSA {
		t.Fatalf("authorized %+v", auth)
	}

	// A key with a comment that names no node is numbered; a node with two
	// server connections does not guess which.
	two := installed(t, "n0022", serverCfg+"Connection2\n{\nSSH = server\n}\n")
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	op, _ := ssh.NewPublicKey(&other.PublicKey)
	r = call(t, two, "UPLOAD_KEY", b64(strings.TrimSpace(string(ssh.MarshalAuthorizedKey(op)))+" admin@laptop\n"))
	expect(t, r, CodeOK, `of key-1 (comment "admin@laptop") for the next SSHKEY CONN on this node (pending: run SSHKEY CONN here to authorize)`)

	// On a client cluster node such a key is not stored.
	client := installed(t, "n0011", clientCfg)
	expect(t, call(t, client, "UPLOAD_KEY", b64(line)), CodeOK, "no connection on this node has SSH = server, so it authorizes no client keys: nothing to store")
	// Garbage stores nothing and says where.
	expect(t, call(t, server, "UPLOAD_KEY", b64(line+"\nnot a key\n")), CodeFailed, "no key stored: tunnel: key line 2")
	expect(t, call(t, server, "UPLOAD_KEY", b64("# nothing\n")), CodeFailed, "no key stored: the upload holds no public key line")
}

// TestPinnedOnlyActivate: with ssh_client.host_keys = "pinned" ACTIVATE
// on a client still wants the remote's host key uploaded.
func TestPinnedOnlyActivate(t *testing.T) {
	n := newNode(t, "n0011")
	n.Settings.SSHClient = &config.SSHClient{HostKeys: config.HostKeysPinned}
	call(t, n, "INSTALL", "")
	call(t, n, "UPLOAD_CONFIG", b64(clientCfg))
	expect(t, call(t, n, "ACTIVATE", "Connection1"), CodeFailed, `no host key of the remote cluster is pinned for it (ssh_client.host_keys = "pinned")`)
	server := installed(t, "n0021", serverCfg)
	host := call(t, server, "SSHKEY", "Connection1")
	expect(t, call(t, n, "UPLOAD_KEY", b64(host.Output)), CodeOK, "n0011: pinned host key SHA256:")
	expect(t, call(t, n, "ACTIVATE", "Connection1"), CodeOK, "activated")
}
