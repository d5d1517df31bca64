package tunnel

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
)

func newStore(t *testing.T, node string) *KeyStore {
	t.Helper()
	ks, err := NewKeyStore(t.TempDir(), node)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// treeSnapshot returns path → mode and content of every entry under dir.
func treeSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			t.Fatal(err)
		}
		info, err := d.Info()
		if err != nil {
			t.Fatal(err)
		}
		v := info.Mode().String()
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			v += " " + string(b)
		}
		out[p] = v
		return nil
	})
	return out
}

func checkModes(t *testing.T, root string) {
	t.Helper()
	n := 0
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		info, _ := d.Info()
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, info.Mode().Perm(), want)
		}
		if strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("%s: temporary file left behind", p)
		}
		n++
		return nil
	})
	if n == 0 {
		t.Errorf("nothing under %s", root)
	}
}

func TestClientKeyCreatedOnFirstNeedWithPrivateModes(t *testing.T) {
	state := t.TempDir()
	os.Chmod(state, 0o755)
	ks, err := NewKeyStore(state, "n0011")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(state, "ssh")); !os.IsNotExist(err) {
		t.Fatalf("store created something before a key was needed: %v", err)
	}
	line, err := ks.ClientKeyLine("Connection1", "")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "ssh-ed25519" || f[2] != "backupsync:Connection1@n0011" {
		t.Fatalf("client key line %q", line)
	}
	checkModes(t, filepath.Join(state, "ssh"))
	if _, err := os.Stat(filepath.Join(state, "ssh", "conn", "Connection1", "id_ed25519")); err != nil {
		t.Fatal(err)
	}
	// Stable: the same key again, also from a fresh store on the same dir.
	again, err := ks.ClientKeyLine("Connection1", KeyEd25519)
	if err != nil || again != line {
		t.Fatalf("second call: %q, %v", again, err)
	}
	ks2, _ := NewKeyStore(state, "n0011")
	again, err = ks2.ClientKeyLine("Connection1", "")
	if err != nil || again != line {
		t.Fatalf("fresh store: %q, %v", again, err)
	}
	// The private key file is usable by OpenSSH tools (OpenSSH format).
	data, _ := os.ReadFile(filepath.Join(state, "ssh", "conn", "Connection1", "id_ed25519"))
	if !bytes.HasPrefix(data, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
		t.Errorf("private key is not in OpenSSH format")
	}
	if strings.Contains(line, "PRIVATE") {
		t.Errorf("public line leaks private material")
	}
	// Another connection gets another key.
	other, err := ks.ClientKeyLine("Connection2", "")
	if err != nil || strings.Fields(other)[1] == f[1] {
		t.Fatalf("Connection2 key %q, %v", other, err)
	}
}

func TestRSAKeysAre3072Bits(t *testing.T) {
	ks := newStore(t, "n0011")
	signer, err := ks.ClientKey("Old", KeyRSA)
	if err != nil {
		t.Fatal(err)
	}
	rk := signer.PublicKey().(ssh.CryptoPublicKey).CryptoPublicKey().(*rsa.PublicKey)
	if rk.N.BitLen() != 3072 {
		t.Fatalf("RSA key has %d bits", rk.N.BitLen())
	}
	line, err := ks.ClientKeyLine("Old", KeyRSA)
	if err != nil || !strings.HasPrefix(line, "ssh-rsa ") || !strings.HasSuffix(line, " backupsync:Old@n0011") {
		t.Fatalf("line %q, %v", line, err)
	}
	// The client offers every key present; ed25519 stays separate.
	signers, err := ks.clientSigners("Old")
	if err != nil || len(signers) != 1 || signers[0].PublicKey().Type() != ssh.KeyAlgoRSA {
		t.Fatalf("signers %v, %v", signers, err)
	}
	if _, err := ks.ClientKey("Old", "dsa"); err == nil {
		t.Fatal("unknown key type accepted")
	}
}

func TestHostKeyIsPerNodeWithConnectionComment(t *testing.T) {
	ks := newStore(t, "n0021")
	l1, err := ks.HostKeyLine("Connection1", "")
	if err != nil {
		t.Fatal(err)
	}
	l2, err := ks.HostKeyLine("Connection2", "")
	if err != nil {
		t.Fatal(err)
	}
	f1, f2 := strings.Fields(l1), strings.Fields(l2)
	if f1[2] != "backupsync-host:Connection1@n0021" || f2[2] != "backupsync-host:Connection2@n0021" {
		t.Fatalf("comments %q %q", f1[2], f2[2])
	}
	if f1[1] != f2[1] {
		t.Fatal("host key differs per connection; one per node is documented")
	}
	checkModes(t, ks.Dir())
	if _, err := ks.HostKeyLine("../x", ""); err == nil {
		t.Fatal("path-like connection name accepted")
	}
}

