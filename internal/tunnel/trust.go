package tunnel

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"unicode"

	"golang.org/x/crypto/ssh"
)

// Refusal says why a remote node refused this node's tunnel.
type Refusal string

const (
	// RefusedNotRunning: nothing listens on the remote SSH port (TCP
	// connection refused).
	RefusedNotRunning Refusal = "not-running"
	// RefusedNoKey: the remote has no key of this node, authorized or
	// pending (never uploaded there, or replaced since).
	RefusedNoKey Refusal = "no-key"
	// RefusedPending: the remote has this node's key uploaded, not yet
	// authorized (SSHKEY not run there).
	RefusedPending Refusal = "pending"
	// RefusedNotServed: the remote has this node's key for a connection it
	// does not serve (no such connection with SSH = server there: the
	// names differ between the clusters, or it was removed).
	RefusedNotServed Refusal = "not-served"
	// RefusedNameMismatch: the remote authorized this node's key for a
	// connection of another name (found by the hello after login).
	RefusedNameMismatch Refusal = "name-mismatch"
)

// RefusedError is a remote node's refusal of this node's tunnel, with the
// reason when the remote told it (a backupsync server sends it in an SSH
// authentication banner, or answers the hello request) or the TCP
// connection was refused. Its message says what to do next.
type RefusedError struct {
	Connection string
	Node       string // the address dialed
	Reason     Refusal
	// Remote is the connection the remote matched this node's key to
	// (RefusedNameMismatch).
	Remote string
	// Detail is the remote's own sentence (its banner), cleaned of control
	// characters and cut to a length.
	Detail string
	// Err is the underlying error (the dial's or the handshake's).
	Err error
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Error says what the remote refused and what to do next.
func (e *RefusedError) Error() string {
	c := e.Connection
	host := e.Node
	if h, _, err := net.SplitHostPort(e.Node); err == nil {
		host = h
	}
	var msg string
	switch e.Reason {
	case RefusedNotRunning:
		msg = fmt.Sprintf("node %s refused the connection: is backupsyncd running on %s, and is %s configured with SSH = server there? "+
			"(its SSH server runs once %s has authorized client keys there: UPLOAD_KEY of this cluster's SSHKEY %s lines, then SSHKEY %s, on the remote cluster)",
			e.Node, host, c, c, c, c)
	case RefusedNoKey:
		msg = fmt.Sprintf("node %s has no key of this node for %s: upload this cluster's SSHKEY %s lines to the remote cluster with UPLOAD_KEY, then run SSHKEY %s there",
			e.Node, c, c, c)
	case RefusedPending:
		msg = fmt.Sprintf("node %s has this node's key for %s uploaded but not authorized: run SSHKEY %s on the remote cluster", e.Node, c, c)
	case RefusedNotServed:
		msg = fmt.Sprintf("node %s holds this node's key for a connection it does not serve with SSH = server: is the connection named %s on the remote cluster too, "+
			"configured there with SSH = server? (connection names must be the same on both clusters)", e.Node, c)
	case RefusedNameMismatch:
		msg = fmt.Sprintf("node %s authorized this node's key for connection %q, not %q: the connection name must be the same on both clusters "+
			"(rename it on one of them, upload the configuration, and pair again)", e.Node, e.Remote, c)
	default:
		msg = fmt.Sprintf("node %s refused the tunnel", e.Node)
	}
	if e.Detail != "" {
		msg += fmt.Sprintf(" [remote: %s]", e.Detail)
	}
	return fmt.Sprintf("tunnel %q: %s", c, msg)
}

// bannerPrefix starts the authentication banners a backupsync server sends
// when it refuses a key: "backupsync refused (<reason>): <sentence>".
const bannerPrefix = "backupsync refused ("

// refusalBanner is the banner of a refusal.
func refusalBanner(r Refusal, sentence string) string {
	return bannerPrefix + string(r) + "): " + sentence + "\n"
}

// parseBanner returns the refusal a banner reports and its sentence; ok is
// false for any other banner (OpenSSH's, a site's).
func parseBanner(b string) (Refusal, string, bool) {
	rest, ok := strings.CutPrefix(b, bannerPrefix)
	if !ok {
		return "", "", false
	}
	code, sentence, ok := strings.Cut(rest, "): ")
	if !ok {
		return "", "", false
	}
	switch r := Refusal(code); r {
	case RefusedNoKey, RefusedPending, RefusedNotServed:
		return r, clean(sentence, 300), true
	}
	return "", "", false
}

// rank orders refusals by how far this node's key got: of several banners
// (one per key offered) the furthest is the one to act on.
func (r Refusal) rank() int {
	switch r {
	case RefusedPending:
		return 3
	case RefusedNotServed:
		return 2
	case RefusedNoKey:
		return 1
	}
	return 0
}

// clean keeps the printable characters of a remote's text, at most max
// runes: it goes into logs and STATUS.
func clean(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range strings.TrimSpace(s) {
		if n >= max {
			b.WriteString("…")
			break
		}
		if !unicode.IsPrint(r) {
			r = ' '
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// extRefusal marks, in the permissions PublicKeyCallback returns, a key
// that is known here but refused: the refusal is sent as a banner only
// once the peer proved it holds the key (VerifiedPublicKeyCallback).
const extRefusal = "backupsync-refusal"

// checkKey is the server's PublicKeyCallback. A key authorized for a
// connection the daemon serves is accepted. A key this node knows but
// refuses — pending (uploaded, SSHKEY not run), or authorized or pending
// for a connection not served here — passes this first check marked with
// extRefusal, so that verifiedKey refuses it with a banner saying why, to
// a peer that proved it holds the key. An unknown key is refused at once,
// with a banner that says no more than that.
func (s *Server) checkKey(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	fp := ssh.FingerprintSHA256(key)
	state, conn, err := s.cfg.Keys.LookupClientKey(key)
	if err != nil {
		s.log.Error("tunnel: cannot read the keys", "err", err)
		return nil, errors.New("keys unreadable")
	}
	served := func(c string) bool { return s.cfg.AllowConnection == nil || s.cfg.AllowConnection(c) }
	refuse := func(r Refusal, why string) (*ssh.Permissions, error) {
		return &ssh.Permissions{Extensions: map[string]string{extRefusal: string(r), ExtFingerprint: fp, ExtConnection: conn,
			extRefusal + "-why": why}}, nil
	}
	switch state {
	case KeyAuthorized:
		if served(conn) {
			return &ssh.Permissions{Extensions: map[string]string{ExtConnection: conn, ExtFingerprint: fp}}, nil
		}
		return refuse(RefusedNotServed, fmt.Sprintf("key %s is authorized for connection %q, which is not configured here with SSH = server", fp, conn))
	case KeyPending:
		if served(conn) {
			return refuse(RefusedPending, fmt.Sprintf("key %s is pending for connection %q: SSHKEY not run", fp, conn))
		}
		return refuse(RefusedNotServed, fmt.Sprintf("key %s is pending for connection %q, which is not configured here with SSH = server", fp, conn))
	case KeyUnboundPending:
		return refuse(RefusedPending, fmt.Sprintf("key %s is pending for the next SSHKEY: SSHKEY not run", fp))
	}
	return nil, &ssh.BannerError{
		Err:     fmt.Errorf("key %s is not authorized for any connection", fp),
		Message: refusalBanner(RefusedNoKey, fmt.Sprintf("this node has no key %s, authorized or pending, for any connection", fp)),
	}
}

// verifiedKey is the server's VerifiedPublicKeyCallback: it refuses the
// keys checkKey marked, with a banner saying why (never naming the
// connection: the client knows its own).
func (s *Server) verifiedKey(meta ssh.ConnMetadata, key ssh.PublicKey, perms *ssh.Permissions, _ string) (*ssh.Permissions, error) {
	if perms == nil {
		return nil, errors.New("no permissions")
	}
	r := Refusal(perms.Extensions[extRefusal])
	if r == "" {
		return perms, nil
	}
	fp := ssh.FingerprintSHA256(key)
	var sentence string
	switch r {
	case RefusedPending:
		sentence = fmt.Sprintf("key %s was uploaded to this node but is not authorized yet: run SSHKEY for its connection on this cluster", fp)
	default:
		sentence = fmt.Sprintf("key %s belongs to a connection this node does not serve (not configured here with SSH = server; connection names must be the same on both clusters)", fp)
	}
	return nil, &ssh.BannerError{Err: errors.New(perms.Extensions[extRefusal+"-why"]), Message: refusalBanner(r, sentence)}
}

// bannerRefusal turns the banners a client received into its refusal, or
// nil when none was a backupsync refusal.
func bannerRefusal(conn, addr string, banners []string, err error) *RefusedError {
	var best *RefusedError
	for _, b := range banners {
		r, sentence, ok := parseBanner(b)
		if !ok {
			continue
		}
		if best == nil || r.rank() > best.Reason.rank() {
			best = &RefusedError{Connection: conn, Node: addr, Reason: r, Detail: sentence, Err: err}
		}
	}
	return best
}
