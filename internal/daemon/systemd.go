package daemon

import (
	"context"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
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

// statusLine is systemd's STATUS=: each copying connection's health.
func (d *Daemon) statusLine() string {
	hs := d.Health(time.Now())
	if len(hs) == 0 {
		return "STATUS=no copying connection configured"
	}
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = h.Connection + ": " + h.Line()
	}
	return "STATUS=" + strings.Join(parts, "; ")
}
