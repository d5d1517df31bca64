package tunnel

// Trust on first use of host keys, pinned-only mode, unbound (guide-form)
// client keys, and the reasons a refused tunnel gives the client. Our
// client against our server on 127.0.3.2, 127.0.3.6; 127.0.3.5 for a node
// where nothing listens.

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// closedTarget is an address on ipFTP that accepts and closes at once: a
// channel to it opens, which is all these tests need.
func closedTarget(t *testing.T) string {
	t.Helper()
	ln := listenOn(t, ipFTP)
	serveConns(t, ln, func(net.Conn) {})
	return ln.Addr().String()
}

// authorized returns a server key store (node n0021) with client's key
// for C1 authorized.
func authorized(t *testing.T, client *KeyStore) *KeyStore {
	t.Helper()
	server := newStoreTB(t, "n0021")
	cl, _ := client.ClientKeyLine("C1", "")
	if _, err := server.Upload([]byte(cl)); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Activate("C1"); err != nil {
		t.Fatal(err)
	}
	return server
}

func dialOnce(c *Client, target string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := c.DialContext(ctx, "tcp", target)
	if err == nil {
		conn.Close()
	}
	return err
}

func TestTrustOnFirstUseThenStrict(t *testing.T) {
	target := closedTarget(t)
	client := newStoreTB(t, "n0011")
	serverKeys := authorized(t, client)
	ln := listenOn(t, ipServer)
	addr := ln.Addr().String()
	srv := startServer(t, ln, serverKeys, target, nil)
	hostSigner, _ := serverKeys.HostKey("")
	fp := ssh.FingerprintSHA256(hostSigner.PublicKey())

	// First contact: accepted and pinned for that address, logged.
	c, lb := newClient(t, client, []string{addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipFTP })
	if err := dialOnce(c, target); err != nil {
		t.Fatalf("first use: %v", err)
	}
	lb.waitFor(t, time.Second, "pinned host key "+fp+" of "+addr+" for C1 on first use")
	pins, _ := client.PinnedHostKeys("C1")
	if len(pins) != 1 || pins[0].Node != addr || !pins[0].IsAddress() || pins[0].Fingerprint() != fp {
		t.Fatalf("pins %+v", pins)
	}
	status, _ := client.HostKeyStatus("C1")
	if len(status) != 1 || !strings.Contains(status[0], addr) || !strings.Contains(status[0], fp) {
		t.Fatalf("status %q", status)
	}
	checkModes(t, client.Dir())

	// A later client (the next cycle) uses the pin and writes nothing.
	c.Close()
	c2, lb2 := newClient(t, client, []string{addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipFTP })
	if err := dialOnce(c2, target); err != nil {
		t.Fatalf("second contact: %v", err)
	}
	if lb2.count("on first use") != 0 {
		t.Errorf("pinned again:\n%s", lb2.String())
	}
	c2.Close()

	// The node comes back on the same address with another host key:
	// refused, naming both fingerprints and what to do.
	srv.Close()
	imposterKeys := authorized(t, client)
	imposterSigner, _ := imposterKeys.HostKey("")
	newFP := ssh.FingerprintSHA256(imposterSigner.PublicKey())
	ln2, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	startServer(t, ln2, imposterKeys, target, nil)
	c3, lb3 := newClient(t, client, []string{addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipFTP })
	err = dialOnce(c3, target)
	var hk *HostKeyError
	if !errors.As(err, &hk) || !hk.Changed() || hk.PinnedFingerprint != fp || hk.Fingerprint != newFP {
		t.Fatalf("changed host key: %v", err)
	}
	for _, want := range []string{fp, newFP, addr, "UPLOAD_KEY", "sed -i", client.PinFile("C1")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	lb3.waitFor(t, time.Second, "refused host key", newFP)
	if pins, _ := client.PinnedHostKeys("C1"); len(pins) != 1 || pins[0].Fingerprint() != fp {
		t.Fatalf("the pin changed: %+v", pins)
	}

	// The documented command removes the pin; the next contact pins anew.
	cmd := exec.Command("sh", "-c", unpinCommand("C1", addr, client.PinFile("C1")))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("unpin command: %v\n%s", err, out)
	}
	if pins, _ := client.PinnedHostKeys("C1"); len(pins) != 0 {
		t.Fatalf("pin still there after the command: %+v", pins)
	}
	checkModes(t, client.Dir())
	if err := dialOnce(c3, target); err != nil {
		t.Fatalf("after unpinning: %v", err)
	}
	lb3.waitFor(t, time.Second, "pinned host key "+newFP)
	if ok, err := client.Unpin("C1", addr); !ok || err != nil {
		t.Fatalf("Unpin: %v %v", ok, err)
	}
}

