package main

import (
	"bytes"
	"strings"
	"testing"
)

// Every subcommand's --help (and -h, and help COMMAND) prints its help on
// stdout and exits 0; a bad flag is a usage error on stderr.
func TestSubcommandHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"run", "--help"}, []string{"usage: backupsyncd run [--settings FILE]", "SIGHUP reloads", "-stop-grace", "only\n    HTTPS"}},
		{[]string{"run", "-h"}, []string{"usage: backupsyncd run"}},
		{[]string{"help", "run"}, []string{"usage: backupsyncd run"}},
		{[]string{"--settings", "x.hcl", "--help"}, []string{"usage: backupsyncd run"}},
		{[]string{"check-config", "--help"}, []string{"usage: backupsyncd check-config", "FILE:LINE:COL", "-settings"}},
		{[]string{"help", "check-config"}, []string{"usage: backupsyncd check-config"}},
		{[]string{"sync-once", "--help"}, []string{"usage: backupsyncd sync-once", "4: a cycle of the connection is already running", "-dry-run"}},
		{[]string{"demo", "--help"}, []string{"usage: backupsyncd demo", "Ctrl-C stops it", "-once"}},
		{[]string{"--help"}, []string{"usage: backupsyncd COMMAND", "help COMMAND"}},
		{[]string{"help"}, []string{"usage: backupsyncd COMMAND"}},
	} {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != exitOK || errOut.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q", tc.args, code, errOut.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%q: help lacks %q:\n%s", tc.args, w, out.String())
			}
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--bogus"}, "backupsyncd: flag provided but not defined: -bogus\nusage: backupsyncd run"},
		{[]string{"run", "extra"}, "run takes no arguments"},
		{[]string{"run", "--log-format", "xml"}, "--log-format is text or json"},
		{[]string{"sync-once", "--settings", "x"}, "sync-once needs --settings FILE and --connection NAME"},
		{[]string{"demo", "--cycle"}, "flag needs an argument"},
		{[]string{"help", "frob"}, `no command "frob"`},
	} {
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != exitUsage || !strings.Contains(errOut.String(), tc.want) || out.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q, want %q", tc.args, code, out.String(), errOut.String(), tc.want)
		}
	}
}
