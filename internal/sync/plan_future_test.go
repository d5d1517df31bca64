package sync

import (
	"strings"
	"testing"
	"time"
)

// A modification time ahead of the clock (a few seconds, or centuries,
// where a negative age saturates to -2562047h) is deferred with a reason
// that says "in the future", not a negative age.
func TestPlanDefersAFutureModificationTime(t *testing.T) {
	for _, at := range []time.Time{now.Add(3 * time.Second), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)} {
		f := File{Path: d0 + "a", Size: 5, ModTime: at, Exact: true}
		p := MakePlan(PlanInput{Database: "DB", Source: Listing{[]File{f}}, Now: now, SettleTime: time.Minute, IsTemp: isTemp})
		if len(p.Actions) != 1 || p.Actions[0].Op != OpDefer {
			t.Fatalf("%v: actions %+v, want one deferral", at, p.Actions)
		}
		reason := p.Actions[0].Reason
		if !strings.Contains(reason, "modified in the future ("+at.Format(time.RFC3339)+", after this node's "+now.Format(time.RFC3339)+")") ||
			strings.Contains(reason, "ago") || strings.Contains(reason, "2562047") {
			t.Errorf("%v: reason %q", at, reason)
		}
	}
}
