// Command backupsyncctl is the admin tool of backupsync: it drives the
// plugin verbs of a cluster's daemons over XML-RPC, as admins' scripts drive
// the original BackupSync plugin through EXAoperation.
package main

import (
	"fmt"
	"io"
	"os"

	"backupsync/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "version") {
		fmt.Fprintln(stdout, version.String("backupsyncctl"))
		return 0
	}
	fmt.Fprintln(stderr, "usage: backupsyncctl --version\n(the plugin commands arrive with the control plane)")
	return 2
}
