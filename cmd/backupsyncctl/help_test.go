package main

import (
	"strings"
	"testing"
)

// help COMMAND and COMMAND --help print the same help, exit 0, for every
// command; pair's says which file goes where and what is tested.
func TestHelpEveryCommand(t *testing.T) {
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			if commandHelp[c.name] == "" {
				t.Errorf("%s has no entry in commandHelp", c.name)
			}
			byHelp := runCtl(t, nil, "", "help", c.name)
			byFlag := runCtl(t, nil, "", c.name, "--help")
			byH := runCtl(t, nil, "", c.name, "-h")
			if byHelp.code != 0 || byFlag.code != 0 || byH.code != 0 || byHelp.stderr != "" || byFlag.stderr != "" {
				t.Fatalf("exit %d/%d/%d:\n%s\n%s", byHelp.code, byFlag.code, byH.code, byHelp, byFlag)
			}
			if byHelp.stdout != byFlag.stdout || byFlag.stdout != byH.stdout {
				t.Errorf("help %s and %s --help differ:\n%s\n---\n%s", c.name, c.name, byHelp.stdout, byFlag.stdout)
			}
			if !strings.HasPrefix(byHelp.stdout, "usage: backupsyncctl [flags] "+c.name) || !strings.Contains(strings.Join(strings.Fields(byHelp.stdout), " "), c.help) {
				t.Errorf("help %s:\n%s", c.name, byHelp.stdout)
			}
			for _, l := range strings.Split(byHelp.stdout, "\n")[1:] {
				if len([]rune(l)) > 100 {
					t.Errorf("help %s: a line wider than 100 columns: %q", c.name, l)
				}
			}
		})
	}
	pair := runCtl(t, nil, "", "help", "pair").stdout
	for _, want := range []string{
		"--source-config FILE  the client config (the connection with SSH = client",
		"uploaded to every\n                        node of the source cluster",
		"--dest-config FILE    the server config (the same connection name with SSH = server)",
		"uploaded to every node of the destination cluster",
		"What is tested at the end: the pre-flight TEST on every source node",
		"REMOTE_NODES entry",
	} {
		if !strings.Contains(pair, want) {
			t.Errorf("help pair lacks %q:\n%s", want, pair)
		}
	}
	// Flags after --help do not matter; an unknown command is a usage error.
	if r := runCtl(t, nil, "", "getlog", "--help", "--lines", "3"); r.code != 0 || !strings.Contains(r.stdout, "--lines N") {
		t.Errorf("getlog --help --lines 3: %s", r)
	}
	if r := runCtl(t, nil, "", "help", "frob"); r.code != 2 || !strings.Contains(r.stderr, `no command "frob"`) {
		t.Errorf("help frob: %s", r)
	}
	if r := runCtl(t, nil, "", "help"); r.code != 0 || !strings.Contains(r.stdout, "backupsyncctl help COMMAND") || wider(r.stdout, 100) {
		t.Errorf("help: %s", r)
	}
}

// wider reports whether a line of text is wider than width columns.
func wider(text string, width int) bool {
	for _, l := range strings.Split(text, "\n") {
		if len([]rune(l)) > width {
			return true
		}
	}
	return false
}
