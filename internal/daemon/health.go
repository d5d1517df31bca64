package daemon

import (
	"fmt"
	"sort"
	"time"

	"backupsync/internal/config"
	"backupsync/internal/display"
	"backupsync/internal/health"
	"backupsync/internal/runner"
	"backupsync/internal/sync"
)

// cycleStarted notes a cycle of c beginning now, counting its progress in p.
func (d *Daemon) cycleStarted(c config.Connection, p *sync.Progress) {
	d.health.Start(c.Name, time.Now(), p)
}

// recordHealth notes a finished cycle's outcome.
func (d *Daemon) recordHealth(c config.Connection, rep sync.Report, err error) {
	diag := runner.Explain(c.Name, rep, err)
	o := health.Outcome{
		Started: rep.Started, Finished: rep.Finished,
		Failed: err != nil || !rep.OK(),
		// A report without an error listed both sides; a cycle that could
		// not reach an endpoint, or whose listing failed, says why in Error.
		Listed:      rep.Error == "" && !rep.Started.IsZero(),
		BehindSince: rep.BehindSince,
		Summary:     rep.Summary(),
		Cause:       diag.Cause, Next: diag.Next,
	}
	if o.Started.IsZero() {
		o.Started = time.Now()
	}
	if o.Finished.IsZero() {
		o.Finished = time.Now()
	}
	if o.Failed && o.Cause == "" {
		o.Cause, o.Next = "the cycle failed", "see GETLOG"
	}
	if herr := d.health.Finish(c.Name, o); herr != nil {
		d.Logger.Warn("health not saved", "error", herr)
	}
}

// copying is the configured connections that copy from this node.
func (d *Daemon) copying() []config.Connection {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []config.Connection
	for _, c := range d.conns {
		if c.Role.Copies() {
			out = append(out, c)
		}
	}
	return out
}

// Health is the health of every copying connection configured on this
// node at now, by name, with its next scheduled run.
func (d *Daemon) Health(now time.Time) []health.Health {
	conns := d.copying()
	out := make([]health.Health, 0, len(conns))
	for _, c := range conns {
		out = append(out, d.connectionHealth(c.Name, now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Connection < out[j].Connection })
	return out
}

func (d *Daemon) connectionHealth(name string, now time.Time) health.Health {
	h := d.health.Get(name, now)
	if st := d.sched.Status(name); st.Scheduled {
		h.NextRun = st.Next
	}
	return h
}

// ConnectionHealth is c's health on this node in one line and whether it
// is failing (plugin.Runtime). A copying connection has the health of its
// cycles; a server one is healthy while its tunnel server listens.
func (d *Daemon) ConnectionHealth(c config.Connection) (string, bool) {
	if c.Role.Copies() {
		h := d.connectionHealth(c.Name, time.Now())
		return h.Line(), h.Failing
	}
	keys, err := d.keys.AuthorizedKeys(c.Name)
	if err != nil {
		return "failing: the authorized keys do not load: " + err.Error(), true
	}
	if len(keys) == 0 {
		return "waiting: no client key authorized yet; next: UPLOAD_KEY the client cluster's SSHKEY " + c.Name +
			" output here, then run SSHKEY " + c.Name + " here", false
	}
	sh, running := d.SSHHealth()
	switch {
	case !running:
		return "failing: the SSH tunnel server is not running; next: see GETLOG for why it stopped", true
	case !sh.Listening:
		cause := "its listener is closed"
		if sh.LastErr != nil {
			cause = "its listener failed at " + display.Time(sh.LastErrAt) + ": " + sh.LastErr.Error()
		}
		return fmt.Sprintf("failing: the SSH tunnel server does not accept connections (%s; %d restarts); next: the daemon reopens it, see GETLOG", cause, sh.Restarts), true
	}
	line := fmt.Sprintf("ok, accepting tunnels for %d client node(s): %d connected, %d forwards open", len(keys), sh.Conns, sh.Forwards)
	if sh.Restarts > 0 {
		line += fmt.Sprintf(", listener reopened %d time(s), last error %s: %v", sh.Restarts, display.Time(sh.LastErrAt), sh.LastErr)
	}
	return line, false
}
