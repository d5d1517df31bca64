package runner

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"backupsync/internal/archive"
	"backupsync/internal/sync"
	"backupsync/internal/tunnel"
)

// EndpointError is a failure to open one side of a connection. URL names the
// configuration key whose endpoint failed ("LOCAL_URL" or "REMOTE_URL"), so
// that the admin knows which line of the connection to fix.
type EndpointError struct {
	URL string
	Err error
}

func (e *EndpointError) Error() string {
	what := "local archive volume (LOCAL_URL)"
	if e.URL == "REMOTE_URL" {
		what = "remote archive volume (REMOTE_URL)"
	}
	return what + ": " + e.Err.Error()
}

func (e *EndpointError) Unwrap() error { return e.Err }

// Diagnosis is a failed cycle in the words an admin acts on: what is wrong,
// in one short sentence, and what to do about it.
type Diagnosis struct {
	Cause string `json:"cause"`
	Next  string `json:"next_step"`
}

// maxCause bounds a cause sentence; the whole error is in the log.
const maxCause = 200

// Explain turns the outcome of a cycle of connection conn into a
// Diagnosis. err is the cycle's error (nil when it ran); rep says which
// files failed. A cycle that succeeded has no diagnosis (the zero value).
func Explain(conn string, rep sync.Report, err error) Diagnosis {
	if err == nil {
		if len(rep.Failed) == 0 && rep.Error == "" {
			return Diagnosis{}
		}
		if rep.Error != "" {
			return Diagnosis{Cause: short(rep.Error), Next: "see GETLOG for the details; the next cycle tries again"}
		}
		f := rep.Failed[0]
		cause := fmt.Sprintf("%d file(s) failed, first %s: %s", len(rep.Failed), f.Path, f.Error)
		return Diagnosis{Cause: short(cause), Next: "see GETLOG for each file; the next cycle retries them"}
	}
	side, url := "", ""
	var ee *EndpointError
	if errors.As(err, &ee) {
		url = ee.URL
		side = "the source's"
		if url == "REMOTE_URL" {
			side = "the destination's"
		}
	}
	var hk *tunnel.HostKeyError
	var refused *tunnel.RefusedError
	switch {
	case errors.As(err, &refused):
		return explainRefusal(conn, refused)
	case errors.As(err, &hk):
		return Diagnosis{Cause: short(hk.Error()), Next: "if the remote node's host key was changed on purpose, " +
			"upload its new line (SSHKEY " + conn + " on the remote cluster, then UPLOAD_KEY here); otherwise treat it as an attack"}
	case errors.Is(err, archive.ErrLoginRefused):
		return Diagnosis{Cause: short(fmt.Sprintf("%s FTP server refused the login of %s: %s", side, url, innermost(err, archive.ErrLoginRefused))),
			Next: fmt.Sprintf("check the user and password in %s of %s and upload the corrected configuration (UPLOAD_CONFIG)", url, conn)}
	case errors.Is(err, archive.ErrRootUnavailable):
		return Diagnosis{Cause: short(fmt.Sprintf("%s volume in %s is missing or unreadable", side, url)),
			Next: fmt.Sprintf("check that the volume named in %s exists and that its user may read it", url)}
	case errors.Is(err, archive.ErrVolumeFull):
		return Diagnosis{Cause: "the destination archive volume is full",
			Next: "free space on the remote archive volume or enlarge it; the next cycle resumes"}
	case errors.Is(err, sync.ErrUnreachable) && url != "":
		return Diagnosis{Cause: short(fmt.Sprintf("%s archive volume (%s) is unreachable: %s", side, url, lastPart(err))),
			Next: fmt.Sprintf("check that the node in %s is up and its archive FTP answers; the next cycle tries again", url)}
	}
	return Diagnosis{Cause: short(err.Error()), Next: "see GETLOG for the details; the next cycle tries again"}
}

// explainRefusal says why a remote node refused this node's tunnel, and
// what to do on which cluster.
func explainRefusal(conn string, e *tunnel.RefusedError) Diagnosis {
	host := e.Node
	if h, _, err := net.SplitHostPort(e.Node); err == nil {
		host = h
	}
	pairing := fmt.Sprintf("upload this cluster's SSHKEY %s lines to the remote cluster with UPLOAD_KEY, then run SSHKEY %s there", conn, conn)
	switch e.Reason {
	case tunnel.RefusedNotRunning:
		return Diagnosis{Cause: fmt.Sprintf("node %s refused the tunnel: nothing listens on its SSH port", e.Node),
			Next: fmt.Sprintf("is backupsyncd running on %s, with %s configured as SSH = server and this cluster's keys authorized there (%s)?", host, conn, pairing)}
	case tunnel.RefusedNoKey:
		return Diagnosis{Cause: fmt.Sprintf("node %s has no authorized key of this node for %s", e.Node, conn), Next: pairing}
	case tunnel.RefusedPending:
		return Diagnosis{Cause: fmt.Sprintf("node %s has this node's key for %s uploaded but not authorized", e.Node, conn),
			Next: fmt.Sprintf("run SSHKEY %s on the remote cluster", conn)}
	case tunnel.RefusedNotServed:
		return Diagnosis{Cause: fmt.Sprintf("node %s holds this node's key for a connection it does not serve with SSH = server", e.Node),
			Next: fmt.Sprintf("name the connection %s on both clusters, configured with SSH = server on the remote one", conn)}
	case tunnel.RefusedNameMismatch:
		return Diagnosis{Cause: fmt.Sprintf("node %s authorized this node's key for connection %q, not %q", e.Node, e.Remote, conn),
			Next: "use the same connection name on both clusters: rename it on one, upload the configuration and pair again"}
	}
	return Diagnosis{Cause: short(e.Error()), Next: "see GETLOG for the details; the next cycle tries again"}
}

// innermost is the text of the error in err's chain that matches target,
// which carries the server's own words.
func innermost(err, target error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if x, ok := e.(interface{ Is(error) bool }); ok && x.Is(target) {
			return e.Error()
		}
	}
	return lastPart(err)
}

// lastPart is the cause at the end of a wrapped error text.
func lastPart(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && i+2 < len(s) {
		return s[i+2:]
	}
	return s
}

func short(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxCause {
		return s[:maxCause-1] + "…"
	}
	return s
}
