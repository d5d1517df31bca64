package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	gosync "sync"
	"time"

	"backupsync/internal/archive"
	"backupsync/internal/config"
	"backupsync/internal/sync"
	"backupsync/internal/tunnel"
)

// The pre-flight test (TEST CONN, backupsyncctl test CONN) checks on this
// node everything a cycle needs before the first one runs: it logs in to
// both archive volumes (the remote one through the SSH tunnel for SSH =
// client), lists this node's part of the database at both, and writes,
// reads back and removes a probe file in the destination's backup tree,
// <volume>/<DATABASE_NAME>/. It copies and deletes no backup file.
//
// The probe file lies directly in the database directory and is named
// backupsync-test-<node>-<random>.tmp: backup data only ever lies in
// id_<n>/level_<n>/node_<n>/ below that directory, so a cycle never lists
// it, and no name of Exasol's looks like it. It is removed even when a
// step after the write fails or the test is cancelled.

// Steps of the pre-flight test, in the order they are reported.
const (
	StepSourceLogin  = "source login"
	StepSourceList   = "source list"
	StepTunnel       = "SSH tunnel"
	StepDestLogin    = "destination login"
	StepDestList     = "destination list"
	StepDestWrite    = "destination write"
	StepDestRemove   = "destination remove"
	probePrefix      = "backupsync-test-"
	probeSuffix      = ".tmp"
	cleanupTimeout   = 10 * time.Second
	testConnectLimit = 10 * time.Second
)

// TestStep is one check of a pre-flight test.
type TestStep struct {
	Name string `json:"step"`
	// Status is "ok", "failed" or "skipped" (a step that needs one that
	// failed).
	Status string `json:"status"`
	// Detail says what an ok step found, or why a step was skipped.
	Detail string `json:"detail,omitempty"`
	// Cause and Next explain a failed step: what is wrong in one sentence,
	// and what to do about it.
	Cause string `json:"cause,omitempty"`
	Next  string `json:"next_step,omitempty"`
}

// TestReport is a pre-flight test of one connection on this node.
type TestReport struct {
	Connection string     `json:"connection"`
	Node       string     `json:"node"`
	Steps      []TestStep `json:"steps"`
}

// OK reports whether every step passed.
func (t TestReport) OK() bool {
	for _, s := range t.Steps {
		if s.Status != "ok" {
			return false
		}
	}
	return len(t.Steps) > 0
}

// String is the report as TEST answers it: a first line with the verdict,
// then a line per step, a failed one followed by its next step.
func (t TestReport) String() string {
	var b strings.Builder
	verdict := "ok"
	if !t.OK() {
		var failed []string
		for _, s := range t.Steps {
			if s.Status == "failed" {
				failed = append(failed, s.Name)
			}
		}
		verdict = "FAILED at " + strings.Join(failed, ", ")
	}
	fmt.Fprintf(&b, "test of %s on %s: %s", t.Connection, t.Node, verdict)
	for _, s := range t.Steps {
		text := s.Detail
		if s.Status == "failed" {
			text = s.Cause
		}
		fmt.Fprintf(&b, "\n%-8s %-18s %s", s.Status, s.Name, text)
		if s.Status == "failed" && s.Next != "" {
			fmt.Fprintf(&b, "\n%-8s %-18s next: %s", "", "", s.Next)
		}
	}
	return b.String()
}

// Test runs the pre-flight test of the runner's connection on this node
// (see the comment above), both sides at once, each bounded by ctx and
// ConnectTimeout (default 10s here). It writes nothing to the source and
// takes no cycle lock: a cycle running meanwhile is not disturbed. It
// never returns an error: a step that fails says so in the report.
func (r *Runner) Test(ctx context.Context) TestReport {
	c := r.Conn
	rep := TestReport{Connection: c.Name, Node: r.Settings.Node.Name}
	if !c.Role.Copies() {
		rep.Steps = []TestStep{{Name: "role", Status: "failed",
			Cause: fmt.Sprintf("%s has SSH = %s: this cluster accepts the tunnels and copies nothing, so there is nothing to test here", c.Name, c.Role),
			Next:  "run the test of " + c.Name + " on the client cluster (SSH = client): it goes through this cluster's tunnel"}}
		return rep
	}
	if r.ConnectTimeout <= 0 {
		r.ConnectTimeout = testConnectLimit
	}
	var (
		wg       gosync.WaitGroup
		src, dst []TestStep
	)
	wg.Go(func() { src = r.testSource(ctx) })
	wg.Go(func() { dst = r.testDestination(ctx) })
	wg.Wait()
	rep.Steps = append(src, dst...)
	return rep
}

