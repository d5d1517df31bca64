package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"backupsync/internal/ftptest"
	"backupsync/internal/runner"
)

// lockedBuffer is a bytes.Buffer safe for a writer and a reader at once.
type lockedBuffer struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSyncOnceWhileACycleRuns: while another holder (the daemon's cycle,
// here the test itself) has the connection's cycle lock, sync-once refuses
// with exit 4 and says who runs since when; a dry run still plans; with
// --wait it runs once the lock is released.
func TestSyncOnceWhileACycleRuns(t *testing.T) {
	src := ftptest.Start(t, "embedded", "127.0.7.1")
	dst := ftptest.Start(t, "embedded", "127.0.7.2")
	writeBackup(t, src, "DB/id_1/level_0/node_0/data", "data")
	settings := syncSetup(t, src, dst, "127.0.7.2")
	stateDir := filepath.Join(filepath.Dir(settings), "state")

	held, err := runner.AcquireLock(context.Background(), stateDir, "Conn1", "backupsyncd", false)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()

	var out, errOut bytes.Buffer
	code := run([]string{"sync-once", "--settings", settings, "--connection", "conn1"}, &out, &errOut)
	want := "backupsyncd: a cycle of Conn1 is running in backupsyncd (pid " + strconv.Itoa(os.Getpid()) + ") since "
	if code != exitBusy || !strings.HasPrefix(errOut.String(), want) ||
		!strings.HasSuffix(errOut.String(), ": try again when it is done, or wait for it with --wait\n") {
		t.Fatalf("exit %d, stderr %q; want %d and %q…", code, errOut.String(), exitBusy, want)
	}
	if _, err := os.Stat(filepath.Join(dst.Dir, dst.Volume, "DB")); err == nil {
		t.Fatal("a refused sync-once changed the destination")
	}

	out.Reset()
	errOut.Reset()
	if code := run([]string{"sync-once", "--settings", settings, "--connection", "Conn1", "--dry-run"}, &out, &errOut); code != exitOK {
		t.Fatalf("a dry run while a cycle runs: exit %d: %s", code, errOut.String())
	}

	var waitOut, waitErr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"sync-once", "--settings", settings, "--connection", "Conn1", "--wait"}, &waitOut, &waitErr)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(waitErr.String(), "waiting for it to end") {
		if time.Now().After(deadline) {
			t.Fatalf("sync-once --wait does not say that it waits: %q", waitErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case code := <-done:
		t.Fatalf("sync-once --wait ended (exit %d) while the lock was held: %s", code, waitErr.String())
	default:
	}
	held.Release()
	if code := <-done; code != exitOK {
		t.Fatalf("sync-once --wait after the release: exit %d: %s", code, waitErr.String())
	}
	if got, _ := os.ReadFile(filepath.Join(dst.Dir, dst.Volume, "DB/id_1/level_0/node_0/data")); string(got) != "data" {
		t.Errorf("after the wait the copy holds %q", got)
	}
}
