package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	gosync "sync"
	"syscall"
	"time"

	"backupsync/internal/archive"
	"backupsync/internal/config"
	"backupsync/internal/display"
	"backupsync/internal/health"
	"backupsync/internal/runner"
	"backupsync/internal/sync"
	"backupsync/internal/tunnel"
)

// exitBusy is sync-once's exit status when a cycle of the connection is
// already running on this node (in the daemon or another sync-once).
const exitBusy = 4

var syncOnceHelp = subcommand{
	usage: "backupsyncd sync-once --settings FILE --connection NAME [--dry-run] [--json] [--verbose] [--wait]",
	about: `Runs one cycle of a connection now, in the foreground: progress on stderr, the report on
stdout. Never beside another cycle of the connection on this node: it refuses while one runs
(the daemon's or another sync-once's), or waits for it with --wait.
Exit 0: all done; 1: some files failed; 2: usage or configuration; 3: an endpoint was
unreachable; 4: a cycle of the connection is already running.`,
}

// syncOnce implements `backupsyncd sync-once --settings FILE --connection
// NAME [--dry-run] [--json] [--wait]`: one cycle now, in the foreground.
// It never runs beside another cycle of the connection on this node (the
// cycle lock, see runner.AcquireLock): it refuses, or waits with --wait.
// Exit 0: all done; 1: some files failed; 2: usage or configuration;
// 3: an endpoint was unreachable; 4: a cycle of the connection is running.
func syncOnce(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sync-once", flag.ContinueOnError)
	settingsFile := fs.String("settings", "", "the daemon's settings `file` (required)")
	name := fs.String("connection", "", "the connection to run (required)")
	dryRun := fs.Bool("dry-run", false, "print the plan and change nothing")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	verbose := fs.Bool("verbose", false, "print every file (as Verbose = true does)")
	wait := fs.Bool("wait", false, "wait for a running cycle of the connection (the daemon's or another sync-once's) to end, instead of refusing")
	if code, done := syncOnceHelp.parse(fs, args, stdout, stderr); done {
		return code
	}
	if *settingsFile == "" || *name == "" || fs.NArg() > 0 {
		return syncOnceHelp.usageError(stderr, "sync-once needs --settings FILE and --connection NAME, and no other argument")
	}
	settings, conn, err := loadConnection(*settingsFile, *name)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r := &runner.Runner{Settings: settings, Conn: conn, Logger: logger, Probes: runner.NewProbes(settings.StateDir),
		WaitForLock: *wait, Program: "backupsyncd sync-once"}
	if conn.Role == config.RoleClient {
		if r.Keys, err = tunnel.NewKeyStore(settings.StateDir, settings.Node.Name); err != nil {
			fmt.Fprintln(stderr, err)
			return exitUsage
		}
	}
	prog := &progress{w: stderr, verbose: *verbose || conn.Verbose, live: isTerminal(stderr), counts: &sync.Progress{}}
	r.Event, r.Progress = prog.event, prog.counts

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *wait && !*dryRun {
		// Only to say what it waits for: Once takes the lock itself.
		if l, err := runner.AcquireLock(ctx, settings.StateDir, conn.Name, r.Program, false); err == nil {
			l.Release()
		} else if errors.Is(err, runner.ErrBusy) {
			fmt.Fprintf(stderr, "%v: waiting for it to end (Ctrl-C stops waiting)\n", err)
		}
	}
	done := make(chan struct{})
	ticked := make(chan struct{})
	go func() { prog.tick(done); close(ticked) }()
	rep, plan, err := r.Once(ctx, *dryRun)
	close(done)
	<-ticked

	if *dryRun && err == nil {
		printPlan(stdout, plan)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else if err == nil {
		printReport(stdout, rep)
	}
	switch {
	case errors.Is(err, runner.ErrBusy):
		fmt.Fprintf(stderr, "backupsyncd: %v: try again when it is done, or wait for it with --wait\n", err)
		return exitBusy
	case errors.Is(err, runner.ErrUnreachable):
		fmt.Fprintln(stderr, "backupsyncd:", err)
		return exitNetwork
	case err != nil:
		fmt.Fprintln(stderr, "backupsyncd:", err)
		return exitFailed
	case !rep.OK():
		return exitFailed
	}
	return exitOK
}

// loadConnection reads the settings and finds connection name in the
// settings' connections file.
func loadConnection(settingsFile, name string) (*config.Settings, config.Connection, error) {
	settings, err := config.ReadSettings(settingsFile)
	if err != nil {
		return nil, config.Connection{}, err
	}
	conns, err := config.ReadConnections(settings.ConnectionsFile)
	if err != nil {
		return nil, config.Connection{}, err
	}
	var names []string
	for _, c := range conns {
		if strings.EqualFold(c.Name, name) {
			return settings, c, nil
		}
		names = append(names, c.Name)
	}
	return nil, config.Connection{}, fmt.Errorf("%s: no connection %q (it has: %s)", settings.ConnectionsFile, name, strings.Join(names, ", "))
}

// progress shows what a running cycle does while the bytes move: files and
// bytes done of the total, rate and ETA (sync.Progress), on one line that
// is rewritten on a terminal and as a plain line every 10 s otherwise (a
// log or a pipe); every file too when verbose, and every failure.
type progress struct {
	w       io.Writer
	verbose bool
	live    bool // w is a terminal: rewrite one line in place
	counts  *sync.Progress

	mu    gosync.Mutex
	shown bool // a live line is on the screen, to be cleared before other output
}

func (p *progress) event(e sync.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Err == nil && !p.verbose {
		return
	}
	p.clearLine()
	if e.Err != nil {
		fmt.Fprintf(p.w, "FAILED %s %s: %s\n", e.Action.Op, archive.DisplayName(e.Action.Path), archive.DisplayName(e.Err.Error()))
		return
	}
	fmt.Fprintf(p.w, "%s %s (%s)\n", e.Action.Op, archive.DisplayName(e.Action.Path), display.Bytes(e.Bytes))
}

// clearLine removes the live line; mu is held.
func (p *progress) clearLine() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

// progressEvery is how often the progress is printed when stderr is not a
// terminal.
var progressEvery = 10 * time.Second

// tick shows the progress until done.
func (p *progress) tick(done <-chan struct{}) {
	every := progressEvery
	if p.live {
		every = 250 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			p.mu.Lock()
			p.clearLine()
			p.mu.Unlock()
			return
		case <-t.C:
			s := p.counts.Snapshot(time.Now())
			if s.Started.IsZero() {
				continue // still listing: nothing planned yet
			}
			p.mu.Lock()
			if p.live {
				fmt.Fprint(p.w, "\r\033[K"+health.ProgressText(s))
				p.shown = true
			} else {
				fmt.Fprintln(p.w, "... "+health.ProgressText(s))
			}
			p.mu.Unlock()
		}
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func printPlan(w io.Writer, plan sync.Plan) {
	for _, a := range plan.Actions {
		line := fmt.Sprintf("%-11s %s", a.Op, archive.DisplayName(a.Path))
		switch a.Op {
		case sync.OpCopy, sync.OpReplace:
			line += fmt.Sprintf(" (%d bytes)", a.Size)
		case sync.OpResume:
			line += fmt.Sprintf(" (from %d of %d bytes)", a.From, a.Size)
		case sync.OpDefer:
			line += ": " + a.Reason
		}
		fmt.Fprintln(w, line)
	}
	files, bytes := 0, int64(0)
	for _, a := range plan.Actions {
		switch a.Op {
		case sync.OpCopy, sync.OpReplace, sync.OpResume:
			files++
			bytes += a.Size - a.From
		}
	}
	fmt.Fprintf(w, "would copy %d file(s), %s; %d file(s) up to date\n", files, display.Bytes(bytes), plan.UpToDate)
}

func printReport(w io.Writer, r sync.Report) {
	fmt.Fprintln(w, r.Summary())
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	for _, f := range r.Failed {
		fmt.Fprintf(w, "failed: %s %s: %s\n", f.Op, f.Path, f.Error)
	}
	for _, f := range r.DeferredFiles {
		fmt.Fprintf(w, "deferred: %s: %s\n", archive.DisplayName(f.Path), f.Error)
	}
}
