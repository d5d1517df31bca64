package sync

import (
	"errors"
	"strings"
	"testing"
)

// What a report shows is printable: a failed file's path and error (a
// hostile server's reply may hold escape codes) and the cycle's error are
// escaped; the Summary stays one line.
func TestReportShowsNamesEscaped(t *testing.T) {
	var e executor
	e.record(Action{Op: OpCopy, Path: d0 + "evil\x01\x1b[31m\x7f"}, 0, errors.New("550 \x1b[2Jgone"))
	f := e.res.Failed[0]
	if f.Path != d0+`evil\x01\x1b[31m\x7f` || f.Error != `550 \x1b[2Jgone` {
		t.Errorf("failure %+v", f)
	}
	r := Report{Connection: "C1", Error: "source: 421 \x1b]0;owned\x07\ndestination: down"}
	s := r.Summary()
	if strings.ContainsAny(s, "\x1b\x07\n") || !strings.HasSuffix(s, `: source: 421 \x1b]0;owned\x07; destination: down`) {
		t.Errorf("summary %q", s)
	}
}
