// Package packaging checks what ships: the systemd unit verifies, the .deb
// installs and removes cleanly, and the EXAoperation plugin package's gate
// answers through a running daemon. Its tests use 127.0.14.x.
package packaging

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

func TestSystemdUnitVerifies(t *testing.T) {
	need(t, "systemd-analyze")
	unit, err := os.ReadFile(filepath.Join(root, "packaging/systemd/backupsyncd.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "Restart=on-failure", "User=backupsync", "ProtectSystem=strict",
		"ReadWritePaths=/etc/backupsync", "StateDirectory=backupsync", "NoNewPrivileges=yes", "PrivateTmp=yes", "CapabilityBoundingSet=\n"} {
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

func TestDebInstallsAndRemoves(t *testing.T) {
	needRoot(t)
	need(t, "dpkg-deb", "dpkg", "fakeroot", "adduser")
	out := t.TempDir()
	deb := strings.TrimSpace(run(t, root, "./packaging/build-deb.sh", "0.1.0-test", out))
	info := run(t, "", "dpkg-deb", "--info", deb)
	if !strings.Contains(info, "Package: backupsync") {
		t.Fatalf("dpkg-deb --info:\n%s", info)
	}
	contents := run(t, "", "dpkg-deb", "--contents", deb)
	for _, f := range []string{"./usr/bin/backupsyncd", "./usr/bin/backupsyncctl", "./lib/systemd/system/backupsyncd.service", "./etc/backupsync/backupsyncd.hcl"} {
		if !strings.Contains(contents, f) {
			t.Errorf("the package lacks %s", f)
		}
	}
	t.Cleanup(func() { exec.Command("dpkg", "--purge", "backupsync").Run() })
	run(t, "", "dpkg", "-i", deb)
	if v := run(t, "", "/usr/bin/backupsyncd", "--version"); !strings.Contains(v, "0.1.0-test") {
		t.Errorf("installed version: %s", v)
	}
	assertStatic(t, "/usr/bin/backupsyncd", "/usr/bin/backupsyncctl")
	run(t, "", "getent", "passwd", "backupsync")
	if fi, err := os.Stat("/etc/backupsync/backupsyncd.hcl"); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("settings: %v %v", fi, err)
	}
	if conf := run(t, "", "dpkg-query", "-W", "-f=${Conffiles}", "backupsync"); !strings.Contains(conf, "/etc/backupsync/backupsyncd.hcl") {
		t.Errorf("the settings are not a conffile: %q", conf)
	}
	// The example settings check (with a connections file of the guide).
	run(t, "", "/usr/bin/backupsyncd", "check-config", "--settings", "/etc/backupsync/backupsyncd.hcl", filepath.Join(mustAbs(t, root), "testdata/seed/client.cfg"))
	run(t, "", "dpkg", "-r", "backupsync")
	if _, err := os.Stat("/usr/bin/backupsyncd"); err == nil {
		t.Error("the binary survived dpkg -r")
	}
	if _, err := os.Stat("/etc/backupsync/backupsyncd.hcl"); err != nil {
		t.Error("dpkg -r removed the conffile (only purge may)")
	}
	run(t, "", "dpkg", "--purge", "backupsync")
	if _, err := os.Stat("/etc/backupsync/backupsyncd.hcl"); err == nil {
		t.Error("the conffile survived purge")
	}
	if err := exec.Command("getent", "passwd", "backupsync").Run(); err == nil {
		t.Error("the user survived purge")
	}
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

func TestPluginPackageGate(t *testing.T) {
	need(t, "python3", "tar")
	out := t.TempDir()
	pkg := strings.TrimSpace(run(t, root, "./packaging/build-plugin-pkg.sh", "1.2.3", out))
	if !strings.HasPrefix(filepath.Base(pkg), "Plugin.Administration.BackupSync-1.2.3-") || !strings.HasSuffix(pkg, ".pkg") {
		t.Fatalf("package name %s", pkg)
	}
	unpack := t.TempDir()
	run(t, unpack, "tar", "-xf", pkg)
	run(t, unpack, "tar", "-xzf", "Plugin.Administration.BackupSync-1.2.3.tar.gz")
	gate := filepath.Join(unpack, "usr/opt/EXAplugins/Administration.BackupSync-1.2.3/exaoperation-gate/plugin-functions")
	if fi, err := os.Stat(gate); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("gate %v %v", fi, err)
	}
	bin := filepath.Join(unpack, "usr/opt/EXAplugins/Administration.BackupSync-1.2.3/bin")
	assertStatic(t, filepath.Join(bin, "backupsyncd"), filepath.Join(bin, "backupsyncctl"))
	if fns := run(t, "", gate, "--show-functions"); !strings.Contains(fns, "STATUS: Show status of plugin (not installed, activated, not activated).") || strings.Count(fns, "\n") != 9 {
		t.Errorf("--show-functions:\n%s", fns)
	}

	cl := clustertest.Start(t, "n001", []string{"127.0.14.11"}, clustertest.Options{})
	url := strings.TrimSuffix(cl.URL(), "cluster1/")
	gateRun := func(args ...string) (string, error) {
		cmd := exec.Command(gate, args...)
		cmd.Env = append(os.Environ(), "BACKUPSYNC_URL="+url)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if got, err := gateRun("STATUS"); err != nil || strings.TrimSpace(got) != "not installed" {
		t.Errorf("STATUS: %q %v", got, err)
	}
	if got, err := gateRun("INSTALL"); err != nil || strings.TrimSpace(got) != "installed" {
		t.Errorf("INSTALL: %q %v", got, err)
	}
	if got, err := gateRun("SSHKEY", "Connection1"); err == nil || !strings.Contains(got, "no configuration uploaded yet") {
		t.Errorf("a failing verb must exit non-zero with its reason: %q %v", got, err)
	}
}
