package tunnel

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// pendingCommentPrefix starts the comment of an unbound key in the store
// ("backupsync-pending@<node>"); an upload may use it too.
const pendingCommentPrefix = "backupsync-pending@"

// ParseKeyLines parses an uploaded text of public keys, one
// "<type> <base64> [comment]" record each, in the forms admins paste:
//
//   - the comment "backupsync:<Connection>@<node>" marks a peer's client key
//     of that connection, "backupsync-host:<Connection>@<node>" a peer's host
//     key; for a host key the node may also be the address the client dials,
//     "host:port" ("backupsync-host:C@10.60.102.11:2022", a per-address pin);
//   - any other comment (the original plugin's "root@n0011.c0001.exacluster.local"),
//     or none, makes a client key bound to no connection (RoleUnbound): its
//     Node is the comment's host part when that is an Exasol node name
//     ("n" and digits: root@n0011.… gives n0011), "" otherwise;
//   - a record may be wrapped over several lines the way a terminal prints
//     it: lines that do not start with a key type continue the record, their
//     text appended without a separator, first to the base64 until it decodes
//     to a complete key, then to the comment.
//
// Blank lines and lines starting with '#' are skipped; CRLF line ends are
// accepted. Accepted key types are ssh-ed25519, ssh-rsa of at least 2048
// bits and ecdsa-sha2-nistp256/384/521. Two different keys for the same
// role, connection and node are an error; the same key twice counts once.
// The first invalid record makes the whole text invalid: the error names
// the line it starts on, never its content.
func ParseKeyLines(text []byte) ([]KeyLine, error) {
	var out []KeyLine
	type slot struct {
		role       Role
		conn, node string
	}
	seen := map[slot]int{}
	blobs := map[string]bool{} // unbound keys already taken
	add := func(r *keyRecord) error {
		kl, err := r.finish()
		if err != nil {
			return fmt.Errorf("tunnel: key line %d: %w", r.lineNo, err)
		}
		kl.LineNo = r.lineNo
		if kl.Role == RoleUnbound {
			if blobs[string(kl.Key.Marshal())] {
				return nil
			}
			blobs[string(kl.Key.Marshal())] = true
			out = append(out, kl)
			return nil
		}
		sl := slot{kl.Role, kl.Connection, kl.Node}
		if first, dup := seen[sl]; dup {
			if bytes.Equal(out[first].Key.Marshal(), kl.Key.Marshal()) {
				return nil // the same key twice is harmless
			}
			return fmt.Errorf("tunnel: key line %d: a second key for %s (first on line %d)", r.lineNo, kl.Comment(), out[first].LineNo)
		}
		seen[sl] = len(out)
		out = append(out, kl)
		return nil
	}
	var cur *keyRecord
	for i, raw := range bytes.Split(text, []byte("\n")) {
		lineNo := i + 1
		line := strings.TrimSpace(strings.TrimSuffix(string(raw), "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) > maxUploadLineSize {
			return nil, fmt.Errorf("tunnel: key line %d: too long", lineNo)
		}
		fields := strings.Fields(line)
		if isKeyType(fields[0]) {
			if cur != nil {
				if err := add(cur); err != nil {
					return nil, err
				}
			}
			cur = &keyRecord{lineNo: lineNo, typ: fields[0]}
			if err := cur.take(fields[1:], false); err != nil {
				return nil, fmt.Errorf("tunnel: key line %d: %w", lineNo, err)
			}
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("tunnel: key line %d: %s", lineNo, wantRecord)
		}
		if err := cur.take(fields, true); err != nil {
			return nil, fmt.Errorf("tunnel: key line %d: %w", lineNo, err)
		}
	}
	if cur != nil {
		if err := add(cur); err != nil {
			return nil, err
		}
	}
	return out, nil
}

const wantRecord = `want "<type> <base64 key> [comment]" (authorized_keys options are not accepted)`

// keyRecord is one key being assembled from one or more lines.
type keyRecord struct {
	lineNo  int
	typ     string
	b64     strings.Builder
	key     ssh.PublicKey // set once b64 decodes to a complete key
	comment strings.Builder
	closed  bool // the base64 ended (a comment followed it on its line)
	wrapped bool // the record spans lines
}

// take adds the fields of one line: the first line's after the type, or a
// continuation line's (cont).
func (r *keyRecord) take(fields []string, cont bool) error {
	if r.b64.Len()+r.comment.Len() > maxUploadLineSize {
		return errors.New("too long")
	}
	if cont {
		switch {
		case r.key == nil && !r.closed:
			// The base64 goes on.
		case r.key != nil && len(fields) == 1 && (r.wrapped || !isBackupsyncComment(r.comment.String())):
			// A wrapped comment goes on (after a one-line key only when the
			// comment is not ours: a stray line never changes a node name).
			r.comment.WriteString(fields[0])
			r.wrapped = true
			return nil
		case r.comment.Len() == 0 && r.key != nil:
			// The comment on its own line, after a complete key.
			r.comment.WriteString(strings.Join(fields, " "))
			r.wrapped = true
			return nil
		default:
			return errors.New(wantRecord)
		}
		r.wrapped = true
	}
	if len(fields) == 0 {
		return nil
	}
	if r.key == nil && !r.closed {
		r.b64.WriteString(fields[0])
		fields = fields[1:]
		r.key = decodeKey(r.b64.String())
	}
	if len(fields) > 0 {
		if r.comment.Len() > 0 {
			r.comment.WriteByte(' ')
		}
		r.comment.WriteString(strings.Join(fields, " "))
		r.closed = true
	}
	return nil
}

// decodeKey returns the public key b64 encodes, or nil while it is
// incomplete or invalid.
func decodeKey(b64 string) ssh.PublicKey {
	blob, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil
	}
	key, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil
	}
	return key
}

