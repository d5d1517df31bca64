package tunnel

import (
	"bytes"
	"fmt"
	"net"

	"golang.org/x/crypto/ssh"
)

// HostKeyPolicy says which host keys the client role accepts from a remote
// node (settings: ssh_client { host_keys = "…" }).
type HostKeyPolicy string

const (
	// HostKeysAcceptNew, the default, is OpenSSH's StrictHostKeyChecking
	// accept-new: a key uploaded for the connection (a "backupsync-host:C@…"
	// line) is accepted at any node; while none is uploaded, the first key a
	// remote address presents in a successful connection is pinned for that
	// address and from then on only that key is accepted there.
	HostKeysAcceptNew HostKeyPolicy = "accept-new"
	// HostKeysPinned accepts only uploaded pins: there is no first use.
	HostKeysPinned HostKeyPolicy = "pinned"
)

// ParseHostKeyPolicy accepts "accept-new", "pinned" and "" (accept-new).
func ParseHostKeyPolicy(s string) (HostKeyPolicy, error) {
	switch HostKeyPolicy(s) {
	case "", HostKeysAcceptNew:
		return HostKeysAcceptNew, nil
	case HostKeysPinned:
		return HostKeysPinned, nil
	}
	return "", fmt.Errorf("host key policy %q: want %q or %q", s, HostKeysAcceptNew, HostKeysPinned)
}

// hostKeyCheck decides on the host key one remote address presents.
type hostKeyCheck struct {
	conn   string
	addr   string // as dialed, "host:port": the per-address pin's node
	policy HostKeyPolicy
	file   string    // the pin file, for the error's advice
	named  []KeyLine // uploaded pins of nodes: accepted at any address
	atAddr *KeyLine  // the pin of this address, if any
	total  int       // pins of the connection

	firstUse ssh.PublicKey // set when the key is to be pinned on success
	err      *HostKeyError
}

func newHostKeyCheck(conn, addr string, policy HostKeyPolicy, file string, pins []KeyLine) *hostKeyCheck {
	h := &hostKeyCheck{conn: conn, addr: addr, policy: policy, file: file, total: len(pins)}
	for i, p := range pins {
		switch {
		case !p.IsAddress():
			h.named = append(h.named, p)
		case p.Node == addr:
			h.atAddr = &pins[i]
		}
	}
	return h
}

// algorithms are the host key algorithms to ask for: those of the keys
// that would be accepted, or nil (the library's default) when a new key
// would be pinned.
func (h *hostKeyCheck) algorithms() []string {
	if h.atAddr == nil && len(h.named) == 0 {
		return nil
	}
	var algos []string
	if h.atAddr != nil {
		algos = appendUnique(algos, hostKeyAlgorithms(h.atAddr.Key)...)
	}
	for _, p := range h.named {
		algos = appendUnique(algos, hostKeyAlgorithms(p.Key)...)
	}
	return algos
}

// callback is the ssh.HostKeyCallback: an uploaded pin of a node, or the
// pin of this address; with neither, and no uploaded pin at all, the key
// is accepted for pinning after the connection succeeds (accept-new).
func (h *hostKeyCheck) callback(_ string, _ net.Addr, key ssh.PublicKey) error {
	blob := key.Marshal()
	for _, p := range h.named {
		if bytes.Equal(p.Key.Marshal(), blob) {
			return nil
		}
	}
	fail := &HostKeyError{Connection: h.conn, Node: h.addr, Fingerprint: ssh.FingerprintSHA256(key), KeyType: key.Type(),
		Pinned: h.total, PinFile: h.file, Policy: h.policy}
	switch {
	case h.atAddr != nil:
		if bytes.Equal(h.atAddr.Key.Marshal(), blob) {
			return nil
		}
		fail.PinnedFingerprint = h.atAddr.Fingerprint()
	case h.policy == HostKeysAcceptNew && len(h.named) == 0:
		h.firstUse = key
		return nil
	}
	h.err = fail
	return fail
}

// HostKeyError is returned when a remote node presents a host key the
// connection does not accept: a key other than the one pinned for its
// address (Changed), or an unknown key where only uploaded pins count
// (ssh_client.host_keys = "pinned", or keys uploaded for the connection).
// Its message names the presented fingerprint, the pinned one when the key
// changed, and what the administrator can do.
type HostKeyError struct {
	Connection  string
	Node        string // the address dialed
	Fingerprint string // the presented key's, "SHA256:…"
	KeyType     string
	Pinned      int // how many host keys are pinned for Connection
	// PinnedFingerprint is the key pinned for Node's address when it
	// presented another one; "" when nothing was pinned for the address.
	PinnedFingerprint string
	// PinFile is the file that holds the connection's pins.
	PinFile string
	Policy  HostKeyPolicy
}

// Changed reports whether a key was pinned for the address and the node
// presented another one.
func (e *HostKeyError) Changed() bool { return e.PinnedFingerprint != "" }

// Error names the connection, the node, the fingerprints and the next step.
func (e *HostKeyError) Error() string {
	upload := fmt.Sprintf("upload the remote's SSHKEY %s line (comment backupsync-host:%s@<node>) here with UPLOAD_KEY", e.Connection, e.Connection)
	switch {
	case e.Changed():
		return fmt.Sprintf("tunnel %q: node %s presents host key %s (%s), but host key %s is pinned for that address: the remote's host key changed. "+
			"If that is expected (the node was reinstalled), either remove the pin on this node with: %s (the next contact pins the key presented then), or %s; "+
			"if it is not expected, the tunnel may be intercepted: change nothing and find out why",
			e.Connection, e.Node, e.Fingerprint, e.KeyType, e.PinnedFingerprint, unpinCommand(e.Connection, e.Node, e.PinFile), upload)
	case e.Pinned == 0:
		return fmt.Sprintf("tunnel %q: node %s presents host key %s (%s), but no host key is pinned for this connection and ssh_client.host_keys is %q: "+
			"if that fingerprint is the remote's, %s",
			e.Connection, e.Node, e.Fingerprint, e.KeyType, string(e.Policy), upload)
	}
	return fmt.Sprintf("tunnel %q: node %s presents host key %s (%s), which is not among the %d pinned for this connection (changed or unknown host key): "+
		"if that fingerprint is the remote's, %s",
		e.Connection, e.Node, e.Fingerprint, e.KeyType, e.Pinned, upload)
}
