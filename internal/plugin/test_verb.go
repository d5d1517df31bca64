package plugin

import (
	"context"
	"time"

	"backupsync/internal/runner"
)

// TestTimeout bounds TEST on one node: both logins, the listings and the
// probe file (see runner.Runner.Test).
const TestTimeout = 25 * time.Second

// MaxConcurrentTests bounds the TESTs that run at once on a node; one
// more is refused at once.
const MaxConcurrentTests = 2

var testSlots = make(chan struct{}, MaxConcurrentTests)

// test runs TEST CONN: the pre-flight test of a connection on this node.
// It answers CodeOK when every step passed, CodeFailed otherwise, with one
// line per step (a failed one with its cause and next step) and no
// password. It changes no plugin state and needs no activation.
func (n *Node) test(ctx context.Context, name string) Result {
	c, err := n.connection(name)
	if err != nil {
		return failed("%v", err)
	}
	// Each test logs in to two archive volumes and may open a tunnel: a
	// script that loops or floods must not pile them up on a node.
	select {
	case testSlots <- struct{}{}:
		defer func() { <-testSlots }()
	default:
		return failed("%d tests already run on %s: try again when they are done", MaxConcurrentTests, n.Settings.Node.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, TestTimeout)
	defer cancel()
	r := &runner.Runner{Settings: n.Settings, Conn: c, Keys: n.Keys}
	rep := r.Test(ctx)
	if rep.OK() {
		return ok("%s", rep)
	}
	return failed("%s", rep)
}