func TestConcurrentFirstUseYieldsOneKey(t *testing.T) {
	state := t.TempDir()
	var wg sync.WaitGroup
	lines := make([]string, 16)
	errs := make([]error, 16)
	for i := range lines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Separate stores: the link-based create must hold across
			// processes, not only under the store's mutex.
			ks, _ := NewKeyStore(state, "n1")
			lines[i], errs[i] = ks.ClientKeyLine("C", "")
		}()
	}
	wg.Wait()
	for i := range lines {
		if errs[i] != nil || lines[i] != lines[0] {
			t.Fatalf("call %d: %q %v; call 0: %q", i, lines[i], errs[i], lines[0])
		}
	}
	checkModes(t, filepath.Join(state, "ssh"))
}

func TestWriteFileAtomicReplacesByRename(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := writeFileAtomic(p, []byte("one\n")); err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(p)
	if err := writeFileAtomic(p, []byte("two\n")); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(p)
	if st1.Sys().(*syscall.Stat_t).Ino == st2.Sys().(*syscall.Stat_t).Ino {
		t.Error("file rewritten in place, not replaced")
	}
	b, _ := os.ReadFile(p)
	if string(b) != "two\n" || st2.Mode().Perm() != 0o600 {
		t.Errorf("content %q mode %v", b, st2.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("leftovers: %v", ents)
	}
	if err := createFileAtomic(p, []byte("three")); err == nil || !os.IsExist(err) {
		t.Errorf("createFileAtomic over an existing file: %v", err)
	}
	b, _ = os.ReadFile(p)
	if string(b) != "two\n" {
		t.Errorf("createFileAtomic replaced the file")
	}
}

// peerLine makes a public key line of a fresh key of the given type.
func peerLine(t *testing.T, kind string, comment string) (string, ssh.PublicKey) {
	t.Helper()
	var pub ssh.PublicKey
	var err error
	switch kind {
	case "ed25519":
		p, _, _ := ed25519.GenerateKey(rand.Reader)
		pub, err = ssh.NewPublicKey(p)
	case "rsa1024":
		k, _ := rsa.GenerateKey(rand.Reader, 1024)
		pub, err = ssh.NewPublicKey(&k.PublicKey)
	case "rsa2048":
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		pub, err = ssh.NewPublicKey(&k.PublicKey)
	}
	if err != nil {
		t.Fatal(err)
	}
	return publicLine(pub, comment), pub
}

func TestUploadRoutesByCommentAndActivate(t *testing.T) {
	ks := newStore(t, "n0021")
	c1a, k1a := peerLine(t, "ed25519", "backupsync:Connection1@n0011")
	c1b, _ := peerLine(t, "rsa2048", "backupsync:Connection1@n0012")
	h2, kh2 := peerLine(t, "ed25519", "backupsync-host:Connection2@n0031")
	text := "# keys from EDU01\r\n" + c1a + "\r\n\r\n" + c1b + "\n" + h2 + "\n" + c1a + "\n"
	got, err := ks.Upload([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].LineNo != 2 || got[2].LineNo != 5 {
		t.Fatalf("upload returned %+v", got)
	}
	pend, _ := ks.PendingKeys("Connection1")
	auth, _ := ks.AuthorizedKeys("Connection1")
	pinned2, _ := ks.PinnedHostKeys("Connection2")
	pinned1, _ := ks.PinnedHostKeys("Connection1")
	if len(pend) != 2 || len(auth) != 0 || len(pinned2) != 1 || len(pinned1) != 0 {
		t.Fatalf("pending %d authorized %d pinned2 %d pinned1 %d", len(pend), len(auth), len(pinned2), len(pinned1))
	}
	if !bytes.Equal(pinned2[0].Key.Marshal(), kh2.Marshal()) || pinned2[0].Node != "n0031" {
		t.Fatal("pinned host key differs")
	}
	if _, ok, _ := ks.authorizedConnection(k1a); ok {
		t.Fatal("pending key already authorized")
	}
	n, err := ks.Activate("Connection1")
	if err != nil || n != 2 {
		t.Fatalf("activate: %d %v", n, err)
	}
	pend, _ = ks.PendingKeys("Connection1")
	auth, _ = ks.AuthorizedKeys("Connection1")
	if len(pend) != 0 || len(auth) != 2 {
		t.Fatalf("after activate: pending %d authorized %d", len(pend), len(auth))
	}
	if c, ok, err := ks.authorizedConnection(k1a); !ok || err != nil || c != "Connection1" {
		t.Fatalf("authorized lookup: %q %v %v", c, ok, err)
	}
	if n, err := ks.Activate("Connection1"); n != 0 || err != nil {
		t.Fatalf("second activate: %d %v", n, err)
	}
	// A new key from the same node replaces the old one on activation.
	c1new, k1new := peerLine(t, "ed25519", "backupsync:Connection1@n0011")
	if _, err := ks.Upload([]byte(c1new)); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Activate("Connection1"); err != nil {
		t.Fatal(err)
	}
	auth, _ = ks.AuthorizedKeys("Connection1")
	if len(auth) != 2 {
		t.Fatalf("authorized after rotation: %d", len(auth))
	}
	if _, ok, _ := ks.authorizedConnection(k1a); ok {
		t.Error("replaced key still authorized")
	}
	if _, ok, _ := ks.authorizedConnection(k1new); !ok {
		t.Error("rotated key not authorized")
	}
	// The files are authorized_keys syntax that OpenSSH parses too.
	b, _ := os.ReadFile(filepath.Join(ks.Dir(), "conn", "Connection1", "authorized_keys"))
	rest := b
	for len(bytes.TrimSpace(rest)) > 0 {
		_, comment, _, r, err := ssh.ParseAuthorizedKey(rest)
		if err != nil || !strings.HasPrefix(comment, "backupsync:Connection1@") {
			t.Fatalf("authorized_keys line: %q %v", comment, err)
		}
		rest = r
	}
	checkModes(t, ks.Dir())
	conns, _ := ks.Connections()
	sort.Strings(conns)
	if strings.Join(conns, ",") != "Connection1,Connection2" {
		t.Errorf("connections %v", conns)
	}
}

func TestUploadRejectsInvalidLinesAndChangesNothing(t *testing.T) {
	ks := newStore(t, "n0021")
	good, _ := peerLine(t, "ed25519", "backupsync:Connection1@n0011")
	if _, err := ks.Upload([]byte(good)); err != nil {
		t.Fatal(err)
	}
	before := treeSnapshot(t, ks.Dir())
	other, _ := peerLine(t, "ed25519", "backupsync:Connection1@n0012")
	f := strings.Fields(other)
	weak, _ := peerLine(t, "rsa1024", "backupsync:Connection1@n0013")
	dup, _ := peerLine(t, "ed25519", "backupsync:Connection1@n0012")
	cases := []struct {
		name, bad, want string
	}{
		{"stray continuation", "AAAAC3NzaC1lZDI1NTE5", "want"},
		{"incomplete wrapped key", f[0] + " " + f[1][:26], "not valid base64"},
		{"options", `restrict ` + other, "want"},
		{"bad base64", f[0] + " !!!notbase64 " + f[2], "base64"},
		{"not a key", f[0] + " " + base64.StdEncoding.EncodeToString([]byte("hello")) + " " + f[2], "does not parse"},
		{"type mismatch", "ssh-rsa " + f[1] + " " + f[2], "does not match"},
		{"short RSA", weak, "too short"},
		{"bad connection", f[0] + " " + f[1] + " backupsync:Conn/1@n0012", "connection name"},
		{"bad node", f[0] + " " + f[1] + " backupsync-host:C1@", "node name"},
		{"bad host pin address", f[0] + " " + f[1] + " backupsync-host:C1@10.0.0.1:99999", "node name"},
		{"conflicting duplicate", dup, "second key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := "# header\n" + other + "\n\n" + tc.bad + "\n" + good + "\n"
			_, err := ks.Upload([]byte(text))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q: want line 4 and %q", err, tc.want)
			}
			if strings.Contains(err.Error(), f[1][20:40]) {
				t.Fatalf("error contains key material: %q", err)
			}
			if after := treeSnapshot(t, ks.Dir()); len(after) != len(before) {
				t.Fatalf("store changed")
			} else {
				for k, v := range before {
					if after[k] != v {
						t.Fatalf("%s changed", k)
					}
				}
			}
		})
	}
}

func TestNewKeyStoreValidatesNode(t *testing.T) {
	for _, n := range []string{"", ".", "..", "a/b", "n 1", strings.Repeat("x", 65)} {
		if _, err := NewKeyStore(t.TempDir(), n); err == nil {
			t.Errorf("node %q accepted", n)
		}
	}
	if _, err := NewKeyStore("", "n1"); err == nil {
		t.Error("empty state dir accepted")
	}
}
