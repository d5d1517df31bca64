package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// subcommand describes a subcommand for its --help: its usage line and what
// it does, in a few lines.
type subcommand struct {
	usage string // "backupsyncd run [--settings FILE] …"
	about string
}

// parse parses a subcommand's flags. -h or --help prints the subcommand's
// help on stdout: done, exit 0. A bad flag prints the reason and the usage
// line on stderr: done, exit 2. Otherwise it returns done = false.
func (sc subcommand) parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, done bool) {
	fs.SetOutput(io.Discard) // the reasons are printed below, once
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		sc.help(stdout, fs)
		return exitOK, true
	case err != nil:
		fmt.Fprintf(stderr, "backupsyncd: %v\nusage: %s   (--help for more)\n", err, sc.usage)
		return exitUsage, true
	}
	return exitOK, false
}

// usageError reports a wrong command line after the flags parsed.
func (sc subcommand) usageError(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "backupsyncd: "+format+"\nusage: %s   (--help for more)\n", append(args, sc.usage)...)
	return exitUsage
}

// help prints the usage line, what the subcommand does and its flags.
func (sc subcommand) help(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", sc.usage, strings.TrimSpace(sc.about))
	var flags strings.Builder
	fs.SetOutput(&flags)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	if flags.Len() > 0 {
		fmt.Fprintf(w, "\nflags:\n%s", flags.String())
	}
}
