package tunnel

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// KeyType selects the algorithm of a key pair the KeyStore creates.
type KeyType string

const (
	// KeyEd25519 is the default key type.
	KeyEd25519 KeyType = "ed25519"
	// KeyRSA is RSA with RSABits bits, for peers that cannot use ed25519.
	KeyRSA KeyType = "rsa"
)

// RSABits is the size of the RSA keys the KeyStore creates.
const RSABits = 3072

// minRSABits is the smallest RSA key accepted in an upload.
const minRSABits = 2048

// Role says what an uploaded or stored public key is for; it is the prefix
// of the key's comment.
type Role string

const (
	// RoleClient marks a client key of a peer node ("backupsync:C@node"):
	// on the server side it becomes pending, and authorized once activated.
	RoleClient Role = "backupsync"
	// RoleHost marks a host key of a peer node ("backupsync-host:C@node"):
	// on the client side it is pinned for connection C at once. Its node may
	// be an address ("backupsync-host:C@10.60.102.11:2022"): a pin of the
	// host key presented at that address.
	RoleHost Role = "backupsync-host"
	// RoleUnbound marks an uploaded client key whose comment names no
	// connection (the original plugin's "root@n0011.…"): it waits, pending,
	// for the next SSHKEY of a server-role connection on this node, which
	// binds it to that connection (BindPending). Stored with the comment
	// "backupsync-pending@<node>".
	RoleUnbound Role = "backupsync-pending"
)

// File and directory names of the on-disk layout (see the package doc).
const (
	sshDirName        = "ssh"
	hostDirName       = "host"
	connDirName       = "conn"
	authorizedName    = "authorized_keys"
	pendingName       = "pending_keys"
	pinnedName        = "pinned_host_keys"
	unboundName       = "unbound_keys"
	clientKeyPrefix   = "id_"
	hostKeyPrefix     = "ssh_host_"
	hostKeySuffix     = "_key"
	maxNameLen        = 64
	maxUploadLineSize = 16 << 10
)

// KeyLine is one public key with its role, connection and node, as parsed
// from an uploaded text or read back from the store. Its comment is
// "<Role>:<Connection>@<Node>", or "backupsync-pending@<Node>" for an
// unbound key.
type KeyLine struct {
	Role       Role
	Connection string // "" for RoleUnbound
	// Node is the peer node's name, or for a per-address host key pin the
	// address "host:port" (IsAddress). An unbound key's node comes from its
	// comment, or is numbered ("key-1", …) when it is stored.
	Node string
	Key  ssh.PublicKey
	// Original is an unbound key's comment as uploaded.
	Original string
	// LineNo is the 1-based line number in the text it was parsed from.
	LineNo int
}

// Comment returns "<Role>:<Connection>@<Node>" ("backupsync-pending@<Node>"
// for an unbound key).
func (k KeyLine) Comment() string {
	if k.Role == RoleUnbound {
		return pendingCommentPrefix + k.Node
	}
	return string(k.Role) + ":" + k.Connection + "@" + k.Node
}

// String returns the authorized_keys style line "<type> <base64> <comment>"
// without a trailing newline.
func (k KeyLine) String() string {
	return publicLine(k.Key, k.Comment())
}

// Fingerprint returns the key's SHA256 fingerprint ("SHA256:…").
func (k KeyLine) Fingerprint() string { return ssh.FingerprintSHA256(k.Key) }

// KeyStore keeps the SSH keys of one node under <state_dir>/ssh: this node's
// client key per connection and type, this node's host keys, and the peer
// keys uploaded for each connection (pending and authorized client keys,
// pinned host keys). It is safe for concurrent use within one process; only
// one process should write a state directory.
type KeyStore struct {
	root string // <state_dir>/ssh
	node string
	mu   sync.Mutex
}

// NewKeyStore returns the key store of node under stateDir. Nothing is
// created until a key is first needed. node is this node's name as used in
// key comments ("n0011"); it must be a valid name (letters, digits, '.', '_',
// '-', at most 64 characters, not starting with '.').
func NewKeyStore(stateDir, node string) (*KeyStore, error) {
	if stateDir == "" {
		return nil, errors.New("tunnel: key store: empty state directory")
	}
	if err := validName(node); err != nil {
		return nil, fmt.Errorf("tunnel: key store: node name: %w", err)
	}
	return &KeyStore{root: filepath.Join(stateDir, sshDirName), node: node}, nil
}

// Node returns the node name the store writes into key comments.
func (s *KeyStore) Node() string { return s.node }

// Dir returns the store's root directory, <state_dir>/ssh.
func (s *KeyStore) Dir() string { return s.root }

