package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"backupsync/internal/config"
)

var checkConfigHelp = subcommand{
	usage: "backupsyncd check-config [--settings FILE] [CONFIG_FILE...]",
	about: `Checks the settings and connection files without starting anything. It prints every problem
as FILE:LINE:COL: message and exits 1, or prints each connection (role, database, schedule,
next run, the archive URLs with the password masked, which remote node each database node's
part goes to, where the connection came from) and exits 0; 2 for a usage error.
Without CONFIG_FILE it checks the settings' connections_file; a CONFIG_FILE is checked as
UPLOAD_CONFIG reads it. With --settings, the cluster block names the nodes.`,
}

// checkConfig implements `backupsyncd check-config [--settings FILE]
// [CONFIG_FILE...]`: it reads every file, prints every problem, and on
// success one line per connection, with where it came from (ORIGIN: the
// upload that wrote it, or the file and line of a block written by hand).
// Without CONFIG_FILE it checks the settings' connections_file; a
// CONFIG_FILE is checked as UPLOAD_CONFIG reads it, so it may also remove
// connections (Name { REMOVE = true }), listed with the role "remove".
func checkConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	settingsFile := fs.String("settings", "", "the daemon's settings `file` (backupsyncd.hcl)")
	if code, done := checkConfigHelp.parse(fs, args, stdout, stderr); done {
		return code
	}
	files := fs.Args()
	uploads := len(files) > 0 // files named on the command line are what UPLOAD_CONFIG is sent
	defaultPort := config.DefaultFTPPort
	var nodeNames []string // the cluster's nodes in order, where the settings name them
	failed := false
	if *settingsFile != "" {
		s, err := config.ReadSettings(*settingsFile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			failed = true
		} else {
			if !s.HasUsers() {
				fmt.Fprintf(stderr, "%s: warning: %s\n", s.File, config.NoUserProblem)
			}
			defaultPort = s.FTPDefaultPort
			if s.Cluster != nil {
				for _, n := range s.Cluster.Nodes {
					nodeNames = append(nodeNames, n.Name)
				}
			}
			if len(files) == 0 {
				files = []string{s.ConnectionsFile}
			}
		}
	}
	if len(files) == 0 && !failed {
		return checkConfigHelp.usageError(stderr, "check-config needs --settings FILE or a CONFIG_FILE")
	}

	var table checkTable
	now := time.Now()
	for _, f := range files {
		conns, removes, err := readForCheck(f, uploads)
		if err != nil {
			fmt.Fprintln(stderr, err)
			failed = true
			continue
		}
		for _, c := range conns {
			table.addConnection(c, f, defaultPort, nodeNames, now)
		}
		for _, name := range removes {
			table.addRemoval(name, f)
		}
	}
	if failed {
		return exitFailed
	}
	table.write(stdout)
	return exitOK
}

// readForCheck reads a connections file; an upload may also remove
// connections (their names are returned apart). On an error it reports the
// file's problems as the daemon would find them.
func readForCheck(file string, upload bool) ([]config.Connection, []string, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("read connections: %w", err)
	}
	conns, err := config.ParseConnections(file, src)
	if err == nil || !upload {
		return conns, nil, err
	}
	up, uerr := config.ParseUpload(file, src)
	if uerr != nil {
		return nil, nil, err
	}
	return up.Connections, up.Remove, nil
}

// urlWithPort shows the URL masked, with the port that applies made explicit.
func urlWithPort(u config.ArchiveURL, defaultPort int) string {
	if u.Scheme == "" {
		return ""
	}
	if u.Port == 0 {
		u.Port = defaultPort
	}
	return u.Masked()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
