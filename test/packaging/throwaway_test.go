package packaging

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// throwaway is a root filesystem in which the packages are installed,
// upgraded, started and removed without changing the machine: an overlay of
// / whose every change lands in an upper directory under the test's temp
// dir. Each command mounts it afresh in private mount and PID namespaces
// (unshare) with /dev and /proc, chroots into it and runs there; the mounts
// and processes die with the command, so nothing outside the temp dir
// changes: no user is created, no package is registered in the machine's
// dpkg database, no service is touched.
//
// In the root, /stub comes first in PATH: stubSystemd puts a systemctl there
// that records its calls.
type throwaway struct {
	upper, work, merged string
}

const throwawayPath = "/stub:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// newThrowaway makes an empty throwaway root; it needs root and overlayfs
// (under CI=true their lack fails the test).
func newThrowaway(t *testing.T) *throwaway {
	t.Helper()
	needRoot(t)
	need(t, "unshare", "chroot", "mount")
	dir := t.TempDir()
	r := &throwaway{upper: filepath.Join(dir, "upper"), work: filepath.Join(dir, "work"), merged: filepath.Join(dir, "merged")}
	for _, d := range []string{r.upper, r.work, r.merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := r.try(t, "true"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot mount an overlay of / in a private mount namespace: %v\n%s", err, out)
		}
		t.Skipf("no overlay of / in a private mount namespace here: %v\n%s", err, out)
	}
	return r
}

// command returns the command that runs script with /bin/sh -e inside the
// root, with a deadline of two minutes.
func (r *throwaway) command(t *testing.T, script string) (*exec.Cmd, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	mounts := `mount -t overlay overlay -o "lowerdir=/,upperdir=$1,workdir=$2" "$3"
mount --rbind /dev "$3/dev"
mount -t proc proc "$3/proc"
exec chroot "$3" /bin/sh -ec "$4"`
	// A private PID namespace too: when the command ends or is killed, every
	// process it started (a daemon in the background) dies with it.
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--",
		"/bin/sh", "-ec", mounts, "sh", r.upper, r.work, r.merged, script)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "BACKUPSYNC_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "PATH="+throwawayPath, "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	cmd.WaitDelay = 5 * time.Second
	return cmd, cancel
}

// try runs script in the root and returns its combined output.
func (r *throwaway) try(t *testing.T, script string) (string, error) {
	t.Helper()
	cmd, cancel := r.command(t, script)
	defer cancel()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// sh runs script in the root and returns its combined output; a failure
// fails the test.
func (r *throwaway) sh(t *testing.T, script string) string {
	t.Helper()
	out, err := r.try(t, script)
	if err != nil {
		t.Fatalf("in the throwaway root: %s: %v\n%s", script, err, out)
	}
	return out
}

// ok reports whether script exits 0 in the root.
func (r *throwaway) ok(t *testing.T, script string) bool {
	t.Helper()
	_, err := r.try(t, script)
	return err == nil
}

// put copies the machine's file src to dst inside the root (with mode),
// straight into the upper layer while nothing is mounted.
func (r *throwaway) put(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	r.write(t, dst, in, mode)
}

// write stores what rd holds as the root's file dst (with mode).
func (r *throwaway) write(t *testing.T, dst string, rd io.Reader, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(r.upper, dst)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, rd); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// changed returns where the root's path lies on the machine once the root
// wrote it (the upper layer), for reading it without mounting anything.
func (r *throwaway) changed(path string) string {
	return filepath.Join(r.upper, path)
}

// stubSystemd makes the root look booted with systemd (/run/systemd/system)
// and puts a systemctl in /stub that appends each call to /stub/calls. It
// answers is-active with 0 while /stub/active exists (the daemon "runs"),
// and try-restart records "restarted" only then, as systemd would.
func (r *throwaway) stubSystemd(t *testing.T) {
	t.Helper()
	r.write(t, "/stub/systemctl", strings.NewReader(`#!/bin/sh
echo "systemctl $*" >>/stub/calls
for a in "$@"; do
  case $a in
    is-active) [ -e /stub/active ]; exit $? ;;
    is-enabled) echo enabled; exit 0 ;;
    try-restart) [ -e /stub/active ] && echo restarted >>/stub/calls; exit 0 ;;
  esac
done
exit 0
`), 0o755)
	if err := os.MkdirAll(r.changed("/run/systemd/system"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// calls returns the systemctl calls recorded since the last call of calls,
// and forgets them.
func (r *throwaway) calls(t *testing.T) string {
	t.Helper()
	p := r.changed("/stub/calls")
	b, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	os.Remove(p)
	return string(b)
}
