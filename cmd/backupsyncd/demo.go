package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"backupsync/internal/demo"
)

// runDemo implements `backupsyncd demo [--once]`: two loopback clusters
// that sync, until Ctrl-C.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	once := fs.Bool("once", false, "stop after the first cycle")
	cycle := fs.String("cycle", "@every 1m", "the connection's START_CYCLE while the demo runs")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: backupsyncd demo [--once] [--cycle SCHEDULE]")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo.Run(ctx, demo.Options{Out: stdout, Once: *once, Cycle: *cycle}); err != nil {
		fmt.Fprintln(stderr, "backupsyncd demo:", err)
		return exitFailed
	}
	return exitOK
}
