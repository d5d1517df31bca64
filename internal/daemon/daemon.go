// Package daemon assembles one node's backupsyncd from its settings: the
// plugin log, the SSH keys, the plugin verbs, the scheduler of the active
// connections, the control plane on HTTPS, and the SSH server while a
// server-role connection has authorized client keys. It reloads on request and stops
// gracefully.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"backupsync/internal/confd"
	"backupsync/internal/config"
	"backupsync/internal/control"
	"backupsync/internal/display"
	"backupsync/internal/health"
	"backupsync/internal/history"
	"backupsync/internal/logfile"
	"backupsync/internal/metrics"
	"backupsync/internal/plugin"
	"backupsync/internal/runner"
	"backupsync/internal/schedule"
	"backupsync/internal/sync"
	"backupsync/internal/tunnel"
	"backupsync/internal/version"
	"backupsync/internal/xmlrpc"
)

// DefaultControlPort is the HTTPS port of the control plane when the
// settings' xmlrpc.listen names none.
const DefaultControlPort = 4443

// Daemon is one node's running backupsyncd.
type Daemon struct {
	Settings *config.Settings
	Logger   *slog.Logger
	// Fingerprint is the control plane certificate's SHA-256.
	Fingerprint string
	// ControlAddr is where the control plane listens.
	ControlAddr string

	log    *logfile.File
	keys   *tunnel.KeyStore
	probes *runner.Probes
	plugin *plugin.Node
	sched  *schedule.Scheduler
	http   *http.Server
	ln     net.Listener

	metrics     *metrics.Metrics
	metricsHTTP *http.Server
	metricsLn   net.Listener
	// MetricsAddr is where /metrics is served, "" without a metrics block.
	MetricsAddr string

	serving atomic.Bool // the control plane serves

	// settings and users are what SIGHUP may change (ReloadSettings).
	settings atomic.Pointer[config.Settings]
	users    atomic.Pointer[control.Users]
	// login guards every handler that needs a login, with one throttle
	// of failed logins per source address for the daemon's life.
	login *control.Login

	health *health.Tracker
	// history is every connection's finished cycles for the status page.
	history *history.Store

	mu        gosync.Mutex
	conns     []config.Connection
	sshServer *tunnel.Server
	sshCancel context.CancelFunc
	sshDone   chan struct{}
}

// Options tune New.
type Options struct {
	// Stderr receives log lines besides the plugin log; nil: none.
	Stderr io.Writer
	// JSONLogs writes Stderr's lines as JSON.
	JSONLogs bool
}

// New prepares a daemon: it opens the log and the key store, loads the
// connections, and binds the control plane's listener.
func New(s *config.Settings, opt Options) (*Daemon, error) {
	d := &Daemon{Settings: s, probes: runner.NewProbes(s.StateDir)}
	d.settings.Store(s)
	var err error
	if d.log, err = logfile.Open(filepath.Join(s.StateDir, "log", "plugin.log"), 0); err != nil {
		return nil, err
	}
	if s.Cluster != nil {
		d.log.Mask(s.Cluster.Password)
	}
	d.Logger = slog.New(newHandler(d.log, opt.Stderr, opt.JSONLogs))
	if d.keys, err = tunnel.NewKeyStore(s.StateDir, s.Node.Name); err != nil {
		d.log.Close()
		return nil, err
	}
	var herr error
	if d.health, herr = health.Open(filepath.Join(s.StateDir, "health.json")); herr != nil {
		d.Logger.Warn("connection health not restored", "error", herr)
	}
	d.history = openHistory(s.StateDir, d.Logger.Warn)
	d.sched = schedule.New(d.runCycle, time.Local, d.Logger)
	d.sched.OnCycle = d.cycleDone
	d.plugin = &plugin.Node{Settings: s, Keys: d.keys, Log: d.log, Runtime: d, Changed: func() { d.Reload() }}
	d.metrics = metrics.New()
	d.metrics.WatchHealth(d.Health)
	if err := d.listen(); err != nil {
		d.log.Close()
		return nil, err
	}
	if m := s.Metrics; m != nil {
		ln, err := net.Listen("tcp", m.Listen)
		if err != nil {
			d.ln.Close()
			d.log.Close()
			return nil, fmt.Errorf("metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", d.metrics.Handler())
		d.metricsLn, d.MetricsAddr = ln, ln.Addr().String()
		d.metricsHTTP = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	return d, nil
}

func (d *Daemon) listen() error {
	s := d.Settings
	x := s.XMLRPC
	if x == nil {
		x = &config.XMLRPC{}
	}
	addr := x.Listen
	if addr == "" {
		addr = net.JoinHostPort(s.Node.IP, strconv.Itoa(DefaultControlPort))
	}
	host, _, _ := net.SplitHostPort(addr)
	cert, fp, err := control.Certificate(x.TLSCert, x.TLSKey, s.StateDir, []string{host, s.Node.IP})
	if err != nil {
		return err
	}
	d.Fingerprint = fp
	users := control.Users{}
	for _, u := range x.Users {
		users[u.Name] = u.PasswordHash
	}
	surface := &control.Surface{Self: s.Node.Name, Local: d.plugin, Version: version.Version, Logger: d.Logger}
	if c := s.Cluster; c != nil {
		surface.PeerUser, surface.PeerPassword = c.User, c.Password
		for _, n := range c.Nodes {
			surface.Nodes = append(surface.Nodes, control.Peer{Name: n.Name, URL: n.URL, Fingerprint: n.Fingerprint})
		}
	}
	if len(surface.Nodes) == 0 {
		surface.Nodes = []control.Peer{{Name: s.Node.Name}}
	}
	// One XML-RPC server answers both dialects: EXAoperation's plugin
	// surface and ConfD's jobs.
	srv := surface.Server()
	jobs := &confd.Service{Surface: surface, Logger: d.Logger, Users: func() []string {
		var names []string
		for name := range *d.users.Load() {
			names = append(names, name)
		}
		return names
	}}
	jobs.Register(srv)
	page := d.statusPage(srv, surface, jobs)
	srv.UnknownMethod = func(m string) *xmlrpc.Fault {
		return xmlrpc.ZopeFault("unknown method %q: the plugin surface has showPluginList, getNodeList, showPluginFunctions and callPlugin; "+
			"the ConfD dialect job_exec, job_list, job_help and job_desc", m)
	}
	mux := http.NewServeMux()
	d.users.Store(&users)
	d.login = control.NewLogin(d.Logger)
	// The users are looked up per request: SIGHUP may change them.
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.login.Require(*d.users.Load(), page.Wrap(srv)).ServeHTTP(w, r)
	})
	mux.Handle("/", api)                        // EXAoperation's /cluster1/, ConfD's / and /RPC2, anything else; GET: the status page
	mux.Handle("/master", jobs.MasterHandler()) // ConfD's: no login, as there
	d.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(d.Logger.Handler(), slog.LevelDebug)}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	d.ControlAddr = ln.Addr().String()
	d.ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	return nil
}

