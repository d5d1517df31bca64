package ctl

import (
	"bytes"
	"errors"
	"testing"
)

// GETLOG's lines are printed under a header per node, unindented, not
// squeezed into the NODE/CODE/OUTPUT table.
func TestWriteLogs(t *testing.T) {
	for _, tc := range []struct {
		name string
		rows []Row
		want string
	}{
		{"two nodes", []Row{
			{Node: "n0011", Output: "health: Connection1: ok\n2026-12-06T01:20:03Z cycle done\n"},
			{Node: "n0012", Output: "health: Connection1: never ran"},
		}, "== n0011 ==\nhealth: Connection1: ok\n2026-12-06T01:20:03Z cycle done\n\n== n0012 ==\nhealth: Connection1: never ran\n"},
		{"failures", []Row{
			{Node: "n0011", Code: 256, Output: "plugin not installed"},
			{Node: "n0012", Err: errors.New("boom")},
			{Node: "n0013"},
		}, "== n0011 == (code 256)\nplugin not installed\n\n== n0012 ==\nerror: boom\n\n== n0013 ==\n"},
		{"control characters", []Row{{Node: "n0011", Output: "a\x1b[2Jb\r\nc\n"}}, "== n0011 ==\na\uFFFD[2Jb\nc\n"},
	} {
		var b bytes.Buffer
		if err := WriteLogs(&b, tc.rows); err != nil || b.String() != tc.want {
			t.Errorf("%s:\n%q\nwant\n%q", tc.name, b.String(), tc.want)
		}
	}
}
