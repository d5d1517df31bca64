package daemon

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"backupsync/internal/config"
	"backupsync/internal/sync"
)

// notify tells systemd (Type=notify) a state; without NOTIFY_SOCKET it does
// nothing.
func (d *Daemon) notify(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		d.Logger.Warn("systemd notify failed", "error", err)
	}
}

// watchdog sends WATCHDOG=1 at half of WatchdogSec while the daemon is
// healthy: its control plane serves and its scheduler answers. A wedged
// daemon stops petting and systemd restarts it.
func (d *Daemon) watchdog(ctx context.Context) {
	interval, err := sd.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if d.healthy() {
				d.notify(sd.SdNotifyWatchdog)
			}
		}
	}
}

// healthy reports whether the control plane still serves and the
// scheduler's state can be read (its locks are not wedged).
func (d *Daemon) healthy() bool {
	if !d.serving.Load() {
		return false
	}
	d.sched.Status("")
	return true
}

// statusLine is systemd's STATUS=: the last cycle of each connection.
func (d *Daemon) statusLine() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.lastCycles) == 0 {
		return "STATUS=no cycle yet"
	}
	names := make([]string, 0, len(d.lastCycles))
	for n := range d.lastCycles {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ": " + d.lastCycles[n]
	}
	return "STATUS=" + strings.Join(parts, "; ")
}

func (d *Daemon) noteCycle(c config.Connection, r sync.Report, err error) {
	state := "ok"
	switch {
	case err != nil:
		state = "error: " + err.Error()
	case !r.OK():
		state = fmt.Sprintf("%d failed", len(r.Failed))
	}
	line := fmt.Sprintf("%s at %s, %d copied, lag %.0fs", state, r.Finished.Format("15:04"), r.Copied+r.Resumed+r.Replaced, r.LagSeconds)
	d.mu.Lock()
	if d.lastCycles == nil {
		d.lastCycles = map[string]string{}
	}
	d.lastCycles[c.Name] = line
	d.mu.Unlock()
	d.notify(d.statusLine())
}
