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
	"backupsync/internal/runner"
	"backupsync/internal/sync"
	"backupsync/internal/tunnel"
)

// exitBusy is sync-once's exit status when a cycle of the connection is
// already running on this node (in the daemon or another sync-once).
const exitBusy = 4

// syncOnce implements `backupsyncd sync-once --settings FILE --connection
// NAME [--dry-run] [--json] [--wait]`: one cycle now, in the foreground.
// It never runs beside another cycle of the connection on this node (the
// cycle lock, see runner.AcquireLock): it refuses, or waits with --wait.
// Exit 0: all done; 1: some files failed; 2: usage or configuration;
// 3: an endpoint was unreachable; 4: a cycle of the connection is running.
func syncOnce(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sync-once", flag.ContinueOnError)
	fs.SetOutput(stderr)
	settingsFile := fs.String("settings", "", "the daemon's settings `file` (required)")
	name := fs.String("connection", "", "the connection to run (required)")
	dryRun := fs.Bool("dry-run", false, "print the plan and change nothing")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	verbose := fs.Bool("verbose", false, "print every file (as Verbose = true does)")
	wait := fs.Bool("wait", false, "wait for a running cycle of the connection (the daemon's or another sync-once's) to end, instead of refusing")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: backupsyncd sync-once --settings FILE --connection NAME [--dry-run] [--json] [--verbose] [--wait]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *settingsFile == "" || *name == "" || fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
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
	prog := &progress{w: stderr, verbose: *verbose || conn.Verbose, start: time.Now()}
	r.Event = prog.event

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
	go prog.tick(done)
	rep, plan, err := r.Once(ctx, *dryRun)
	close(done)

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

// progress prints what a running cycle does: every file when verbose,
// otherwise a status line every few seconds.
type progress struct {
	w       io.Writer
	verbose bool
	start   time.Time

	mu           gosync.Mutex
	files, fails int
	bytes        int64
}

func (p *progress) event(e sync.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Err != nil {
		p.fails++
		fmt.Fprintf(p.w, "FAILED %s %s: %s\n", e.Action.Op, archive.DisplayName(e.Action.Path), archive.DisplayName(e.Err.Error()))
		return
	}
	p.files++
	p.bytes += e.Bytes
	if p.verbose {
		fmt.Fprintf(p.w, "%s %s (%d bytes)\n", e.Action.Op, archive.DisplayName(e.Action.Path), e.Bytes)
	}
}

func (p *progress) tick(done <-chan struct{}) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			p.mu.Lock()
			secs := time.Since(p.start).Seconds()
			fmt.Fprintf(p.w, "... %d files, %.1f MiB, %.1f MiB/s, %d failed\n", p.files, float64(p.bytes)/(1<<20), float64(p.bytes)/(1<<20)/secs, p.fails)
			p.mu.Unlock()
		}
	}
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
	fmt.Fprintf(w, "%d file(s) up to date\n", plan.UpToDate)
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
