package tunnel

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// numberedPrefix names unbound keys whose comment names no node: "key-1", …
const numberedPrefix = "key-"

// MaxUnboundKeys caps the keys waiting for the next SSHKEY on a node: a
// cluster has a few nodes, and each upload is checked against every one.
const MaxUnboundKeys = 256

// UnboundKeys returns the client keys uploaded with a comment that names no
// connection, waiting for the next BindPending.
func (s *KeyStore) UnboundKeys() ([]KeyLine, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return readKeyFile(s.unboundPath(), RoleUnbound, "")
}

func (s *KeyStore) unboundPath() string { return filepath.Join(s.root, unboundName) }

// applyUnbound merges keys[idx] (RoleUnbound) into the unbound list,
// numbering the ones without a free node, and writes it with tx. Called
// with s.mu held.
func (s *KeyStore) applyUnbound(tx *fileTx, keys []KeyLine, idx []int) error {
	cur, err := readKeyFile(s.unboundPath(), RoleUnbound, "")
	if err != nil {
		return err
	}
	byBlob := map[string]string{} // key → node, of the keys already pending
	used := map[string]string{}   // node → key
	for _, k := range cur {
		byBlob[string(k.Key.Marshal())] = k.Node
		used[k.Node] = string(k.Key.Marshal())
	}
	var add []KeyLine
	taken := map[string]bool{} // nodes this call took
	for _, i := range idx {
		k := &keys[i]
		blob := string(k.Key.Marshal())
		if node, ok := byBlob[blob]; ok {
			k.Node = node // already pending: keep its entry
			continue
		}
		if k.Node == "" || taken[k.Node] {
			k.Node = freeNumber(func(n string) bool { return taken[n] || used[n] != "" })
		}
		taken[k.Node] = true
		add = append(add, *k)
	}
	if len(add) == 0 {
		return nil
	}
	merged := mergeKeys(cur, add)
	if len(merged) > MaxUnboundKeys {
		return fmt.Errorf("tunnel: apply keys: %d keys would wait for the next SSHKEY, more than %d: run SSHKEY for the connection first, or upload fewer keys", len(merged), MaxUnboundKeys)
	}
	if err := tx.write(s.unboundPath(), encodeKeyLines(merged)); err != nil {
		return fmt.Errorf("tunnel: apply keys: %w", err)
	}
	return nil
}

// freeNumber returns the first "key-N" (N from 1) for which inUse is false.
func freeNumber(inUse func(string) bool) string {
	for n := 1; ; n++ {
		name := numberedPrefix + strconv.Itoa(n)
		if !inUse(name) {
			return name
		}
	}
}

// BindPending makes every unbound key a pending client key of conn (this
// node's SSHKEY of a server-role connection calls it before Activate) and
// empties the unbound list. A key already pending or authorized for conn is
// not added twice; a numbered key ("key-N") whose name conn uses for
// another key is renumbered. It returns the keys it bound, as now pending.
func (s *KeyStore) BindPending(conn string) ([]KeyLine, error) {
	if err := validName(conn); err != nil {
		return nil, fmt.Errorf("tunnel: bind pending keys: connection name: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	unbound, err := readKeyFile(s.unboundPath(), RoleUnbound, "")
	if err != nil || len(unbound) == 0 {
		return nil, err
	}
	pendPath := filepath.Join(s.connDir(conn), pendingName)
	pending, err := readKeyFile(pendPath, RoleClient, conn)
	if err != nil {
		return nil, err
	}
	auth, err := readKeyFile(filepath.Join(s.connDir(conn), authorizedName), RoleClient, conn)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	used := map[string]string{} // node → key, in conn
	for _, k := range slices.Concat(auth, pending) {
		known[string(k.Key.Marshal())] = true
		used[k.Node] = string(k.Key.Marshal())
	}
	var bound []KeyLine
	for _, k := range unbound {
		blob := string(k.Key.Marshal())
		if known[blob] {
			continue
		}
		node := k.Node
		if other, ok := used[node]; ok && other != blob && strings.HasPrefix(node, numberedPrefix) {
			node = freeNumber(func(n string) bool { _, ok := used[n]; return ok })
		}
		used[node] = blob
		known[blob] = true
		bound = append(bound, KeyLine{Role: RoleClient, Connection: conn, Node: node, Key: k.Key})
	}
	tx := &fileTx{root: s.root}
	if len(bound) > 0 {
		if err := tx.write(pendPath, encodeKeyLines(mergeKeys(pending, bound))); err != nil {
			return nil, fmt.Errorf("tunnel: bind pending keys to %q: %w", conn, err)
		}
	}
	if err := tx.write(s.unboundPath(), nil); err != nil {
		if rerr := tx.rollback(); rerr != nil {
			return nil, fmt.Errorf("tunnel: bind pending keys to %q: %w (and restoring: %v)", conn, err, rerr)
		}
		return nil, fmt.Errorf("tunnel: bind pending keys to %q: %w", conn, err)
	}
	return bound, nil
}

// KeyState says what the store knows of a peer's client key.
type KeyState int

const (
	// KeyUnknown: never uploaded here (or replaced since).
	KeyUnknown KeyState = iota
	// KeyUnboundPending: uploaded with no connection, waiting for SSHKEY.
	KeyUnboundPending
	// KeyPending: uploaded for a connection, not yet activated by SSHKEY.
	KeyPending
	// KeyAuthorized: it may log in as its connection.
	KeyAuthorized
)

// LookupClientKey says whether key is authorized or pending here, and for
// which connection. An authorized key wins over a pending one.
func (s *KeyStore) LookupClientKey(key ssh.PublicKey) (KeyState, string, error) {
	if conn, ok, err := s.authorizedConnection(key); err != nil || ok {
		if ok {
			return KeyAuthorized, conn, nil
		}
		return KeyUnknown, "", err
	}
	blob := key.Marshal()
	conns, err := s.Connections()
	if err != nil {
		return KeyUnknown, "", err
	}
	for _, c := range conns {
		keys, err := s.PendingKeys(c)
		if err != nil {
			return KeyUnknown, "", err
		}
		for _, k := range keys {
			if bytes.Equal(k.Key.Marshal(), blob) {
				return KeyPending, c, nil
			}
		}
	}
	unbound, err := s.UnboundKeys()
	if err != nil {
		return KeyUnknown, "", err
	}
	for _, k := range unbound {
		if bytes.Equal(k.Key.Marshal(), blob) {
			return KeyUnboundPending, "", nil
		}
	}
	return KeyUnknown, "", nil
}

// OwnClientKey reports whether key is one of this node's own client keys,
// and of which connection. It creates no key.
func (s *KeyStore) OwnClientKey(key ssh.PublicKey) (string, bool, error) {
	conns, err := s.Connections()
	if err != nil {
		return "", false, err
	}
	blob := key.Marshal()
	for _, c := range conns {
		for _, t := range []KeyType{KeyEd25519, KeyRSA} {
			if _, err := os.Stat(filepath.Join(s.connDir(c), clientKeyPrefix+string(t))); err != nil {
				continue
			}
			signer, err := s.ClientKey(c, t)
			if err != nil {
				return "", false, err
			}
			if bytes.Equal(signer.PublicKey().Marshal(), blob) {
				return c, true, nil
			}
		}
	}
	return "", false, nil
}
