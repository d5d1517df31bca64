package clustertest

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// Python returns python3's path for admins' scripts; without it the test
// skips, or fails when CI=true (test/install-deps.sh installs it).
func Python(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is missing: test/install-deps.sh installs it")
		}
		t.Skip("python3 is missing")
	}
	return p
}

// RunScript runs a Python 3 script with args, logs its output and fails t
// when it exits non-zero. It returns the output.
func RunScript(t testing.TB, script string, args ...string) string {
	t.Helper()
	start := time.Now()
	out, err := exec.Command(Python(t), append([]string{script}, args...)...).CombinedOutput()
	t.Logf("%s (%v):\n%s", script, time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return string(out)
}