func TestTrustOnFirstUseIsPerAddress(t *testing.T) {
	target := closedTarget(t)
	client := newStoreTB(t, "n0011")
	s1, s2 := authorized(t, client), authorized(t, client)
	a1 := startServer(t, listenOn(t, ipServer), s1, target, nil).Addr
	a2 := startServer(t, listenOn(t, ipServer2), s2, target, nil).Addr
	// Failover order: the first node, then the second when it is down.
	c, _ := newClient(t, client, []string{a1}, func(cfg *ClientConfig) { cfg.FTPHost = ipFTP })
	if err := dialOnce(c, target); err != nil {
		t.Fatal(err)
	}
	c2, _ := newClient(t, client, []string{a2}, func(cfg *ClientConfig) { cfg.FTPHost = ipFTP })
	if err := dialOnce(c2, target); err != nil {
		t.Fatal(err)
	}
	pins, _ := client.PinnedHostKeys("C1")
	if len(pins) != 2 || pins[0].Fingerprint() == pins[1].Fingerprint() {
		t.Fatalf("want one pin per address: %+v", pins)
	}
	// The first address presenting the second node's key is refused.
	if _, _, err := client.PinFirstUse("C1", a1, pins[1].Key); err == nil {
		t.Fatal("PinFirstUse replaced a pin")
	}
}

