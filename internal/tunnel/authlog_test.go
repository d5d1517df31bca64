package tunnel

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// A stranger trying 30 keys of its own is logged once for the burst, not
// once per key: refused logins cannot flood the plugin log.
func TestRefusedLoginsLoggedOncePerBurst(t *testing.T) {
	p := newPair(t)
	target := listenOn(t, ipFTP)
	defer target.Close()
	srv := startServer(t, listenOn(t, ipServer), p.server, target.Addr().String(), nil)
	for range 30 {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		signer, _ := ssh.NewSignerFromKey(priv)
		if c, err := ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{User: DefaultUser, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second}); err == nil {
			c.Close()
			t.Fatal("a stranger's key logged in")
		}
	}
	srv.Log.waitFor(t, time.Second, "refused public key")
	if n := srv.Log.count("refused public key"); n != 1 {
		t.Errorf("%d log lines for 30 refused keys from one address, want 1 (then a summary):\n%s", n, srv.Log)
	}
}