// testSource logs in to the local volume, read-only, and lists this node's
// part of the database.
func (r *Runner) testSource(ctx context.Context) []TestStep {
	c := r.Conn
	ep := r.endpoint(c.LocalURL, r.Settings.Node.IP)
	v, err := archive.Open(ctx, ep, archive.Options{ReadOnly: true, MaxConns: 1, ConnectTimeout: r.ConnectTimeout})
	if err != nil {
		return []TestStep{r.failedStep(StepSourceLogin, "LOCAL_URL", err), skipped(StepSourceList, StepSourceLogin)}
	}
	defer v.Close()
	steps := []TestStep{{Name: StepSourceLogin, Status: "ok", Detail: ep.String()}}
	return append(steps, r.listStep(ctx, StepSourceList, "LOCAL_URL", v))
}

// testDestination opens the SSH tunnel (SSH = client), logs in to the
// remote volume, lists, and writes, reads back and removes the probe file.
func (r *Runner) testDestination(ctx context.Context) (steps []TestStep) {
	c := r.Conn
	order := failoverOrder(c.RemoteNodes, r.Settings.Node.Index)
	opt := archive.Options{MaxConns: 2, ConnectTimeout: r.ConnectTimeout}
	skipRest := func(after string) []TestStep {
		return append(steps, skipped(StepDestList, after), skipped(StepDestWrite, after), skipped(StepDestRemove, after))
	}
	var (
		v   *archive.Volume
		err error
	)
	if c.Role == config.RoleClient {
		tc, err := r.tunnelClient(order)
		if err == nil {
			defer tc.Close()
			ep := r.endpoint(c.RemoteURL, order[0])
			var conn net.Conn
			dctx, cancel := context.WithTimeout(ctx, 2*r.ConnectTimeout)
			conn, err = tc.DialContext(dctx, "tcp", net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)))
			cancel()
			if err == nil {
				conn.Close()
			}
		}
		if err != nil {
			steps = append(steps, TestStep{Name: StepTunnel, Status: "failed", Cause: short(err.Error()),
				Next: tunnelNext(c.Name, err)})
			steps = append(steps, skipped(StepDestLogin, StepTunnel))
			return skipRest(StepTunnel)
		}
		detail := "to " + tc.Node() + ", host key pinned, forwarding to the archive FTP"
		if offered, ferr := tc.FarEnd(ctx); ferr == nil && offered {
			detail += "; the far end publishes (backupsyncd)"
		} else if ferr == nil {
			detail += "; no far-end publishing there (OpenSSH or an older backupsyncd): FTP through the tunnel"
		}
		steps = append(steps, TestStep{Name: StepTunnel, Status: "ok", Detail: detail})
		opt.Dial = tc.DialContext
		ep := r.endpoint(c.RemoteURL, order[0])
		if v, err = archive.Open(ctx, ep, opt); err != nil {
			steps = append(steps, r.failedStep(StepDestLogin, "REMOTE_URL", err))
			return skipRest(StepDestLogin)
		}
		steps = append(steps, TestStep{Name: StepDestLogin, Status: "ok", Detail: ep.String() + " through the tunnel"})
	} else {
		var errs []error
		for _, node := range order {
			ep := r.endpoint(c.RemoteURL, node)
			if v, err = archive.Open(ctx, ep, opt); err == nil {
				steps = append(steps, TestStep{Name: StepDestLogin, Status: "ok", Detail: ep.String()})
				break
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		if v == nil {
			steps = append(steps, r.failedStep(StepDestLogin, "REMOTE_URL", errors.Join(errs...)))
			return skipRest(StepDestLogin)
		}
	}
	defer v.Close()
	steps = append(steps, r.listStep(ctx, StepDestList, "REMOTE_URL", v))
	return append(steps, r.probeSteps(ctx, v)...)
}

// probeSteps writes the probe file, reads it back and removes it; the
// file (and its temporary name) is removed whatever fails.
func (r *Runner) probeSteps(ctx context.Context, v *archive.Volume) []TestStep {
	c := r.Conn
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	path := c.Database + "/" + ProbeName(r.Settings.Node.Name, hex.EncodeToString(rnd[:]))
	content := fmt.Sprintf("backupsync pre-flight test of %s from %s at %s: safe to delete\n",
		c.Name, r.Settings.Node.Name, time.Now().UTC().Format(time.RFC3339))
	removed := false
	defer func() {
		if removed {
			return
		}
		// A failed or cancelled test leaves nothing behind.
		cctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		_ = v.Delete(cctx, path)
		_ = v.Delete(cctx, archive.TempName(path))
	}()
	where := v.Endpoint().Root + "/" + path
	err := v.Publish(ctx, path, strings.NewReader(content), int64(len(content)), 0)
	if err == nil {
		err = readBack(ctx, v, path, content)
	}
	if err != nil {
		return []TestStep{r.failedStep(StepDestWrite, "REMOTE_URL", fmt.Errorf("write %s: %w", where, err)), skipped(StepDestRemove, StepDestWrite)}
	}
	steps := []TestStep{{Name: StepDestWrite, Status: "ok", Detail: fmt.Sprintf("%s (%d bytes, read back)", where, len(content))}}
	if err := v.Delete(ctx, path); err != nil {
		return append(steps, r.failedStep(StepDestRemove, "REMOTE_URL", fmt.Errorf("remove %s: %w", where, err)))
	}
	removed = true
	return append(steps, TestStep{Name: StepDestRemove, Status: "ok", Detail: where})
}

var probeNameChars = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// ProbeName is the name of the pre-flight test's probe file written by
// node, with a random part rnd: backupsync-test-<node>-<rnd>.tmp.
func ProbeName(node, rnd string) string {
	return probePrefix + probeNameChars.ReplaceAllString(node, "_") + "-" + rnd + probeSuffix
}

// IsProbe reports whether a base name is a pre-flight test's probe file.
func IsProbe(name string) bool {
	return strings.HasPrefix(name, probePrefix) && strings.HasSuffix(name, probeSuffix)
}

func readBack(ctx context.Context, v *archive.Volume, path, want string) error {
	rc, err := v.Open(ctx, path, 0)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	defer rc.Close()
	got, err := io.ReadAll(io.LimitReader(rc, int64(len(want))+1))
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if string(got) != want {
		return fmt.Errorf("read back %d bytes that differ from the %d written", len(got), len(want))
	}
	return nil
}

func (r *Runner) listStep(ctx context.Context, name, url string, v *archive.Volume) TestStep {
	c := r.Conn
	l, err := v.ListNode(ctx, c.Database, r.Settings.Node.Index)
	if err != nil {
		return r.failedStep(name, url, err)
	}
	sets := 0
	node := "/node_" + strconv.Itoa(r.Settings.Node.Index)
	for _, d := range l.Dirs {
		if strings.HasSuffix(d, node) && strings.Count(d, "/") == 3 {
			sets++
		}
	}
	return TestStep{Name: name, Status: "ok", Detail: fmt.Sprintf("%s/id_*/level_*%s: %d backup set(s), %d file(s)", c.Database, node, sets, len(l.Files))}
}

// failedStep explains err of a step at the endpoint of url ("LOCAL_URL" or
// "REMOTE_URL") as a cycle's failure is explained (Explain).
func (r *Runner) failedStep(name, url string, err error) TestStep {
	d := Explain(r.Conn.Name, sync.Report{}, fmt.Errorf("%w: %w", ErrUnreachable, &EndpointError{URL: url, Err: err}))
	next := strings.ReplaceAll(d.Next, "the next cycle tries again", "then run the test again")
	next = strings.ReplaceAll(next, "see GETLOG for the details; ", "")
	if next == "then run the test again" {
		next = "fix what the cause names, then run the test again"
	}
	return TestStep{Name: name, Status: "failed", Cause: d.Cause, Next: next}
}

func skipped(name, after string) TestStep {
	return TestStep{Name: name, Status: "skipped", Detail: "needs the " + after}
}

// tunnelClient is the connection's SSH client, as Once makes it.
func (r *Runner) tunnelClient(order []string) (*tunnel.Client, error) {
	if r.Keys == nil {
		return nil, errors.New("SSH = client needs this node's key store")
	}
	cc := tunnel.ClientConfig{Connection: r.Conn.Name, Nodes: order, Keys: r.Keys, Logger: r.Logger,
		DialTimeout: r.ConnectTimeout, HandshakeTimeout: r.ConnectTimeout}
	if s := r.Settings.SSHClient; s != nil {
		cc.Port, cc.User = s.Port, s.User
	}
	return tunnel.NewClient(cc)
}

// tunnelNext is the next step after the tunnel failed with err.
func tunnelNext(conn string, err error) string {
	var hk *tunnel.HostKeyError
	if errors.As(err, &hk) {
		return "if the remote node's host key was changed on purpose, upload its new line (SSHKEY " + conn +
			" on the remote cluster, then UPLOAD_KEY here); otherwise treat it as an attack"
	}
	return "check that the remote cluster has " + conn + " with SSH = server and this node's client key (SSHKEY " + conn +
		" here, UPLOAD_KEY and SSHKEY " + conn + " there), that its backupsyncd runs, and that REMOTE_NODES and ssh_client.port name its SSH servers; then run the test again"
}
