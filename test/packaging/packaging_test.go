// Package packaging checks what ships: the systemd unit verifies and may
// bind port 443; the .deb installs, upgrades (restarting a running daemon)
// and removes cleanly, and the EXAoperation plugin package sets a node up and
// answers a verb through its own daemon, both in a throwaway root (an
// overlay of /, throwaway_test.go) so that the machine is never changed; the
// monitoring rules pass promtool and the dashboard names real metrics. Its
// tests use 127.0.14.x.
package packaging

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"backupsync/internal/clustertest"
)

func need(t *testing.T, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing: test/install-deps.sh installs it", c)
			}
			t.Skipf("%s is missing", c)
		}
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root")
		}
		t.Skip("needs root")
	}
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

const root = "../.."

// built holds the packages the tests built, each once per test process (a
// build links both binaries): script+version → path.
var built struct {
	sync.Mutex
	dir   string
	paths map[string]string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildPackage runs the build script (relative to the repository root) for
// version, once per process, and returns the path it printed.
func buildPackage(t *testing.T, script, version string) string {
	t.Helper()
	built.Lock()
	defer built.Unlock()
	key := script + " " + version
	if p, ok := built.paths[key]; ok {
		return p
	}
	if built.dir == "" {
		dir, err := os.MkdirTemp("", "backupsync-packages-")
		if err != nil {
			t.Fatal(err)
		}
		built.dir, built.paths = dir, map[string]string{}
	}
	out := filepath.Join(built.dir, strings.ReplaceAll(key, "/", "_"))
	p := strings.TrimSpace(run(t, root, script, version, out))
	built.paths[key] = p
	return p
}

func TestSystemdUnitVerifies(t *testing.T) {
	need(t, "systemd-analyze")
	unit, err := os.ReadFile(filepath.Join(root, "packaging/systemd/backupsyncd.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=on-failure", "User=backupsync", "ProtectSystem=strict",
		"ReadWritePaths=/etc/backupsync", "StateDirectory=backupsync", "NoNewPrivileges=yes", "PrivateTmp=yes",
		// Port 443 for the non-root user, and no other capability.
		"\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n", "\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	// verify wants ExecStart to exist: point it at a built binary.
	bin := filepath.Join(clustertest.Binaries(t), "backupsyncd")
	dir := t.TempDir()
	p := filepath.Join(dir, "backupsyncd.service")
	os.WriteFile(p, []byte(strings.ReplaceAll(string(unit), "/usr/bin/backupsyncd", bin)), 0o644)
	cmd := exec.Command("systemd-analyze", "verify", p)
	out, err := cmd.CombinedOutput()
	// Outside a booted systemd, verify still parses the unit; it must not
	// report any problem with it.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "backupsyncd.service") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
	if err != nil && strings.Contains(string(out), "backupsyncd.service") {
		t.Errorf("systemd-analyze verify failed: %v\n%s", err, out)
	}
	t.Logf("systemd-analyze verify: %v %s", err, out)
}

// assertStatic fails unless every binary is statically linked (no program
// interpreter): a node's OS may have an older C library than the build host.
func assertStatic(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range bins {
		f, err := elf.Open(b)
		if err != nil {
			t.Errorf("%s: %v", b, err)
			continue
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked; the packages must ship static binaries (CGO_ENABLED=0)", b)
			}
		}
		f.Close()
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
