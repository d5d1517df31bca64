package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"backupsync/internal/display"
)

// One cycle of a connection at a time on a node, whoever runs it: the
// daemon's schedule and `backupsyncd sync-once`, a separate process, both
// go through Runner.Once, which holds the connection's lock file under
// state_dir (LockPath) for the whole cycle. The lock is a flock(2) lock: the
// kernel releases it when the process dies, so a crash never leaves a stale
// lock behind. The file's content (who holds it, since when) is only for
// the message of the one that finds it held.

// ErrBusy marks a cycle that did not run because another cycle of the same
// connection holds its lock on this node. The error is a *BusyError.
var ErrBusy = errors.New("a cycle of this connection is already running on this node")

// BusyError is ErrBusy with what the lock file says of its holder.
type BusyError struct {
	Connection string
	PID        int       // 0: unknown
	Program    string    // e.g. "backupsyncd"; "": unknown
	Since      time.Time // zero: unknown
}

func (e *BusyError) Error() string {
	msg := "a cycle of " + e.Connection + " is running"
	switch {
	case e.Program != "" && e.PID != 0:
		msg += fmt.Sprintf(" in %s (pid %d)", e.Program, e.PID)
	case e.PID != 0:
		msg += fmt.Sprintf(" in pid %d", e.PID)
	default:
		msg += " in another process"
	}
	if !e.Since.IsZero() {
		msg += " since " + display.Time(e.Since)
	}
	return msg
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// LockPath is the cycle lock file of connection name under stateDir.
// Names compare case-insensitively, as everywhere else.
func LockPath(stateDir, name string) string {
	return filepath.Join(stateDir, "locks", strings.ToLower(name)+".lock")
}

// holder is the lock file's content.
type holder struct {
	PID     int       `json:"pid"`
	Program string    `json:"program"`
	Since   time.Time `json:"since"`
}

// Lock is a held cycle lock.
type Lock struct {
	f *os.File
}

// lockPoll is how often a waiting AcquireLock tries again.
const lockPoll = 250 * time.Millisecond

// AcquireLock takes the cycle lock of connection name on this node (see
// LockPath), recording program and this process's pid in it. While
// another process, or another Lock in this one, holds it, it returns a
// *BusyError at once, or, with wait, tries again until the lock is free or
// ctx ends (then ctx's error, wrapped with who held it).
func AcquireLock(ctx context.Context, stateDir, name, program string, wait bool) (*Lock, error) {
	path := LockPath(stateDir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("cycle lock: %w", err)
	}
	var t *time.Ticker
	for {
		f, err := openLockFile(path)
		if err != nil {
			return nil, fmt.Errorf("cycle lock: %w", err)
		}
		held, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("cycle lock %s: %w", path, err)
		}
		if held {
			h := holder{PID: os.Getpid(), Program: program, Since: time.Now()}
			data, _ := json.Marshal(h)
			if err := f.Truncate(0); err == nil {
				_, _ = f.WriteAt(append(data, '\n'), 0) // only informs the next one's message
			}
			return &Lock{f: f}, nil
		}
		busy := readHolder(f, name)
		f.Close()
		if !wait {
			return nil, busy
		}
		if t == nil {
			t = time.NewTicker(lockPoll)
			defer t.Stop()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the cycle lock: %w (%v)", ctx.Err(), busy)
		case <-t.C:
		}
	}
}

// openLockFile opens (creating) the lock file for writing its holder, or,
// where another user made it (a sync-once run as root beside the daemon's
// own user), read-only: a read-only descriptor takes the flock all the
// same, only the holder's name is then not written.
func openLockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if errors.Is(err, os.ErrPermission) {
		f, err = os.Open(path)
	}
	return f, err
}

// readHolder reads who holds the lock f, as far as its content says.
func readHolder(f *os.File, name string) *BusyError {
	e := &BusyError{Connection: name}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return e
	}
	var h holder
	if json.Unmarshal(data, &h) == nil {
		e.PID, e.Program, e.Since = h.PID, h.Program, h.Since
	}
	return e
}

// Release lets the next cycle run. It is safe to call more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := l.f.Close() // closing the last descriptor drops the flock
	l.f = nil
	return err
}

// program is Runner.Program or the executable's name.
func (r *Runner) program() string {
	if r.Program != "" {
		return r.Program
	}
	return filepath.Base(os.Args[0])
}
