package runner

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"backupsync/internal/config"
)

// lockHelperEnv makes the test binary a process that holds a cycle lock
// (TestLockHelperProcess): the state dir and connection, "dir|conn".
const lockHelperEnv = "BACKUPSYNC_TEST_LOCK_HELPER"

// TestLockHelperProcess is not a test: run with lockHelperEnv set, it takes
// the lock, prints "locked" and holds it until its stdin closes or it is
// killed.
func TestLockHelperProcess(t *testing.T) {
	spec := os.Getenv(lockHelperEnv)
	if spec == "" {
		t.Skip("the helper process of TestCycleLockAcrossProcesses")
	}
	dir, conn, _ := strings.Cut(spec, "|")
	l, err := AcquireLock(context.Background(), dir, conn, "backupsyncd", false)
	if err != nil {
		os.Stdout.WriteString("error " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("locked\n")
	bufio.NewReader(os.Stdin).ReadString('\n')
	l.Release()
	os.Exit(0)
}

// holdLockInProcess starts the helper and returns once it holds the lock;
// closing the returned stdin releases it, kill ends the process.
func holdLockInProcess(t *testing.T, dir, conn string) (*exec.Cmd, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir+"|"+conn)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("helper: %q, %v", line, err)
	}
	return cmd, func() { stdin.Close() }
}

func TestCycleLockAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	cmd, release := holdLockInProcess(t, dir, "Connection1")

	// Held by another process: refused at once, naming the holder.
	_, err := AcquireLock(context.Background(), dir, "CONNECTION1", "backupsyncd sync-once", false)
	var busy *BusyError
	if !errors.As(err, &busy) || !errors.Is(err, ErrBusy) {
		t.Fatalf("lock held elsewhere: %v, want a *BusyError", err)
	}
	if busy.PID != cmd.Process.Pid || busy.Program != "backupsyncd" || busy.Since.IsZero() {
		t.Errorf("busy %+v, want pid %d", busy, cmd.Process.Pid)
	}
	want := "a cycle of CONNECTION1 is running in backupsyncd (pid " + strconv.Itoa(cmd.Process.Pid) + ") since "
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q, want %q…", err, want)
	}

	// Another connection is not blocked.
	other, err := AcquireLock(context.Background(), dir, "Connection2", "x", false)
	if err != nil {
		t.Fatalf("another connection: %v", err)
	}
	other.Release()

	// With wait: it waits until the holder lets go.
	got := make(chan error, 1)
	go func() {
		l, err := AcquireLock(context.Background(), dir, "Connection1", "x", true)
		if err == nil {
			l.Release()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("a waiting lock returned while held: %v", err)
	case <-time.After(3 * lockPoll):
	}
	release()
	if err := <-got; err != nil {
		t.Fatalf("waiting for the lock: %v", err)
	}
	cmd.Wait()
}

func TestCycleLockReleasedWhenTheHolderDies(t *testing.T) {
	dir := t.TempDir()
	cmd, _ := holdLockInProcess(t, dir, "Connection1")
	cmd.Process.Kill() // SIGKILL: no chance to release
	cmd.Wait()
	l, err := AcquireLock(context.Background(), dir, "Connection1", "x", false)
	if err != nil {
		t.Fatalf("the lock of a killed process: %v", err)
	}
	l.Release()
	l.Release() // twice is fine
}

func TestCycleLockWaitEndsWithTheContext(t *testing.T) {
	dir := t.TempDir()
	l, err := AcquireLock(context.Background(), dir, "c", "backupsyncd", false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 2*lockPoll)
	defer cancel()
	_, err = AcquireLock(ctx, dir, "c", "x", true)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "a cycle of c is running in backupsyncd") {
		t.Errorf("wait with an ending context: %v", err)
	}
}

// TestOnceRefusesWhileLocked: Runner.Once, the path of both the daemon's
// cycles and sync-once, does not start a cycle while another holds the lock;
// a dry run does not need it.
func TestOnceRefusesWhileLocked(t *testing.T) {
	dir := t.TempDir()
	conns, err := config.ParseConnections("c.cfg", []byte("Conn1\n{\nDATABASE_NAME = DB\nSTART_CYCLE = @hourly\n"+
		"LOCAL_URL = ftp://u:p@%s:1/v\nREMOTE_URL = ftp://u:p@%s:1/v\nREMOTE_NODES = 127.0.2.250\nSSH = none\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := &config.Settings{Node: config.Node{Name: "n1", IP: "127.0.2.250"}, StateDir: dir, FTPDefaultPort: 1}
	_, release := holdLockInProcess(t, dir, "conn1")
	defer release()
	r := &Runner{Settings: s, Conn: conns[0], ConnectTimeout: time.Second}
	_, _, err = r.Once(context.Background(), false)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("Once while locked: %v, want ErrBusy", err)
	}
	_, _, err = r.Once(context.Background(), true)
	if errors.Is(err, ErrBusy) || !errors.Is(err, ErrUnreachable) {
		t.Errorf("a dry run while locked: %v, want it to run (and find nothing listening)", err)
	}
}

// TestCycleLockFileOfAnotherUser: a lock file this process may not write
// (another user made it) still locks; only the holder's name is missing.
func TestCycleLockFileOfAnotherUser(t *testing.T) {
	dir := t.TempDir()
	l, err := AcquireLock(context.Background(), dir, "c", "x", false)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	if err := os.Chmod(LockPath(dir, "c"), 0o444); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		t.Log("root may write any file: this checks only that a read-only mode changes nothing")
	}
	l, err = AcquireLock(context.Background(), dir, "c", "x", false)
	if err != nil {
		t.Fatalf("a read-only lock file: %v", err)
	}
	defer l.Release()
	if _, err := AcquireLock(context.Background(), dir, "c", "y", false); !errors.Is(err, ErrBusy) {
		t.Fatalf("a second holder of a read-only lock file: %v", err)
	}
}
