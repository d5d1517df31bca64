package archive

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"backupsync/internal/ftptest"
)

// A source volume whose permissions went wrong must not look like one whose
// backups expired. vsftpd answers the listing of a directory it cannot read
// with "226" all the same: with no entries, or with the directory's own
// entry (it falls back to listing the parent filtered by the name). A set
// that lists as missing would be deleted at the destination.
func TestUnreadableDirectoryFailsTheListing(t *testing.T) {
	s := ftptest.StartUnprivileged(t, "127.0.1.5")
	checkGoroutines(t)
	writeLocal(t, s, "DB/id_1/level_0/node_0/data_000", []byte("one"))
	writeLocal(t, s, "DB/id_2/level_0/node_0/data_000", []byte("two"))
	opt := testOptions()
	opt.ReadOnly = true // the session cannot write: no probe files
	v := openVolume(t, s, opt)
	if l, err := v.ListNode(ctxT(t), "DB", 0); err != nil || len(l.Files) != 2 {
		t.Fatalf("readable tree: %v files, %v", l.Files, err)
	}

	for _, c := range []struct {
		name       string
		unreadable []string // directories made mode 0700 (owned by root)
	}{
		{"a backup set's level directory", []string{"DB/id_2/level_0"}},
		{"a node directory", []string{"DB/id_2/level_0/node_0"}},
		{"the database directory", []string{"DB"}},
		{"the database directory and the volume", []string{"DB", ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, d := range c.unreadable {
				p := volPath(s, d)
				mode := os.FileMode(0o700)
				if d == "" {
					mode = 0o711 // the login still enters it
				}
				if err := os.Chmod(p, mode); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Chmod(p, 0o755) })
			}
			l, err := v.ListNode(ctxT(t), "DB", 0)
			if !errors.Is(err, ErrUnreadableDir) {
				t.Fatalf("got %d files and %v; want ErrUnreadableDir", len(l.Files), err)
			}
			if !strings.Contains(err.Error(), "permissions") {
				t.Errorf("error %q does not say what to check", err)
			}
		})
	}

	// Below a directory it cannot enter, vsftpd's fallback fails too and
	// only the 226 reply's text tells: "Transfer done (but failed to open
	// directory)."
	err := listBelowUnreadableDB(t, s, v)
	if !errors.Is(err, ErrUnreadableDir) || !strings.Contains(err.Error(), "failed to open directory") {
		t.Errorf("listing below an unreadable directory: %v", err)
	}
}

// listBelowUnreadableDB makes the database directory unreadable to the
// server's sessions (until the test ends) and lists DB/id_1 below it, where
// vsftpd's fallback fails too and only the 226 reply's text tells.
func listBelowUnreadableDB(t *testing.T, s *ftptest.Server, v *Volume) error {
	t.Helper()
	if err := os.Chmod(volPath(s, "DB"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(volPath(s, "DB"), 0o755) })
	return v.withConn(ctxT(t), func(c *conn) error {
		_, err := v.listDir(c, "DB/id_1")
		return err
	}, nil)
}