// Run serves until ctx ends, then stops gracefully: cycles drain (files in
// flight finish) for up to grace, then are cancelled.
func (d *Daemon) Run(ctx context.Context, grace time.Duration) error {
	d.Logger.Info("backupsyncd started", "node", d.Settings.Node.Name, "version", version.Version,
		"control", "https://"+d.ControlAddr+"/", "fingerprint", d.Fingerprint)
	if !d.Settings.HasUsers() {
		d.Logger.Error(config.NoUserProblem, "settings", d.Settings.File)
	}
	d.Reload()
	d.sched.Start()
	errc := make(chan error, 2)
	d.serving.Store(true)
	go func() {
		errc <- d.http.Serve(d.ln)
		d.serving.Store(false)
	}()
	if d.metricsHTTP != nil {
		go func() { errc <- d.metricsHTTP.Serve(d.metricsLn) }()
	}
	wdCtx, stopWatchdog := context.WithCancel(ctx)
	go d.watchdog(wdCtx)
	d.notify("READY=1")
	d.notify(d.statusLine())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("control plane: %w", err)
	}
	stopWatchdog()
	d.notify("STOPPING=1")
	d.Logger.Info("backupsyncd stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	d.http.Shutdown(stopCtx)
	if d.metricsHTTP != nil {
		d.metricsHTTP.Shutdown(stopCtx)
	}
	d.sched.Stop(stopCtx)
	d.stopSSH(stopCtx)
	d.Logger.Info("backupsyncd stopped")
	d.log.Close()
	return err
}

// Reload rereads the connections file (a broken one is reported and the
// previous configuration kept) and the activations, and makes the schedules
// and the SSH server follow them.
func (d *Daemon) Reload() {
	conns, err := config.ReadConnections(d.Settings.ConnectionsFile)
	d.mu.Lock()
	switch {
	case err == nil:
		d.conns = conns
		for _, c := range conns {
			d.log.Mask(c.LocalURL.Password, c.RemoteURL.Password)
		}
	case errors.Is(err, fs.ErrNotExist):
		d.conns = nil
	default:
		d.Logger.Error("connections file not loaded: the previous configuration stays in force", "error", err)
	}
	conns = d.conns
	d.mu.Unlock()
	active, err := d.plugin.ActiveConnections()
	if err != nil {
		d.Logger.Error("plugin state not loaded", "error", err)
	}
	var run []config.Connection
	serve := false
	for _, c := range conns {
		if !c.Role.Copies() {
			// SSH = server: the tunnel server runs while the connection
			// has authorized client keys (SSHKEY after UPLOAD_KEY, the
			// guide's step 9), activated or not: the guide never
			// activates the server.
			if keys, err := d.keys.AuthorizedKeys(c.Name); err != nil {
				d.Logger.Error("authorized keys not read", "connection", c.Name, "error", err)
			} else if len(keys) > 0 {
				serve = true
			}
			continue
		}
		if isActive(active, c.Name) {
			run = append(run, c)
		}
	}
	d.sched.Set(run)
	if serve {
		d.startSSH()
	} else {
		d.stopSSH(context.Background())
	}
}

