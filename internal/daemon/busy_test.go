package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"backupsync/internal/ftptest"
	"backupsync/internal/runner"
	"backupsync/internal/sync"
)

// logBuffer collects the daemon's log lines while the test reads them.
type logBuffer struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitLog waits (bounded) until the log holds want.
func waitLog(t *testing.T, log *logBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(log.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %q:\n%s", want, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestScheduledCycleSkipsWhileLocked: while another process (sync-once;
// here the test) holds a connection's cycle lock, the daemon's scheduled
// cycles of it are skipped with a log line, not failed; once the lock is
// free they run again.
func TestScheduledCycleSkipsWhileLocked(t *testing.T) {
	s := settings(t)
	// Nothing listens on port 1: a cycle that runs fails at once.
	cfg := "Conn1\n{\nDATABASE_NAME = DB\nSTART_CYCLE = @every 1s\nLOCAL_URL = ftp://u:p@%s:1/v\nREMOTE_URL = ftp://u:p@%s:1/v\nREMOTE_NODES = 127.0.13.1\nSSH = none\n}\n"
	if err := os.WriteFile(s.ConnectionsFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	held, err := runner.AcquireLock(context.Background(), s.StateDir, "Conn1", "backupsyncd sync-once", false)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()

	log := &logBuffer{}
	d, err := New(s, Options{Stderr: log})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range [][2]string{{"INSTALL", ""}, {"ACTIVATE", "Conn1"}} {
		if r, err := d.Plugin().Call(context.Background(), v[0], v[1]); err != nil || r.Code != 0 {
			t.Fatalf("%s: %+v %v", v[0], r, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, time.Second) }()
	defer func() {
		cancel()
		<-done
	}()

	waitLog(t, log, "cycle skipped: a cycle of Conn1 is running in backupsyncd sync-once (pid "+strconv.Itoa(os.Getpid())+") since ")
	if strings.Contains(log.String(), "cycle failed") {
		t.Fatalf("a skipped cycle was logged as failed:\n%s", log.String())
	}
	held.Release()
	waitLog(t, log, "cycle failed")
}

// TestRunOnceWhileAScheduledCycleRuns: a cycle asked for while the
// schedule's own cycle of the connection runs is refused with
// ErrCycleRunning (the demo waits on it and follows), never run beside it;
// once the scheduled cycle is over, the asked-for one runs.
func TestRunOnceWhileAScheduledCycleRuns(t *testing.T) {
	// The source's FTP server accepts and never greets: the scheduled
	// cycle hangs in its login until the test lets it go.
	silent := ftptest.StartSilent(t, "127.0.13.1")
	port := silent.Port()

	s := settings(t)
	cfg := fmt.Sprintf("Conn1\n{\nDATABASE_NAME = DB\nSTART_CYCLE = @every 1s\nLOCAL_URL = ftp://u:p@%%s:%d/v\nREMOTE_URL = ftp://u:p@%%s:%d/v\nREMOTE_NODES = 127.0.13.1\nSSH = none\n}\n", port, port)
	if err := os.WriteFile(s.ConnectionsFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := New(s, Options{Stderr: &logBuffer{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range [][2]string{{"INSTALL", ""}, {"ACTIVATE", "Conn1"}} {
		if r, err := d.Plugin().Call(context.Background(), v[0], v[1]); err != nil || r.Code != 0 {
			t.Fatalf("%s: %+v %v", v[0], r, err)
		}
	}
	runDaemon(t, d)
	waitFor(t, "scheduled cycle at the source's FTP server", func() bool { return silent.Accepted() > 0 })

	ran := false
	_, err = d.RunOnce(context.Background(), "Conn1", func(sync.Event) { ran = true })
	if !errors.Is(err, ErrCycleRunning) || ran {
		t.Fatalf("RunOnce beside a scheduled cycle: %v (ran: %v), want ErrCycleRunning", err, ran)
	}
	if want := "a cycle of Conn1 is running"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}

	// Let the scheduled cycle fail; the next RunOnce runs (and fails at
	// the closed port) instead of being refused. A later scheduled cycle
	// may take the slot again for a moment, so this retries as the demo does.
	silent.Close()
	waitFor(t, "RunOnce after the scheduled cycle", func() bool {
		_, err = d.RunOnce(context.Background(), "Conn1", nil)
		return !errors.Is(err, ErrCycleRunning)
	})
	if err == nil {
		t.Fatal("a cycle against a closed port succeeded")
	}
}