func TestPinnedOnlyAndUploadedPins(t *testing.T) {
	target := closedTarget(t)
	client := newStoreTB(t, "n0011")
	serverKeys := authorized(t, client)
	srv := startServer(t, listenOn(t, ipServer), serverKeys, target, nil)
	pinned := func(cfg *ClientConfig) {
		cfg.FTPHost = ipFTP
		cfg.HostKeys = HostKeysPinned
	}
	c, _ := newClient(t, client, []string{srv.Addr}, pinned)
	err := dialOnce(c, target)
	var hk *HostKeyError
	if !errors.As(err, &hk) || hk.Pinned != 0 || !strings.Contains(err.Error(), `ssh_client.host_keys is "pinned"`) {
		t.Fatalf("pinned mode, nothing pinned: %v", err)
	}
	if pins, _ := client.PinnedHostKeys("C1"); len(pins) != 0 {
		t.Fatalf("pinned mode pinned on first use: %+v", pins)
	}

	// An uploaded host key of another node pins ahead of time: with it,
	// accept-new does not take a new key either.
	other := newStoreTB(t, "n0099")
	ol, _ := other.HostKeyLine("C1", "")
	if _, err := client.Upload([]byte(ol)); err != nil {
		t.Fatal(err)
	}
	c2, _ := newClient(t, client, []string{srv.Addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipFTP })
	if err := dialOnce(c2, target); !errors.As(err, &hk) || hk.Pinned != 1 {
		t.Fatalf("accept-new with an uploaded pin of another key: %v", err)
	}
	// The server's own line uploaded: both modes work, nothing per address.
	hl, _ := serverKeys.HostKeyLine("C1", "")
	client.Upload([]byte(hl))
	for _, mod := range []func(*ClientConfig){pinned, func(cfg *ClientConfig) { cfg.FTPHost = ipFTP }} {
		c, _ := newClient(t, client, []string{srv.Addr}, mod)
		if err := dialOnce(c, target); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range mustPins(t, client) {
		if p.IsAddress() {
			t.Errorf("an address was pinned although uploaded pins exist: %+v", p)
		}
	}
	if _, err := NewClient(ClientConfig{Connection: "C1", Nodes: []string{"x"}, Keys: client, HostKeys: "ask"}); err == nil {
		t.Error("unknown host key policy accepted")
	}
}

func mustPins(t *testing.T, ks *KeyStore) []KeyLine {
	t.Helper()
	p, err := ks.PinnedHostKeys("C1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRefusalsSayWhy: the three diagnoses of a refused tunnel, and a name
// mismatch between the clusters, seen from the client.
func TestRefusalsSayWhy(t *testing.T) {
	target := closedTarget(t)
	client := newStoreTB(t, "n0011")
	cl, _ := client.ClientKeyLine("C1", "")
	refused := func(t *testing.T, serverKeys *KeyStore, allow func(string) bool) (*RefusedError, error) {
		t.Helper()
		srv := startServer(t, listenOn(t, ipServer), serverKeys, target, func(cfg *ServerConfig) { cfg.AllowConnection = allow })
		c, _ := newClient(t, client, []string{srv.Addr}, func(cfg *ClientConfig) { cfg.FTPHost = ipFTP })
		err := dialOnce(c, target)
		var re *RefusedError
		if !errors.As(err, &re) {
			t.Fatalf("want a RefusedError, got %v", err)
		}
		if pins, _ := client.PinnedHostKeys("C1"); len(pins) != 0 && re.Reason != RefusedNameMismatch {
			t.Errorf("a refused contact pinned the host key")
		}
		return re, err
	}
	contains := func(t *testing.T, err error, subs ...string) {
		t.Helper()
		for _, s := range subs {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error lacks %q: %v", s, err)
			}
		}
	}

	t.Run("not running", func(t *testing.T) {
		addr := net.JoinHostPort(ipDead, "1")
		c, _ := newClient(t, client, []string{addr}, nil)
		err := dialOnce(c, target)
		var re *RefusedError
		if !errors.As(err, &re) || re.Reason != RefusedNotRunning {
			t.Fatalf("got %v", err)
		}
		contains(t, err, "is backupsyncd running on "+ipDead, "C1 configured with SSH = server there")
	})
	t.Run("never uploaded", func(t *testing.T) {
		re, err := refused(t, newStoreTB(t, "n0021"), nil)
		if re.Reason != RefusedNoKey {
			t.Fatalf("reason %s: %v", re.Reason, err)
		}
		contains(t, err, "has no key of this node for C1", "UPLOAD_KEY", "SSHKEY C1")
	})
	t.Run("uploaded, not authorized", func(t *testing.T) {
		ks := newStoreTB(t, "n0021")
		ks.Upload([]byte(cl))
		re, err := refused(t, ks, func(string) bool { return true })
		if re.Reason != RefusedPending {
			t.Fatalf("reason %s: %v", re.Reason, err)
		}
		contains(t, err, "run SSHKEY C1 on the remote cluster")
		if strings.Contains(re.Detail, "C1") {
			t.Errorf("the banner names the connection: %q", re.Detail)
		}
	})
	t.Run("uploaded in the guide's form, not authorized", func(t *testing.T) {
		ks := newStoreTB(t, "n0021")
		f := strings.Fields(cl)
		if _, err := ks.Upload([]byte(wrapLine(f[0]+" "+f[1]+" root@n0011.c0001.exacluster.local", 60))); err != nil {
			t.Fatal(err)
		}
		re, err := refused(t, ks, func(string) bool { return true })
		if re.Reason != RefusedPending {
			t.Fatalf("reason %s: %v", re.Reason, err)
		}
	})
	t.Run("authorized for a connection not served", func(t *testing.T) {
		re, err := refused(t, authorized(t, client), func(string) bool { return false })
		if re.Reason != RefusedNotServed {
			t.Fatalf("reason %s: %v", re.Reason, err)
		}
		contains(t, err, "is the connection named C1 on the remote cluster too")
	})
	t.Run("uploaded for another connection name", func(t *testing.T) {
		ks := newStoreTB(t, "n0021")
		ks.Upload([]byte(strings.Replace(cl, "backupsync:C1@", "backupsync:Connection9@", 1)))
		re, err := refused(t, ks, func(c string) bool { return c == "C1" })
		if re.Reason != RefusedNotServed || strings.Contains(re.Detail, "Connection9") {
			t.Fatalf("reason %s: %v", re.Reason, err)
		}
	})
	t.Run("authorized for another connection name", func(t *testing.T) {
		ks := newStoreTB(t, "n0021")
		ks.Upload([]byte(strings.Replace(cl, "backupsync:C1@", "backupsync:Connection9@", 1)))
		ks.Activate("Connection9")
		re, err := refused(t, ks, nil)
		if re.Reason != RefusedNameMismatch || re.Remote != "Connection9" {
			t.Fatalf("reason %s: %v", re.Reason, err)
		}
		contains(t, err, `"Connection9", not "C1"`, "must be the same on both clusters")
	})
}

// TestPendingKeyNeverLogsIn: a key that passes the first check (known,
// pending) is still refused once its signature is verified, whatever the
// client tries; OpenSSH-style clients see the banner.
func TestPendingKeyNeverLogsIn(t *testing.T) {
	target := closedTarget(t)
	client := newStoreTB(t, "n0011")
	server := newStoreTB(t, "n0021")
	cl, _ := client.ClientKeyLine("C1", "")
	server.Upload([]byte(cl))
	srv := startServer(t, listenOn(t, ipServer), server, target, nil)
	signer, _ := client.ClientKey("C1", "")
	var banners []string
	cfg := &ssh.ClientConfig{
		User:            DefaultUser,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		BannerCallback:  func(m string) error { banners = append(banners, m); return nil },
		Timeout:         5 * time.Second,
	}
	if c, err := ssh.Dial("tcp", srv.Addr, cfg); err == nil {
		c.Close()
		t.Fatal("a pending key logged in")
	}
	if len(banners) == 0 || !strings.HasPrefix(banners[0], bannerPrefix+string(RefusedPending)) {
		t.Fatalf("banners %q", banners)
	}
	srv.Log.waitFor(t, time.Second, "refused public key", "pending")
}

func TestUnboundKeysBindOnSSHKEY(t *testing.T) {
	ks := newStoreTB(t, "n0021")
	guide, gk := rsaLine(t, "root@n0011.c0001.exacluster.local")
	anon, ak := edLine(t, "")
	anon2, ak2 := edLine(t, "someone@laptop")
	got, err := ks.Upload([]byte(wrapLine(guide, 60) + "\n" + anon + "\n" + anon2 + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Node != "n0011" || got[1].Node != "key-1" || got[2].Node != "key-2" {
		t.Fatalf("stored %+v", got)
	}
	for _, k := range []ssh.PublicKey{gk, ak, ak2} {
		if st, _, err := ks.LookupClientKey(k); st != KeyUnboundPending || err != nil {
			t.Fatalf("state %v %v", st, err)
		}
	}
	// Uploading the same file again changes nothing.
	again, err := ks.Upload([]byte(guide + "\n" + anon + "\n"))
	if err != nil || again[1].Node != "key-1" {
		t.Fatalf("again: %+v %v", again, err)
	}
	if u, _ := ks.UnboundKeys(); len(u) != 3 {
		t.Fatalf("unbound %d", len(u))
	}
	// Connection1 already has a key-1 of another key: renumbered.
	other, _ := edLine(t, "backupsync:Connection1@key-1")
	ks.Upload([]byte(other))
	bound, err := ks.BindPending("Connection1")
	if err != nil || len(bound) != 3 {
		t.Fatalf("bind: %+v %v", bound, err)
	}
	pend, _ := ks.PendingKeys("Connection1")
	if len(pend) != 4 {
		t.Fatalf("pending %+v", pend)
	}
	nodes := map[string]bool{}
	for _, p := range pend {
		nodes[p.Node] = true
	}
	if !nodes["n0011"] || !nodes["key-1"] || !nodes["key-2"] || !nodes["key-3"] {
		t.Fatalf("pending nodes %v", nodes)
	}
	if st, c, _ := ks.LookupClientKey(gk); st != KeyPending || c != "Connection1" {
		t.Fatalf("after bind: %v %q", st, c)
	}
	if u, _ := ks.UnboundKeys(); len(u) != 0 {
		t.Fatalf("unbound left %d", len(u))
	}
	if n, err := ks.Activate("Connection1"); n != 4 || err != nil {
		t.Fatalf("activate %d %v", n, err)
	}
	if st, c, _ := ks.LookupClientKey(ak); st != KeyAuthorized || c != "Connection1" {
		t.Fatalf("after activate: %v %q", st, c)
	}
	// Binding again with nothing unbound is a no-op.
	if b, err := ks.BindPending("Connection1"); len(b) != 0 || err != nil {
		t.Fatalf("second bind %+v %v", b, err)
	}
	checkModes(t, ks.Dir())
}

func TestOwnClientKey(t *testing.T) {
	ks := newStoreTB(t, "n0011")
	line, _ := ks.ClientKeyLine("Connection1", "")
	k, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(line))
	if c, ok, err := ks.OwnClientKey(k); !ok || c != "Connection1" || err != nil {
		t.Fatalf("own key: %q %v %v", c, ok, err)
	}
	_, other := edLine(t, "")
	if _, ok, _ := ks.OwnClientKey(other); ok {
		t.Fatal("another key taken for our own")
	}
}

func TestUnboundKeysAreCapped(t *testing.T) {
	ks := newStoreTB(t, "n0021")
	var b strings.Builder
	for range MaxUnboundKeys {
		line, _ := edLine(t, "")
		b.WriteString(line + "\n")
	}
	if _, err := ks.Upload([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	before := treeSnapshot(t, ks.Dir())
	one, _ := edLine(t, "root@n0099")
	if _, err := ks.Upload([]byte(one)); err == nil || !strings.Contains(err.Error(), "run SSHKEY") {
		t.Fatalf("over the cap: %v", err)
	}
	if after := treeSnapshot(t, ks.Dir()); len(after) != len(before) {
		t.Fatal("the store changed")
	}
}

// TestHelloFromHostilePeers: an authenticated peer's malformed or
// oversized hello gets an answer and changes nothing; a flood of them is
// answered one by one.
func TestHelloFromHostilePeers(t *testing.T) {
	target := closedTarget(t)
	p := newPair(t)
	srv := startServer(t, listenOn(t, ipServer), p.server, target, nil)
	sc, err := ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{User: DefaultUser, Auth: []ssh.AuthMethod{ssh.PublicKeys(mustSigner(t, p.client))},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if ok, _, err := sc.SendRequest(helloRequest, true, []byte{0, 0, 0, 9, 'x'}); ok || err != nil {
		t.Fatalf("malformed hello: %v %v", ok, err)
	}
	long := strings.Repeat("\x1b[2J", 8000)
	ok, payload, err := sc.SendRequest(helloRequest, true, ssh.Marshal(helloMsg{Connection: long}))
	var r helloReply
	if !ok || err != nil || ssh.Unmarshal(payload, &r) != nil || r.Connection != "C1" || r.Node != "n0021" {
		t.Fatalf("long hello: %v %v %+v", ok, err, r)
	}
	for range 500 {
		if ok, _, err := sc.SendRequest(helloRequest, true, ssh.Marshal(helloMsg{Connection: "C1"})); !ok || err != nil {
			t.Fatalf("hello flood: %v %v", ok, err)
		}
	}
	srv.Log.waitFor(t, time.Second, "malformed hello")
	if strings.Contains(srv.Log.String(), "\x1b") || strings.Contains(srv.Log.String(), "[2J[2J[2J[2J[2J[2J[2J[2J[2J[2J[2J[2J[2J[2J[2J[2J[2J") {
		t.Error("the peer's text reached the log unfiltered or uncut")
	}
}