func isActive(active []string, name string) bool {
	for _, a := range active {
		if strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}

// runCycle is the scheduler's CycleFunc.
func (d *Daemon) runCycle(ctx context.Context, drain <-chan struct{}, c config.Connection) (sync.Report, error) {
	progress := &sync.Progress{}
	r := &runner.Runner{Settings: d.current(), Conn: c, Keys: d.keys, Logger: d.Logger, Drain: drain, Probes: d.probes, Progress: progress}
	d.cycleStarted(c, progress)
	if c.Verbose {
		r.Event = func(e sync.Event) {
			if e.Err != nil {
				d.Logger.Error("file failed", "connection", c.Name, "op", e.Action.Op.String(), "path", e.Action.Path, "error", e.Err)
				return
			}
			d.Logger.Info("file done", "connection", c.Name, "op", e.Action.Op.String(), "path", e.Action.Path, "bytes", e.Bytes)
		}
	}
	rep, _, err := r.Once(ctx, false)
	return rep, err
}

func (d *Daemon) cycleDone(c config.Connection, rep sync.Report, err error) {
	if errors.Is(err, runner.ErrBusy) {
		// Another process (backupsyncd sync-once) runs this connection's
		// cycle on this node: skipped, not failed.
		d.Logger.Info("cycle skipped: "+err.Error()+"; the next one runs on schedule", "connection", c.Name)
		d.health.Skip(c.Name)
		return
	}
	d.metrics.Observe(c.Name, rep, c.Role == config.RoleClient, !errors.Is(err, runner.ErrUnreachable))
	d.recordHealth(c, rep, err)
	d.recordHistory(c, rep, err)
	d.notify(d.statusLine())
	switch {
	case err != nil:
		d.Logger.Error("cycle failed", "connection", c.Name, "error", err)
	case !rep.OK():
		d.Logger.Warn("cycle done with failures: "+rep.Summary(), "connection", c.Name)
		if !c.Verbose {
			for _, f := range rep.Failed {
				d.Logger.Error("file failed", "connection", c.Name, "op", f.Op, "path", f.Path, "error", f.Error)
			}
		}
	default:
		d.Logger.Info("cycle done: "+rep.Summary(), "connection", c.Name)
	}
}

// ConnectionStatus is the runtime part of STATUS CONN: its health first
// (see package health), then the schedule and the last cycle.
func (d *Daemon) ConnectionStatus(name string) []string {
	now := time.Now()
	h := d.connectionHealth(name, now)
	var lines []string
	if st := d.sched.Status(name); !st.Scheduled {
		lines = append(lines, "scheduled: no (not activated on this node)")
	}
	if !h.LastCycle.IsZero() {
		lines = append(lines, "last cycle: "+display.Time(h.LastCycle)+": "+h.LastSummary)
	}
	if !h.LastOK.IsZero() {
		lines = append(lines, "last good cycle: "+display.Time(h.LastOK))
	}
	return lines
}

// RunOnce runs one cycle of connection name now, in the caller's
// goroutine, reporting every finished file to event (which may be nil).
func (d *Daemon) RunOnce(ctx context.Context, name string, event func(sync.Event)) (sync.Report, error) {
	d.mu.Lock()
	conns := d.conns
	d.mu.Unlock()
	for _, c := range conns {
		if strings.EqualFold(c.Name, name) {
			progress := &sync.Progress{}
			r := &runner.Runner{Settings: d.current(), Conn: c, Keys: d.keys, Logger: d.Logger, Event: event, Probes: d.probes, Progress: progress}
			var rep sync.Report
			var err error
			// Never beside a scheduled cycle of the same connection.
			if !d.sched.Exclusive(c.Name, func() { d.cycleStarted(c, progress); rep, _, err = r.Once(ctx, false) }) {
				return rep, cycleRunningError(c.Name)
			}
			d.cycleDone(c, rep, err)
			return rep, err
		}
	}
	return sync.Report{}, fmt.Errorf("no connection %q configured on %s", name, d.Settings.Node.Name)
}

// ErrCycleRunning is RunOnce's error when a scheduled cycle of the
// connection is running (errors.Is).
var ErrCycleRunning = errors.New("a cycle of the connection is running")

type cycleRunningError string

func (e cycleRunningError) Error() string {
	return "a cycle of " + string(e) + " is running: try again when it is done"
}

func (e cycleRunningError) Is(target error) bool { return target == ErrCycleRunning }

// RunNow starts a cycle of connection name now; see schedule.RunNow.
func (d *Daemon) RunNow(name string) bool { return d.sched.RunNow(name) }

// ScheduleStatus reports the scheduler's view of connection name.
func (d *Daemon) ScheduleStatus(name string) schedule.Status { return d.sched.Status(name) }

// Plugin is the node's plugin verbs.
func (d *Daemon) Plugin() *plugin.Node { return d.plugin }
