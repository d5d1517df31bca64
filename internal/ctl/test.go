package ctl

import (
	"context"
	"strings"
	"time"
)

// TestCallTimeout bounds one TEST call: a daemon spends up to 25 s on the
// test (plugin.TestTimeout) and the one the URL names waits 30 s for a node
// it forwards to (plugin.CallTimeout).
const TestCallTimeout = 45 * time.Second

// Test runs the pre-flight test of connection conn (the plugin verb TEST)
// on every node concurrently and returns the rows in the order of nodes:
// a row is OK when every step passed on that node, and its output lists
// the steps (see runner.TestReport). Each call may take up to
// TestCallTimeout, or Options.Timeout when that is longer.
func (c *Cluster) Test(ctx context.Context, nodes []string, conn string) []Row {
	slow := c
	if c.opts.Timeout < TestCallTimeout {
		opts := c.opts
		opts.Timeout = TestCallTimeout
		if api, err := c.API(ctx); err == nil {
			opts.API = api // through ConfD: the job backupsync_test
		}
		if opts.API == APIPlugin {
			if name, err := c.Plugin(ctx); err == nil {
				opts.Plugin = name
			}
		}
		if s, err := Dial(opts); err == nil {
			defer s.Close()
			slow = s
		}
	}
	return slow.Each(ctx, nodes, "TEST", conn)
}

// stepText is where the text of a step line of TEST's answer starts.
const stepText = 28

// TestFailures lists, for each failed row, the node and what failed: the
// failed steps with their causes and next steps, or the call's error.
func TestFailures(rows []Row) []string {
	var out []string
	for _, r := range rows {
		if r.OK() {
			continue
		}
		if r.Err != nil {
			out = append(out, r.Node+": "+Explain(r.Err))
			continue
		}
		var failed []string
		for _, l := range strings.Split(r.Output, "\n") {
			// The step lines of runner.TestReport: "%-8s %-18s %s".
			if len(l) <= stepText {
				continue
			}
			status, name, text := strings.TrimSpace(l[:8]), strings.TrimSpace(l[9:stepText-1]), l[stepText:]
			switch {
			case status == "failed":
				failed = append(failed, name+" failed: "+text)
			case status == "" && name == "" && strings.HasPrefix(text, "next: ") && len(failed) > 0:
				failed = append(failed, "  "+text)
			}
		}
		if len(failed) == 0 {
			failed = []string{firstLine(r.Output)}
		}
		out = append(out, r.Node+": "+strings.Join(failed, "\n  "))
	}
	return out
}
