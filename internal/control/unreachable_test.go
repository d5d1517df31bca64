package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"backupsync/internal/xmlrpc"
)

// A forwarded verb to a node that cannot be asked answers what to check on
// that node, and never the internal method that forwards it.
func TestUnreachableMessage(t *testing.T) {
	peer := Peer{Name: "n0012", URL: "https://127.0.12.2:4443/"}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"refused", fmt.Errorf("%s: Post %q: %w", localMethod, peer.URL, refused),
			"n0012 unreachable: is backupsyncd running on n0012? Nothing accepts connections at its control address (the cluster settings give its url as https://127.0.12.2:4443/): start it there"},
		{"timeout", fmt.Errorf("%s: no answer within 5s: %w", localMethod, context.DeadlineExceeded),
			"n0012 unreachable: is backupsyncd running on n0012? It did not answer in time"},
		{"the client's own timeout", fmt.Errorf("%s: %w", localMethod, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}),
			"n0012 unreachable: is backupsyncd running on n0012? It did not answer in time"},
		{"no route", fmt.Errorf("%s: %w", localMethod, &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}),
			"n0012 unreachable: is backupsyncd running on n0012? Its address cannot be reached"},
		{"401", fmt.Errorf("%s: %w", localMethod, &xmlrpc.HTTPError{StatusCode: 401, Status: "401 Unauthorized"}),
			"n0012 unreachable: its daemon refused this cluster's login (HTTP 401)"},
		{"pin", fmt.Errorf("%s: %w: server presented SHA256:x", localMethod, xmlrpc.ErrFingerprintMismatch),
			"n0012 unreachable: its certificate does not match the fingerprint pinned"},
		{"other", fmt.Errorf("%s: invalid answer from %s: EOF", localMethod, peer.URL), "n0012 unreachable: invalid answer from"},
		{"ConfD's node-local call", fmt.Errorf("backupsync.confdLocal: %w", refused), "n0012 unreachable: is backupsyncd running on n0012?"},
		{"ConfD's, another error", errors.New("backupsync.confdLocal: answer larger than 16 bytes"), "n0012 unreachable: answer larger than 16 bytes"},
	} {
		got := Unreachable(peer, tc.err)
		if !strings.HasPrefix(got, tc.want) || strings.Contains(got, "backupsync.") || strings.Contains(got, "callLocal") {
			t.Errorf("%s: %q, want it to start %q without the method name", tc.name, got, tc.want)
		}
	}

	// Through the surface, to a port nobody listens on.
	ln, _ := net.Listen("tcp", "127.0.12.1:0")
	dead := "https://" + ln.Addr().String() + "/"
	ln.Close()
	_, srv := newSurface(t, Peer{Name: "n0013", URL: dead})
	got, err := call(t, srv.URL, "callPlugin", "Administration.BackupSync-1", "n0013", "STATUS", "")
	out, _ := got[1].(string)
	if err != nil || !strings.HasPrefix(out, "n0013 unreachable: is backupsyncd running on n0013?") || strings.Contains(out, "callLocal") {
		t.Errorf("dead node: %q, %v", out, err)
	}
}