// Over FTPS the replies pass encrypted below us: the listing's final reply
// is read above TLS (jlaffaye's debug output), so vsftpd's "failed to open
// directory" is seen there too. Before, a directory below an unreadable one
// listed as empty over FTPS, and its sets as missing.
func TestUnreadableDirectoryFailsTheListingOverFTPS(t *testing.T) {
	const host = "127.0.1.6"
	cert, pool := selfSigned(t, host)
	key, err := x509.MarshalECPrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	s := ftptest.StartUnprivilegedTLS(t, host,
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: key}))
	checkGoroutines(t)
	for i := range 3 {
		writeLocal(t, s, fmt.Sprintf("DB/id_1/level_0/node_0/data_%03d", i), []byte("one"))
	}
	opt := testOptions()
	opt.ReadOnly = true
	opt.TLSConfig = &tls.Config{RootCAs: pool, ServerName: host}
	ep := endpointOf(s)
	ep.TLS = true
	v, err := Open(ctxT(t), ep, opt)
	if err != nil {
		t.Fatalf("Open over FTPS: %v", err)
	}
	defer v.Close()
	// The login's FEAT is read above TLS as well: a read-only source
	// resumes from an offset where the server says REST STREAM.
	if !v.Capabilities().Rest {
		t.Errorf("vsftpd over FTPS probed without REST (features %v)", v.Capabilities().Features)
	}
	if l, err := v.ListNode(ctxT(t), "DB", 0); err != nil || len(l.Files) != 3 {
		t.Fatalf("readable tree over FTPS: %v files, %v", l.Files, err)
	}
	err = listBelowUnreadableDB(t, s, v)
	if !errors.Is(err, ErrUnreadableDir) || !strings.Contains(err.Error(), "failed to open directory") {
		t.Fatalf("listing below an unreadable directory over FTPS: %v; want ErrUnreadableDir with vsftpd's reply", err)
	}
}

// A directory with more entries than the server lists must not lose the
// rest: pure-ftpd stops at 10,000 and still answers 226 ("Output truncated
// to 10000 matches"). Files left out of a source listing would look
// expired, and their copies would be deleted at the destination.
func TestTruncatedListingFails(t *testing.T) {
	s := ftptest.Start(t, ftptest.KindPureFTPd, kindHost[ftptest.KindPureFTPd])
	checkGoroutines(t)
	dir := volPath(s, "DB/id_1/level_0/node_0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10050; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("data_%05d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v := openVolume(t, s, testOptions())
	l, err := v.ListNode(ctxT(t), "DB", 0)
	if !errors.Is(err, ErrListingTruncated) {
		t.Fatalf("got %d of 10050 files and %v; want ErrListingTruncated", len(l.Files), err)
	}
	if !strings.Contains(err.Error(), "-L") {
		t.Errorf("error %q does not say what to do", err)
	}
}

// Over FTPS the transcript holds the commands and the listing's data too,
// and the final reply may come before the data (read in one go with the
// 150): the check must find the final reply line, whatever follows it.
func TestLastReplyFindsTheFinalReply(t *testing.T) {
	for _, c := range []struct{ transcript, want string }{
		{"150 Here comes the directory listing.\r\n226 Transfer done (but failed to open directory).\r\n", "226 Transfer done (but failed to open directory)."},
		{"EPSV\r\n229 Entering Extended Passive Mode (|||40001|)\r\nLIST /v0003/DB\r\n150 Here comes the directory listing.\r\ndrwxr-xr-x    2 0 0 40 Dec 01 12:00 id_1\r\n226 Directory send OK.\r\n", "226 Directory send OK."},
		{"LIST /x\r\n150 Accepted data connection\r\n226-Options: -l\r\n226 Output truncated to 10000 matches\r\n-rw-r--r-- 1 0 0 3 Dec 01 12:00 data_000\r\n-rw-r--r-- 1 0 0 3 Dec 01 12:00 226 \r\n", "226 Output truncated to 10000 matches"},
		{"no reply at all", "no reply at all"},
		{"", ""},
	} {
		if got := lastReply([]byte(c.transcript)); got != c.want {
			t.Errorf("lastReply(%q) = %q, want %q", c.transcript, got, c.want)
		}
	}
}

// The tap sees the commands too: the password must never be kept.
func TestReplyTapNeverKeepsThePassword(t *testing.T) {
	c := &conn{v: &Volume{ep: Endpoint{TLS: true}}}
	c.captureReplies()
	tap := replyTap{c}
	for _, p := range []string{"USER u\r\n", "331 Please specify the password.\r\n", "PASS s3cret-pw\r\n", "230 Login successful.\r\n"} {
		tap.Write([]byte(p))
	}
	got := string(c.stopCaptureReplies())
	if strings.Contains(got, "s3cret") || !strings.Contains(got, "230 Login successful.") {
		t.Fatalf("captured %q", got)
	}
}
