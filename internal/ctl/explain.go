package ctl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	"backupsync/internal/xmlrpc"
)

// zopePrefix starts every fault of EXAoperation's (and backupsyncd's)
// plugin surface; it tells an admin nothing.
const zopePrefix = "Unexpected Zope exception: "

// Explain turns the error of a call into a message that says what went
// wrong and what to do about it: a wrong password, a certificate that is not
// trusted (and how to pin it), a daemon that does not answer, a fault. It
// never adds a secret; the errors it gets hold none.
func Explain(err error) string {
	if err == nil {
		return ""
	}
	var (
		fault   *xmlrpc.Fault
		httpErr *xmlrpc.HTTPError
		verify  *tls.CertificateVerificationError
		record  tls.RecordHeaderError
		dns     *net.DNSError
		op      *net.OpError
		unknown *UnknownNodesError
		job     *JobError
	)
	switch {
	case errors.As(err, &unknown):
		return err.Error()
	case errors.As(err, &job):
		return job.Desc
	case errors.Is(err, xmlrpc.ErrUnauthorized):
		return "wrong user or password (the server answered HTTP 401): give the right ones in the URL " +
			"(https://USER:PASSWORD@HOST:PORT/cluster1/), with --user and --password, " +
			"or in BACKUPSYNC_USER and BACKUPSYNC_PASSWORD"
	case errors.Is(err, xmlrpc.ErrFingerprintMismatch):
		msg := "the server's certificate does not match --fingerprint"
		if _, presented, ok := strings.Cut(err.Error(), "server presented "); ok {
			presented, _, _ = strings.Cut(presented, " ")
			msg += " (it presented " + strings.TrimRight(presented, ",;:)") + ")"
		}
		return msg + ": compare with the fingerprint backupsyncd logged when it started (fingerprint=SHA256:…); " +
			"a daemon whose state/tls was removed has made a new certificate. Refused: nothing was sent"
	case errors.As(err, &verify):
		msg := "the server's certificate is not trusted (" + verify.Err.Error() + "). " +
			"backupsyncd makes its own certificate on first start and logs its fingerprint " +
			"(a line with fingerprint=SHA256:…; the certificate is STATE_DIR/tls/cert.pem)"
		if len(verify.UnverifiedCertificates) > 0 {
			fp := xmlrpc.Fingerprint(verify.UnverifiedCertificates[0].Raw)
			return msg + ". This server presented " + fp + ": if that is what the daemon logged, " +
				"pin it with --fingerprint " + fp + " (or, on a network you trust, pass --insecure)"
		}
		return msg + ": pin it with --fingerprint SHA256:… (or, on a network you trust, pass --insecure)"
	case errors.As(err, &record):
		return "the server does not speak HTTPS (" + record.Error() + "): check the URL's port, " +
			"and whether it should be http://"
	case errors.As(err, &fault):
		return strings.TrimPrefix(fault.String, zopePrefix)
	case errors.As(err, &httpErr):
		switch httpErr.StatusCode {
		case 404:
			return httpErr.Error() + ": check the URL's path (backupsyncd serves /cluster1/ and /)"
		case 405:
			return httpErr.Error() + ": the URL does not lead to an XML-RPC endpoint"
		case 429:
			wait := "a few seconds"
			if httpErr.RetryAfter > 0 {
				wait = fmt.Sprintf("%d s", int64(httpErr.RetryAfter/time.Second))
			}
			return "too many failed logins from this address: try again in " + wait +
				" (the daemon slows down an address after failed logins; check the user and password before you retry)"
		}
		return httpErr.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return err.Error() + " (a slow node may need a longer --timeout)"
	case errors.Is(err, context.Canceled):
		return "interrupted"
	case errors.As(err, &dns):
		return "cannot resolve " + dns.Name + " (" + dns.Err + "): check the URL's host"
	case errors.As(err, &op) && op.Op == "dial":
		addr := ""
		if op.Addr != nil {
			addr = " " + op.Addr.String()
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return "cannot connect to" + addr + " (connection refused): is backupsyncd running there, " +
				"and are the URL's host and port those of its xmlrpc listen setting?"
		}
		return "cannot connect to" + addr + " (" + op.Err.Error() + ")"
	}
	return err.Error()
}
