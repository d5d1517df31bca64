package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"backupsync/internal/confd"
	"backupsync/internal/config"
	"backupsync/internal/control"
	"backupsync/internal/history"
	"backupsync/internal/statuspage"
	"backupsync/internal/sync"
	"backupsync/internal/version"
	"backupsync/internal/xmlrpc"
)

// statusPage makes the control plane's status page (GET /) for the
// cluster of surface and registers on srv the method through which the
// page of another node asks this one for its part. Serve it behind the
// login with Page.Wrap.
func (d *Daemon) statusPage(srv *xmlrpc.Server, surface *control.Surface, jobs *confd.Service) *statuspage.Page {
	statuspage.Register(srv, d.statusPageData)
	return &statuspage.Page{Surface: surface, Local: d.statusPageData, Backups: jobs.BackupSets, Logger: d.Logger}
}

// statusPageData is this node's part of the status page: its connections'
// health, the tunnels it serves and a week of cycle history.
func (d *Daemon) statusPageData(ctx context.Context) statuspage.NodeData {
	now := time.Now()
	nd := statuspage.NodeData{Node: d.Settings.Node.Name, Version: version.Version, Time: now}
	if r, err := d.plugin.Call(ctx, "STATUS", ""); err == nil && r.Code == 0 {
		nd.Plugin = r.Output
	}
	if _, err := config.ReadConnections(d.Settings.ConnectionsFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		nd.Problem = fmt.Sprintf("the connections file does not load, the previous configuration stays in force: %v", err)
	}
	d.mu.Lock()
	conns := d.conns
	d.mu.Unlock()
	for _, c := range conns {
		if !c.Role.Copies() {
			line, failing := d.ConnectionHealth(c)
			nd.Served = append(nd.Served, statuspage.Served{Connection: c.Name, Line: line, Failing: failing})
			continue
		}
		nd.Connections = append(nd.Connections, statuspage.Connection{
			Health: d.connectionHealth(c.Name, now), Database: c.Database, Activated: d.sched.Status(c.Name).Scheduled,
		})
	}
	if d.history != nil {
		nd.History = d.history.Since(now.Add(-history.Keep))
	}
	return nd
}

// recordHistory appends a finished cycle of c to the history the status
// page charts: when it ended, the lag after it, the bytes it copied, how
// long it ran and whether it succeeded.
func (d *Daemon) recordHistory(c config.Connection, rep sync.Report, err error) {
	if d.history == nil {
		return
	}
	now := time.Now()
	p := history.Point{Finished: rep.Finished, Bytes: rep.Bytes, OK: err == nil && rep.OK(), LagSeconds: -1}
	if p.Finished.IsZero() {
		p.Finished = now
	}
	if !rep.Started.IsZero() && p.Finished.After(rep.Started) {
		p.Seconds = p.Finished.Sub(rep.Started).Seconds()
	}
	if h := d.health.Get(c.Name, p.Finished); h.LagKnown {
		p.LagSeconds = h.Lag.Seconds()
	}
	if herr := d.history.Append(c.Name, p); herr != nil {
		d.Logger.Warn("cycle history not saved", "connection", c.Name, "error", herr)
	}
}

// openHistory opens the cycle history under state_dir; a broken one is
// reported and started afresh.
func openHistory(stateDir string, warn func(msg string, args ...any)) *history.Store {
	h, err := history.Open(filepath.Join(stateDir, "history.json"))
	if err != nil {
		warn("cycle history not restored", "error", err)
	}
	return h
}
