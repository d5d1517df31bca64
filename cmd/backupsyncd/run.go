package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"backupsync/internal/config"
	"backupsync/internal/daemon"
)

// DefaultSettings is where a packaged daemon finds its settings.
const DefaultSettings = "/etc/backupsync/backupsyncd.hcl"

var runHelp = subcommand{
	usage: "backupsyncd run [--settings FILE] [--log-format text|json] [--stop-grace 30s]",
	about: `Runs this node's daemon (the default command) until SIGTERM or SIGINT:
  - serves the plugin verbs and ConfD's job_exec on HTTPS (the settings' xmlrpc block; only
    HTTPS, Basic auth of its users), and /metrics where the metrics block says;
  - runs every activated copying connection on its START_CYCLE (one cycle at a time per
    connection on this node), and the SSH tunnel server while an SSH = server connection has
    authorized client keys.
SIGHUP reloads the settings and the connections file; SIGTERM lets the files in flight finish
for --stop-grace, then stops. Without a configured certificate it makes a self-signed one on
first start and logs its SHA256 fingerprint (pin it with backupsyncctl --fingerprint).
Check the files first with: backupsyncd check-config --settings FILE`,
}

// runDaemon implements `backupsyncd run [--settings FILE]`, the default
// command: serve until SIGTERM or SIGINT; SIGHUP reloads the settings and
// the connections.
func runDaemon(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	settingsFile := fs.String("settings", DefaultSettings, "the daemon's settings `file`")
	logFormat := fs.String("log-format", "text", "log lines on stderr as `text` or json")
	grace := fs.Duration("stop-grace", 30*time.Second, "how long a stop lets files in flight finish before cutting them")
	if code, done := runHelp.parse(fs, args, stdout, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		return runHelp.usageError(stderr, "run takes no arguments, not %q", fs.Args())
	}
	if *logFormat != "text" && *logFormat != "json" {
		return runHelp.usageError(stderr, "--log-format is text or json, not %q", *logFormat)
	}
	settings, err := config.ReadSettings(*settingsFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	d, err := daemon.New(settings, daemon.Options{Stderr: stderr, JSONLogs: *logFormat == "json"})
	if err != nil {
		fmt.Fprintln(stderr, "backupsyncd:", err)
		return exitFailed
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			d.Logger.Info("SIGHUP: reloading the settings and the connections")
			d.ReloadSettings()
			d.Reload()
		}
	}()
	if err := d.Run(ctx, *grace); err != nil {
		fmt.Fprintln(stderr, "backupsyncd:", err)
		return exitFailed
	}
	return exitOK
}
