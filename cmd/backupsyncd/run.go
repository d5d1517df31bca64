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

// runDaemon implements `backupsyncd run [--settings FILE]`, the default
// command: serve until SIGTERM or SIGINT; SIGHUP reloads the settings and
// the connections.
func runDaemon(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	settingsFile := fs.String("settings", DefaultSettings, "the daemon's settings `file`")
	logFormat := fs.String("log-format", "text", "log lines on stderr as `text` or json")
	grace := fs.Duration("stop-grace", 30*time.Second, "how long a stop lets files in flight finish before cutting them")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || (*logFormat != "text" && *logFormat != "json") {
		fmt.Fprintln(stderr, "usage: backupsyncd run [--settings FILE] [--log-format text|json] [--stop-grace 30s]")
		return exitUsage
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
