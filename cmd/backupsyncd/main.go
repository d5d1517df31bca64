// Command backupsyncd is the backupsync daemon of one Exasol node: it runs
// the node's connections on their cron cycles, copying the backups of its
// archive volume to the remote cluster's, and answers the plugin verbs.
//
// Usage:
//
//	backupsyncd [run] [--settings FILE] [--log-format text|json]
//	backupsyncd demo [--once]
//	backupsyncd check-config [--settings FILE] [CONFIG_FILE...]
//	backupsyncd sync-once --settings FILE --connection NAME [--dry-run] [--json]
//	backupsyncd --version
package main

import (
	"fmt"
	"io"
	"os"

	"backupsync/internal/version"
)

// Exit statuses shared by the subcommands.
const (
	exitOK      = 0
	exitFailed  = 1 // the work failed (bad config, failed files)
	exitUsage   = 2 // the command line or the settings are wrong
	exitNetwork = 3 // an endpoint was unreachable
)

type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "run the daemon (the default command)", runDaemon},
		{"demo", "two loopback clusters that sync, paired through the plugin verbs", runDemo},
		{"check-config", "check connection files and settings, print each connection", checkConfig},
		{"sync-once", "run one cycle of a connection now, in the foreground", syncOnce},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (len(args[0]) > 1 && args[0][0] == '-' && args[0] != "--version" && args[0] != "-version" && args[0] != "-h" && args[0] != "--help") {
		return runDaemon(args, stdout, stderr) // run is the default command
	}
	switch args[0] {
	case "--version", "-version", "version":
		fmt.Fprintln(stdout, version.String("backupsyncd"))
		return exitOK
	case "-h", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			for _, c := range commands() {
				if c.name == args[1] {
					return c.run([]string{"--help"}, stdout, stderr)
				}
			}
			fmt.Fprintf(stderr, "backupsyncd: no command %q\n", args[1])
			usage(stderr)
			return exitUsage
		}
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "backupsyncd: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: backupsyncd COMMAND [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "  --version      print the version")
	fmt.Fprintln(w, "\nbackupsyncd COMMAND --help (or backupsyncd help COMMAND) prints a command's help.")
}
