package config

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/crypto/bcrypt"
)

// validateXMLRPC checks the xmlrpc block's users: every password_hash must
// be a bcrypt hash, or the daemon would answer every login of that user 401
// without saying why. The error never shows the value: it may be a
// password pasted where its hash belongs.
func (s *Settings) validateXMLRPC(body hcl.Body) hcl.Diagnostics {
	if s.XMLRPC == nil {
		return nil
	}
	var diags hcl.Diagnostics
	for i, u := range s.XMLRPC.Users {
		if IsBcryptHash(u.PasswordHash) {
			continue
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid password_hash",
			Detail: fmt.Sprintf("the password_hash of xmlrpc user %q is not a bcrypt hash (60 characters starting $2a$, $2b$ or $2y$); "+
				"make one with `backupsyncctl hash-password` and paste its output", u.Name),
			Subject: passwordHashRange(body, s.File, i),
		})
	}
	return diags
}

// passwordHashRange is where the i-th user block of the xmlrpc block sets
// password_hash (the block, or the file's start, when not found).
func passwordHashRange(body hcl.Body, file string, i int) *hcl.Range {
	fallback := &hcl.Range{Filename: file, Start: hcl.InitialPos, End: hcl.InitialPos}
	top, _, _ := body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "xmlrpc"}}})
	for _, x := range top.Blocks {
		users, _, _ := x.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "user", LabelNames: []string{"name"}}}})
		if i >= len(users.Blocks) {
			return &x.DefRange
		}
		u := users.Blocks[i]
		attrs, _, _ := u.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "password_hash"}}})
		if a, ok := attrs.Attributes["password_hash"]; ok {
			return &a.Range
		}
		return &u.DefRange
	}
	return fallback
}

// IsBcryptHash reports whether h is a bcrypt hash as HashPassword makes
// them: "$2a$", "$2b$" or "$2y$", a cost bcrypt accepts, and 53 characters
// of bcrypt's base64.
func IsBcryptHash(h string) bool {
	if len(h) != 60 || !(strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$")) || h[6] != '$' {
		return false
	}
	if _, err := bcrypt.Cost([]byte(h)); err != nil {
		return false
	}
	for _, c := range h[7:] {
		if !(c == '.' || c == '/' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// NoUserProblem is what the daemon logs at start (an error) and
// check-config prints (a warning) when the settings name no xmlrpc user:
// the daemon runs, and answers every call 401.
const NoUserProblem = "no xmlrpc user is configured: every call will answer 401; " +
	"add `user \"admin\" { password_hash = \"…\" }` to the xmlrpc block (backupsyncctl hash-password / see README)"

// HasUsers reports whether the xmlrpc block names at least one user.
func (s *Settings) HasUsers() bool { return s.XMLRPC != nil && len(s.XMLRPC.Users) > 0 }
