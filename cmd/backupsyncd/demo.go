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

var demoHelp = subcommand{
	usage: "backupsyncd demo [--once] [--cycle SCHEDULE]",
	about: `Runs two small clusters on loopback addresses (127.0.41.x and 127.0.42.x), each node with
its daemon and an embedded FTP archive volume holding generated backup sets, pairs them with
backupsyncctl pair, runs a first cycle with progress and an md5 check, then keeps syncing on
--cycle, printing each cycle's result per node as it ends, and the backupsyncctl commands to
try against it. Ctrl-C stops it and removes its files.`,
}

// runDemo implements `backupsyncd demo [--once]`: two loopback clusters
// that sync, until Ctrl-C.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	once := fs.Bool("once", false, "stop after the first cycle")
	cycle := fs.String("cycle", "@every 1m", "the connection's START_CYCLE while the demo runs")
	if code, done := demoHelp.parse(fs, args, stdout, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		return demoHelp.usageError(stderr, "demo takes no arguments, not %q", fs.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo.Run(ctx, demo.Options{Out: stdout, Once: *once, Cycle: *cycle}); err != nil {
		fmt.Fprintln(stderr, "backupsyncd demo:", err)
		return exitFailed
	}
	return exitOK
}
