package control

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"syscall"

	"backupsync/internal/xmlrpc"
)

// Unreachable is the output of a verb forwarded to a peer that could not
// be asked: "<node> unreachable: " (which scripts and backupsyncctl look
// for), what happened in an admin's words and what to check, never the
// name of the internal method that forwards the call. err is the error of
// the call to the peer.
func Unreachable(peer Peer, err error) string {
	return peer.Name + " unreachable: " + whyUnreachable(peer, err)
}

func whyUnreachable(peer Peer, err error) string {
	running := "is backupsyncd running on " + peer.Name + "? "
	where := ""
	if peer.URL != "" {
		where = " (the cluster settings give its url as " + peer.URL + ")"
	}
	var (
		op     *net.OpError
		dns    *net.DNSError
		verify *tls.CertificateVerificationError
	)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return running + "Nothing accepts connections at its control address" + where + ": start it there (systemctl start backupsyncd)"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return running + "It did not answer in time" + where + ": check that the node is up and its daemon not stuck, then retry"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return running + "Its address cannot be reached from this node" + where + ": check the node and the network"
	case errors.As(err, &dns):
		return "its host " + dns.Name + " does not resolve" + where + ": correct the url in the cluster settings"
	case errors.Is(err, xmlrpc.ErrUnauthorized):
		return "its daemon refused this cluster's login (HTTP 401): the cluster block's user and password must be an xmlrpc user of " + peer.Name
	case errors.Is(err, xmlrpc.ErrFingerprintMismatch):
		return "its certificate does not match the fingerprint pinned in the cluster settings" + where + ": compare with the fingerprint its daemon logged, and correct the pin"
	case errors.As(err, &verify):
		return "its certificate is not trusted: pin its fingerprint in the cluster settings"
	case errors.As(err, &op):
		return running + "Cannot connect to its control address" + where + ": " + op.Err.Error()
	}
	msg := err.Error()
	// The internal methods' names (this package's and ConfD's node-local
	// one) tell an admin nothing.
	for _, m := range []string{localMethod, "backupsync.confdLocal"} {
		msg = strings.ReplaceAll(msg, m+": ", "")
		msg = strings.ReplaceAll(msg, m, "the forwarded call")
	}
	return msg
}

// isTimeout reports whether err, or an error it wraps, says it timed out
// (an HTTP client's own timeout does not always wrap
// context.DeadlineExceeded).
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
