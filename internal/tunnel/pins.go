package tunnel

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

// PinFirstUse pins key as the host key presented at addr ("host:port", as
// the client dials it) for conn, unless a key is pinned for addr already:
// the same key is not written again (pinned false); another key fails with
// a *HostKeyError (Changed). The pin is written atomically, under the
// store's lock, so two workers connecting at once pin one key.
func (s *KeyStore) PinFirstUse(conn, addr string, key ssh.PublicKey) (KeyLine, bool, error) {
	if err := validName(conn); err != nil {
		return KeyLine{}, false, fmt.Errorf("tunnel: pin host key: connection name: %w", err)
	}
	if err := validAddress(addr); err != nil {
		return KeyLine{}, false, fmt.Errorf("tunnel: pin host key: address: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	path := filepath.Join(s.connDir(conn), pinnedName)
	cur, err := readKeyFile(path, RoleHost, conn)
	if err != nil {
		return KeyLine{}, false, err
	}
	for _, p := range cur {
		if p.Node != addr {
			continue
		}
		if bytes.Equal(p.Key.Marshal(), key.Marshal()) {
			return p, false, nil
		}
		return KeyLine{}, false, &HostKeyError{Connection: conn, Node: addr, Fingerprint: ssh.FingerprintSHA256(key),
			KeyType: key.Type(), Pinned: len(cur), PinnedFingerprint: p.Fingerprint(), PinFile: path}
	}
	kl := KeyLine{Role: RoleHost, Connection: conn, Node: addr, Key: key}
	tx := &fileTx{root: s.root}
	if err := tx.write(path, encodeKeyLines(mergeKeys(cur, []KeyLine{kl}))); err != nil {
		return KeyLine{}, false, fmt.Errorf("tunnel: pin host key of %s for %q: %w", addr, conn, err)
	}
	return kl, true, nil
}

// Unpin removes the host key pinned for node (a node name or an address)
// of conn, so that the next contact pins the key presented then (in
// accept-new mode). It reports whether there was one.
func (s *KeyStore) Unpin(conn, node string) (bool, error) {
	if err := validName(conn); err != nil {
		return false, fmt.Errorf("tunnel: unpin: connection name: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	path := filepath.Join(s.connDir(conn), pinnedName)
	cur, err := readKeyFile(path, RoleHost, conn)
	if err != nil {
		return false, err
	}
	rest := slices.DeleteFunc(slices.Clone(cur), func(k KeyLine) bool { return k.Node == node })
	if len(rest) == len(cur) {
		return false, nil
	}
	tx := &fileTx{root: s.root}
	if err := tx.write(path, encodeKeyLines(rest)); err != nil {
		return false, fmt.Errorf("tunnel: unpin %s of %q: %w", node, conn, err)
	}
	return true, nil
}

// HostKeyStatus describes the host keys pinned for conn, one line each, for
// STATUS: "host key of 10.60.102.11:2022: SHA256:… (ssh-ed25519)" for a
// per-address pin (first use, or uploaded for that address), "host key of
// node n0021: SHA256:… (ssh-ed25519, uploaded)" for an uploaded key of a
// node. None pinned gives no line.
func (s *KeyStore) HostKeyStatus(conn string) ([]string, error) {
	pins, err := s.PinnedHostKeys(conn)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range pins {
		if p.IsAddress() {
			out = append(out, fmt.Sprintf("host key of %s: %s (%s)", p.Node, p.Fingerprint(), p.Key.Type()))
		} else {
			out = append(out, fmt.Sprintf("host key of node %s: %s (%s, uploaded)", p.Node, p.Fingerprint(), p.Key.Type()))
		}
	}
	return out, nil
}

// PinFile returns the file holding conn's pinned host keys.
func (s *KeyStore) PinFile(conn string) string {
	return filepath.Join(s.connDir(conn), pinnedName)
}

// unpinCommand is the shell command that removes the pin of addr from
// file: GNU sed keeps the file's mode.
func unpinCommand(conn, addr, file string) string {
	re := regexpQuote(" " + string(RoleHost) + ":" + conn + "@" + addr)
	return fmt.Sprintf("sed -i '/%s$/d' %s", re, file)
}

// regexpQuote escapes s for a sed basic regular expression between '/'.
func regexpQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\/.*[]^$`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