// ClientKey returns this node's client key of type t for connection conn,
// creating it on first need. An empty t means KeyEd25519.
func (s *KeyStore) ClientKey(conn string, t KeyType) (ssh.Signer, error) {
	if err := validName(conn); err != nil {
		return nil, fmt.Errorf("tunnel: client key: connection name: %w", err)
	}
	t, err := normType(t)
	if err != nil {
		return nil, fmt.Errorf("tunnel: client key for %q: %w", conn, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	signer, err := s.ensureKey(s.connDir(conn), clientKeyPrefix+string(t), t, string(RoleClient)+":"+conn+"@"+s.node)
	if err != nil {
		return nil, fmt.Errorf("tunnel: client key for %q: %w", conn, err)
	}
	return signer, nil
}

// ClientKeyLine returns the public line of this node's client key of type t
// for conn ("<type> <base64> backupsync:<conn>@<node>"), creating the key on
// first need. This is what SSHKEY shows on the client side.
func (s *KeyStore) ClientKeyLine(conn string, t KeyType) (string, error) {
	signer, err := s.ClientKey(conn, t)
	if err != nil {
		return "", err
	}
	return publicLine(signer.PublicKey(), string(RoleClient)+":"+conn+"@"+s.node), nil
}

// HostKey returns this node's host key of type t, creating it on first need.
// A node has one host key per type, presented to every connection; an empty
// t means KeyEd25519.
func (s *KeyStore) HostKey(t KeyType) (ssh.Signer, error) {
	t, err := normType(t)
	if err != nil {
		return nil, fmt.Errorf("tunnel: host key: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	signer, err := s.ensureKey(filepath.Join(s.root, hostDirName), hostKeyPrefix+string(t)+hostKeySuffix, t, "backupsync-host@"+s.node)
	if err != nil {
		return nil, fmt.Errorf("tunnel: host key: %w", err)
	}
	return signer, nil
}

// HostKeyLine returns the public line of this node's host key of type t as
// presented for conn ("<type> <base64> backupsync-host:<conn>@<node>"),
// creating the key on first need. This is what SSHKEY shows on the server
// side.
func (s *KeyStore) HostKeyLine(conn string, t KeyType) (string, error) {
	if err := validName(conn); err != nil {
		return "", fmt.Errorf("tunnel: host key line: connection name: %w", err)
	}
	signer, err := s.HostKey(t)
	if err != nil {
		return "", err
	}
	return publicLine(signer.PublicKey(), string(RoleHost)+":"+conn+"@"+s.node), nil
}

// hostSigners returns every host key present, creating an ed25519 one when
// there is none.
func (s *KeyStore) hostSigners() ([]ssh.Signer, error) {
	var out []ssh.Signer
	for _, t := range []KeyType{KeyEd25519, KeyRSA} {
		path := filepath.Join(s.root, hostDirName, hostKeyPrefix+string(t)+hostKeySuffix)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		signer, err := s.HostKey(t)
		if err != nil {
			return nil, err
		}
		out = append(out, signer)
	}
	if len(out) == 0 {
		signer, err := s.HostKey(KeyEd25519)
		if err != nil {
			return nil, err
		}
		out = append(out, signer)
	}
	return out, nil
}

// clientSigners returns every client key present for conn, creating an
// ed25519 one when there is none.
func (s *KeyStore) clientSigners(conn string) ([]ssh.Signer, error) {
	var out []ssh.Signer
	for _, t := range []KeyType{KeyEd25519, KeyRSA} {
		path := filepath.Join(s.connDir(conn), clientKeyPrefix+string(t))
		if _, err := os.Stat(path); err != nil {
			continue
		}
		signer, err := s.ClientKey(conn, t)
		if err != nil {
			return nil, err
		}
		out = append(out, signer)
	}
	if len(out) == 0 {
		signer, err := s.ClientKey(conn, KeyEd25519)
		if err != nil {
			return nil, err
		}
		out = append(out, signer)
	}
	return out, nil
}

// Upload parses text with ParseKeyLines and applies it with Apply: each
// client key line becomes a pending key of the connection its comment names,
// each host key line a pinned host key of that connection, each unbound key
// a key pending for the next BindPending. On any error nothing is changed.
// It returns the keys it applied (unbound ones with their stored node).
func (s *KeyStore) Upload(text []byte) ([]KeyLine, error) {
	keys, err := ParseKeyLines(text)
	if err != nil {
		return nil, err
	}
	if err := s.Apply(keys); err != nil {
		return nil, err
	}
	return keys, nil
}

// Apply stores parsed key lines: RoleClient keys are added to the pending
// keys of their connection, RoleHost keys to its pinned host keys, and
// RoleUnbound keys to the keys pending for no connection yet. A key for a
// connection and node that already has one of the same role replaces it.
// An unbound key already pending keeps its entry; one without a node, or
// whose node another key of this call took, is numbered ("key-1", …): Apply
// writes the node it chose into keys. Apply writes every affected file
// atomically and, if one write fails, restores the files it had already
// written.
func (s *KeyStore) Apply(keys []KeyLine) error {
	type fileKey struct{ conn, name string }
	updates := map[fileKey][]KeyLine{}
	var order []fileKey
	var unbound []int
	for i, k := range keys {
		if k.Role == RoleUnbound {
			if k.Node != "" {
				if err := validName(k.Node); err != nil {
					return fmt.Errorf("tunnel: apply keys: node name: %w", err)
				}
			}
			unbound = append(unbound, i)
			continue
		}
		if err := validName(k.Connection); err != nil {
			return fmt.Errorf("tunnel: apply keys: connection name: %w", err)
		}
		if err := validNode(k.Role, k.Node); err != nil {
			return fmt.Errorf("tunnel: apply keys: node name: %w", err)
		}
		var fk fileKey
		switch k.Role {
		case RoleClient:
			fk = fileKey{k.Connection, pendingName}
		case RoleHost:
			fk = fileKey{k.Connection, pinnedName}
		default:
			return fmt.Errorf("tunnel: apply keys: unknown role %q", k.Role)
		}
		if _, ok := updates[fk]; !ok {
			order = append(order, fk)
		}
		updates[fk] = append(updates[fk], k)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &fileTx{root: s.root}
	if len(unbound) > 0 {
		if err := s.applyUnbound(tx, keys, unbound); err != nil {
			return err
		}
	}
	for _, fk := range order {
		path := filepath.Join(s.connDir(fk.conn), fk.name)
		role := RoleClient
		if fk.name == pinnedName {
			role = RoleHost
		}
		cur, err := readKeyFile(path, role, fk.conn)
		if err != nil {
			return err
		}
		if err := tx.write(path, encodeKeyLines(mergeKeys(cur, updates[fk]))); err != nil {
			if rerr := tx.rollback(); rerr != nil {
				return fmt.Errorf("tunnel: apply keys: %w (and restoring: %v)", err, rerr)
			}
			return fmt.Errorf("tunnel: apply keys: %w", err)
		}
	}
	return nil
}

// Activate makes every pending client key of conn authorized (replacing an
// authorized key from the same node) and empties the pending list. It
// returns how many keys it activated; none pending is not an error.
func (s *KeyStore) Activate(conn string) (int, error) {
	if err := validName(conn); err != nil {
		return 0, fmt.Errorf("tunnel: activate: connection name: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pendPath := filepath.Join(s.connDir(conn), pendingName)
	authPath := filepath.Join(s.connDir(conn), authorizedName)
	pending, err := readKeyFile(pendPath, RoleClient, conn)
	if err != nil {
		return 0, err
	}
	if len(pending) == 0 {
		return 0, nil
	}
	auth, err := readKeyFile(authPath, RoleClient, conn)
	if err != nil {
		return 0, err
	}
	tx := &fileTx{root: s.root}
	// Authorized first: a crash between the two writes leaves the keys both
	// pending and authorized, and a second Activate finishes the job.
	if err := tx.write(authPath, encodeKeyLines(mergeKeys(auth, pending))); err != nil {
		return 0, fmt.Errorf("tunnel: activate %q: %w", conn, err)
	}
	if err := tx.write(pendPath, nil); err != nil {
		if rerr := tx.rollback(); rerr != nil {
			return 0, fmt.Errorf("tunnel: activate %q: %w (and restoring: %v)", conn, err, rerr)
		}
		return 0, fmt.Errorf("tunnel: activate %q: %w", conn, err)
	}
	return len(pending), nil
}

// PendingKeys returns the client keys uploaded for conn and not yet
// activated.
func (s *KeyStore) PendingKeys(conn string) ([]KeyLine, error) {
	return s.list(conn, pendingName, RoleClient)
}

// AuthorizedKeys returns the client keys authorized for conn: a peer
// presenting one of them is let in as conn.
func (s *KeyStore) AuthorizedKeys(conn string) ([]KeyLine, error) {
	return s.list(conn, authorizedName, RoleClient)
}

// PinnedHostKeys returns the host keys pinned for conn: the client role
// accepts a peer only if it presents one of them.
func (s *KeyStore) PinnedHostKeys(conn string) ([]KeyLine, error) {
	return s.list(conn, pinnedName, RoleHost)
}

// Connections returns the names of the connections that have a directory in
// the store, sorted.
func (s *KeyStore) Connections() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, connDirName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tunnel: list connections: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && validName(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// authorizedConnection returns the connection for which key is authorized.
func (s *KeyStore) authorizedConnection(key ssh.PublicKey) (string, bool, error) {
	conns, err := s.Connections()
	if err != nil {
		return "", false, err
	}
	blob := key.Marshal()
	for _, c := range conns {
		keys, err := s.AuthorizedKeys(c)
		if err != nil {
			return "", false, err
		}
		for _, k := range keys {
			if bytes.Equal(k.Key.Marshal(), blob) {
				return c, true, nil
			}
		}
	}
	return "", false, nil
}

func (s *KeyStore) list(conn, name string, role Role) ([]KeyLine, error) {
	if err := validName(conn); err != nil {
		return nil, fmt.Errorf("tunnel: list keys: connection name: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return readKeyFile(filepath.Join(s.connDir(conn), name), role, conn)
}

func (s *KeyStore) connDir(conn string) string {
	return filepath.Join(s.root, connDirName, conn)
}

// ensureKey reads the private key file dir/name, or creates it (and dir,
// 0700) when it does not exist. Creation is atomic and never replaces a key
// that appeared meanwhile.
func (s *KeyStore) ensureKey(dir, name string, t KeyType, comment string) (ssh.Signer, error) {
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err == nil {
		signer, perr := ssh.ParsePrivateKey(data)
		if perr != nil {
			return nil, fmt.Errorf("read %s: not a valid unencrypted OpenSSH private key", path)
		}
		if err := checkKeyType(signer.PublicKey(), t); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		return signer, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read key: %w", err)
	}
	var priv any
	switch t {
	case KeyEd25519:
		_, p, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, fmt.Errorf("generate ed25519 key: %w", gerr)
		}
		priv = p
	case KeyRSA:
		p, gerr := rsa.GenerateKey(rand.Reader, RSABits)
		if gerr != nil {
			return nil, fmt.Errorf("generate RSA key: %w", gerr)
		}
		priv = p
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, fmt.Errorf("encode %s key: %w", t, err)
	}
	if err := mkdirPrivate(s.root, dir); err != nil {
		return nil, err
	}
	if err := createFileAtomic(path, pem.EncodeToMemory(block)); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		// Someone else created it first: use theirs.
		return s.ensureKey(dir, name, t, comment)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("signer for new %s key: %w", t, err)
	}
	return signer, nil
}

func checkKeyType(key ssh.PublicKey, t KeyType) error {
	want := ssh.KeyAlgoED25519
	if t == KeyRSA {
		want = ssh.KeyAlgoRSA
	}
	if key.Type() != want {
		return fmt.Errorf("key is %s, want %s", key.Type(), want)
	}
	return nil
}

func normType(t KeyType) (KeyType, error) {
	switch t {
	case "", KeyEd25519:
		return KeyEd25519, nil
	case KeyRSA:
		return KeyRSA, nil
	default:
		return "", fmt.Errorf("unknown key type %q (want %q or %q)", t, KeyEd25519, KeyRSA)
	}
}

// validName accepts connection and node names: 1–64 of [A-Za-z0-9._-], not
// starting with '.' (so never "." or ".." or a hidden file).
func validName(n string) error {
	if n == "" {
		return errors.New("empty")
	}
	if len(n) > maxNameLen {
		return fmt.Errorf("longer than %d characters", maxNameLen)
	}
	if n[0] == '.' {
		return errors.New("starts with '.'")
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q has a character other than letters, digits, '.', '_', '-'", n)
		}
	}
	return nil
}

func publicLine(key ssh.PublicKey, comment string) string {
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(key)), "\n") + " " + comment
}

// mergeKeys returns cur with add merged in: an added key replaces the entry
// of the same node; the result is sorted by node.
func mergeKeys(cur, add []KeyLine) []KeyLine {
	byNode := map[string]KeyLine{}
	for _, k := range cur {
		byNode[k.Node] = k
	}
	for _, k := range add {
		byNode[k.Node] = k
	}
	out := make([]KeyLine, 0, len(byNode))
	for _, k := range byNode {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b KeyLine) int { return strings.Compare(a.Node, b.Node) })
	return out
}

func encodeKeyLines(keys []KeyLine) []byte {
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteString(k.String())
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// readKeyFile reads one of the store's key list files; a missing file is an
// empty list. Every line must carry role and conn in its comment (for
// RoleUnbound: the "backupsync-pending@<node>" comment, and conn is "").
func readKeyFile(path string, role Role, conn string) ([]KeyLine, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tunnel: read keys: %w", err)
	}
	keys, err := ParseKeyLines(data)
	if err != nil {
		return nil, fmt.Errorf("tunnel: read keys from %s: %w", path, err)
	}
	for _, k := range keys {
		if role == RoleUnbound {
			if k.Role != RoleUnbound || k.Node == "" || k.Original != k.Comment() {
				return nil, fmt.Errorf("tunnel: read keys from %s: line %d: comment is not %s<node>", path, k.LineNo, pendingCommentPrefix)
			}
			continue
		}
		if k.Role != role || k.Connection != conn {
			return nil, fmt.Errorf("tunnel: read keys from %s: line %d: comment is not %s:%s@<node>", path, k.LineNo, role, conn)
		}
	}
	return keys, nil
}
