package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"backupsync/internal/config"
)

// checkConfig implements `backupsyncd check-config [--settings FILE]
// [CONFIG_FILE...]`: it reads every file, prints every problem, and on
// success one line per connection. Without CONFIG_FILE it checks the
// settings' connections_file.
func checkConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	settingsFile := fs.String("settings", "", "the daemon's settings `file` (backupsyncd.hcl)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: backupsyncd check-config [--settings FILE] [CONFIG_FILE...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	files := fs.Args()
	defaultPort := config.DefaultFTPPort
	failed := false
	if *settingsFile != "" {
		s, err := config.ReadSettings(*settingsFile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			failed = true
		} else {
			defaultPort = s.FTPDefaultPort
			if len(files) == 0 {
				files = []string{s.ConnectionsFile}
			}
		}
	}
	if len(files) == 0 && !failed {
		fs.Usage()
		return exitUsage
	}

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tCONNECTION\tROLE\tDATABASE\tSCHEDULE\tNEXT RUN\tLOCAL URL\tREMOTE URL\tREMOTE NODES")
	now := time.Now()
	for _, f := range files {
		conns, err := config.ReadConnections(f)
		if err != nil {
			fmt.Fprintln(stderr, err)
			failed = true
			continue
		}
		for _, c := range conns {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f, c.Name, c.Role,
				dash(c.Database), dash(c.Schedule), dash(nextRun(c, now)),
				dash(urlWithPort(c.LocalURL, defaultPort)), dash(urlWithPort(c.RemoteURL, defaultPort)),
				dash(strings.Join(c.RemoteNodes, ";")))
		}
	}
	if failed {
		return exitFailed
	}
	tw.Flush()
	return exitOK
}

func nextRun(c config.Connection, now time.Time) string {
	if next := c.Next(now); !next.IsZero() {
		return next.Format("2006-01-02 15:04 MST")
	}
	return ""
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