// finish checks the assembled record and returns its key line.
func (r *keyRecord) finish() (KeyLine, error) {
	if r.b64.Len() == 0 {
		return KeyLine{}, errors.New(wantRecord)
	}
	key := r.key
	if key == nil {
		blob, err := base64.StdEncoding.DecodeString(r.b64.String())
		if err != nil {
			return KeyLine{}, errors.New("key is not valid base64 (or a wrapped key is incomplete)")
		}
		if key, err = ssh.ParsePublicKey(blob); err != nil {
			return KeyLine{}, errors.New("key does not parse as an SSH public key")
		}
	}
	if key.Type() != r.typ {
		return KeyLine{}, fmt.Errorf("key type %q does not match the key data (%s)", r.typ, key.Type())
	}
	if err := acceptableKey(key); err != nil {
		return KeyLine{}, err
	}
	comment := r.comment.String()
	if isBackupsyncComment(comment) {
		role, conn, node, err := parseComment(comment)
		if err != nil {
			return KeyLine{}, err
		}
		return KeyLine{Role: role, Connection: conn, Node: node, Key: key}, nil
	}
	return KeyLine{Role: RoleUnbound, Node: nodeFromComment(comment), Key: key, Original: comment}, nil
}

// isKeyType reports whether a line's first field is a key type, which
// starts a record. Base64 has no '-', so a wrapped key's continuation never
// looks like one.
func isKeyType(f string) bool {
	if len(f) > 64 {
		return false
	}
	return strings.HasPrefix(f, "ssh-") || strings.HasPrefix(f, "ecdsa-") || strings.HasPrefix(f, "sk-")
}

func isBackupsyncComment(c string) bool {
	return strings.HasPrefix(c, string(RoleClient)+":") || strings.HasPrefix(c, string(RoleHost)+":")
}

// nodeFromComment returns the node an unbound key comes from: X of
// "backupsync-pending@X", or the first label of the host part of
// "user@host" when it is an Exasol node name ("n" and digits); else "".
func nodeFromComment(c string) string {
	if rest, ok := strings.CutPrefix(c, pendingCommentPrefix); ok {
		if validName(rest) == nil {
			return rest
		}
		return ""
	}
	at := strings.LastIndexByte(c, '@')
	if at < 0 {
		return ""
	}
	label, _, _ := strings.Cut(c[at+1:], ".")
	if isNodeName(label) {
		return label
	}
	return ""
}

// isNodeName reports whether s looks like an Exasol node name: "n" and
// digits, as n0011.
func isNodeName(s string) bool {
	if len(s) < 2 || len(s) > maxNameLen || (s[0] != 'n' && s[0] != 'N') {
		return false
	}
	for _, r := range s[1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func acceptableKey(key ssh.PublicKey) error {
	switch key.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		return nil
	case ssh.KeyAlgoRSA:
		ck, ok := key.(ssh.CryptoPublicKey)
		if !ok {
			return errors.New("unreadable RSA key")
		}
		rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return errors.New("unreadable RSA key")
		}
		if rk.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits is too short (at least %d)", rk.N.BitLen(), minRSABits)
		}
		return nil
	default:
		return fmt.Errorf("key type %s is not accepted (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp*)", key.Type())
	}
}

// parseComment parses a backupsync comment. A host key's node may be an
// address ("host:port").
func parseComment(c string) (Role, string, string, error) {
	const want = "comment must be backupsync:<Connection>@<node> or backupsync-host:<Connection>@<node>"
	prefix, rest, ok := strings.Cut(c, ":")
	if !ok {
		return "", "", "", errors.New(want)
	}
	role := Role(prefix)
	if role != RoleClient && role != RoleHost {
		return "", "", "", errors.New(want)
	}
	conn, node, ok := strings.Cut(rest, "@")
	if !ok {
		return "", "", "", errors.New(want)
	}
	if err := validName(conn); err != nil {
		return "", "", "", fmt.Errorf("connection name in comment: %w", err)
	}
	if err := validNode(role, node); err != nil {
		return "", "", "", fmt.Errorf("node name in comment: %w", err)
	}
	return role, conn, node, nil
}

// validNode accepts a node name, or for host keys an address "host:port".
func validNode(role Role, node string) error {
	if role == RoleHost && strings.Contains(node, ":") {
		return validAddress(node)
	}
	return validName(node)
}

// validAddress accepts "host:port" ("[v6]:port") with an IP or a valid
// name as host, in the form net.JoinHostPort writes.
func validAddress(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port", a)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: bad port", a)
	}
	if net.ParseIP(host) == nil && validName(host) != nil {
		return fmt.Errorf("%q: bad host", a)
	}
	if net.JoinHostPort(host, port) != a {
		return fmt.Errorf("%q is not in host:port form", a)
	}
	return nil
}

// IsAddress reports whether the key's Node is an address ("host:port"), as
// a per-address host key pin has, rather than a node name.
func (k KeyLine) IsAddress() bool { return strings.Contains(k.Node, ":") }
