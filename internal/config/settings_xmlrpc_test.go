package config

import (
	"strings"
	"testing"
)

const goodHash = "$2a$10$Q0UurHQnJ0BbK.3Db7ncgeVs.NP3bS4.T5ZBbehykvyvOd.mvZvfG"

func TestIsBcryptHash(t *testing.T) {
	for _, tc := range []struct {
		h    string
		want bool
	}{
		{goodHash, true},
		{"$2b$" + goodHash[4:], true},
		{"$2y$" + goodHash[4:], true},
		{"$2a$04$VCMy7FymS8Pcs539NmbgLu.W7iMqn1M3/Hy99G5bDBT9J7NCUBYs.", true},
		{"", false},
		{"hunter2", false},
		{"$2a$10$…", false},
		{"$2a$10$abc", false},
		{"$2x$" + goodHash[4:], false},               // not one we make or accept
		{"$1$" + goodHash[3:], false},                // md5-crypt's prefix
		{"$2a$03$" + goodHash[7:], false},            // a cost bcrypt refuses
		{"$2a$32$" + goodHash[7:], false},            // ditto
		{"$2a$1a$" + goodHash[7:], false},            // no cost
		{goodHash + "x", false},                      // too long
		{goodHash[:59], false},                       // too short
		{goodHash[:59] + "!", false},                 // not bcrypt's base64
		{" " + goodHash[1:], false},                  // a space in front
		{"$2a$10$" + strings.Repeat("=", 53), false}, // ditto
		{"{SHA}" + strings.Repeat("a", 55), false},   // another scheme
	} {
		if got := IsBcryptHash(tc.h); got != tc.want {
			t.Errorf("IsBcryptHash(%q) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

// A password_hash that is not a bcrypt hash is an error at its file:line,col
// that says how to make one, and never shows the value (it may be the
// password itself).
func TestSettingsRefuseABadPasswordHash(t *testing.T) {
	node := "node {\n  name = \"n0011\"\n  ip = \"127.0.0.11\"\n  index = 0\n}\n"
	src := node + "xmlrpc {\n  user \"admin\" {\n    password_hash = \"" + goodHash + "\"\n  }\n  user \"ops\" {\n    password_hash = \"hunter2\"\n  }\n}\n"
	_, err := ParseSettings("s.hcl", []byte(src))
	if err == nil {
		t.Fatal("a plain password as password_hash was accepted")
	}
	want := `s.hcl:11,5: Invalid password_hash; the password_hash of xmlrpc user "ops" is not a bcrypt hash`
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "backupsyncctl hash-password") {
		t.Errorf("got %v\nwant …%s… and how to make a hash", err, want)
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("the error shows the value or more than the bad user: %v", err)
	}
	if _, err := ParseSettings("s.hcl", []byte(strings.Replace(src, "hunter2", goodHash, 1))); err != nil {
		t.Errorf("two good hashes: %v", err)
	}
	// No xmlrpc block, or one without users, is valid: the daemon says so
	// at start and check-config warns.
	for _, ok := range []string{node, node + "xmlrpc {\n}\n"} {
		if _, err := ParseSettings("s.hcl", []byte(ok)); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}
