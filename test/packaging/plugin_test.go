package packaging

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"backupsync/internal/clustertest"
)

const (
	pluginVersion = "1.2.3"
	pluginPrefix  = "/usr/opt/EXAplugins/Administration.BackupSync-" + pluginVersion
)

// buildPluginPkg returns the EXAoperation package (built once per test
// process) and a directory its inner tarball was unpacked into (on the
// machine, for looking at; nothing is installed).
func buildPluginPkg(t *testing.T) (pkg, unpacked string) {
	t.Helper()
	need(t, "tar", "go")
	pkg = buildPackage(t, "./packaging/build-plugin-pkg.sh", pluginVersion)
	if !strings.HasPrefix(filepath.Base(pkg), "Plugin.Administration.BackupSync-"+pluginVersion+"-") || !strings.HasSuffix(pkg, ".pkg") {
		t.Fatalf("package name %s", pkg)
	}
	unpacked = t.TempDir()
	run(t, unpacked, "tar", "-xf", pkg)
	run(t, unpacked, "tar", "-xzf", "Plugin.Administration.BackupSync-"+pluginVersion+".tar.gz")
	return pkg, unpacked
}

// execStart returns the ExecStart command line of a unit file's text.
func execStart(t *testing.T, unit string) []string {
	t.Helper()
	for _, l := range strings.Split(unit, "\n") {
		if rest, ok := strings.CutPrefix(l, "ExecStart="); ok {
			return strings.Fields(rest)
		}
	}
	t.Fatalf("the unit has no ExecStart:\n%s", unit)
	return nil
}

func TestPluginPackageGate(t *testing.T) {
	need(t, "python3")
	_, unpacked := buildPluginPkg(t)
	dir := filepath.Join(unpacked, pluginPrefix)
	gate := filepath.Join(dir, "exaoperation-gate/plugin-functions")
	if fi, err := os.Stat(gate); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("gate %v %v", fi, err)
	}
	assertStatic(t, filepath.Join(dir, "bin/backupsyncd"), filepath.Join(dir, "bin/backupsyncctl"))
	for _, f := range []string{"install-service", "backupsyncd.hcl.example", "gate.env.example", "monitoring/backupsync-alerts.yml", "monitoring/backupsync-dashboard.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("the package lacks %s: %v", f, err)
		}
	}
	unit, err := os.ReadFile(filepath.Join(dir, "backupsyncd.service"))
	if err != nil {
		t.Fatal(err)
	}
	if cmd := execStart(t, string(unit)); cmd[0] != pluginPrefix+"/bin/backupsyncd" {
		t.Errorf("the unit's ExecStart runs %s, but the package puts the daemon at %s/bin/backupsyncd", cmd[0], pluginPrefix)
	}
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
	url = fmt.Sprintf("https://%s:%s@127.0.14.11:%d/", clustertest.User, clustertest.Password, clustertest.FreePort(t, "127.0.14.11"))
	if got, err := gateRun("STATUS"); err == nil || !strings.Contains(got, "is backupsyncd running on this node?") || strings.Contains(got, clustertest.Password) {
		t.Errorf("a daemon that is down must be named as the likely cause, without the password: %q %v", got, err)
	}
}

// controlAddr returns 127.0.14.12:443 when that port is free (the daemon
// then binds it as the service user with the unit's ambient capability),
// else a free port there.
func controlAddr(t *testing.T) (addr string, port int) {
	ip := "127.0.14.12"
	ln, err := net.Listen("tcp", ip+":443")
	if err == nil {
		ln.Close()
		return ip + ":443", 443
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("probe %s:443: %v", ip, err)
	}
	port = clustertest.FreePort(t, ip)
	t.Logf("%s:443 is taken on this machine: the daemon listens on %d instead", ip, port)
	return fmt.Sprintf("%s:%d", ip, port), port
}

// TestPluginPackageEndToEnd installs the EXAoperation package into a
// throwaway root as EXAoperation unpacks it, sets the node up with its
// install-service, starts the daemon with the unit's ExecStart as the
// service user holding only the unit's ambient capability (listening on
// 443 when the port is free), and asks it STATUS through the gate, which
// finds the daemon through /etc/backupsync/gate.env.
func TestPluginPackageEndToEnd(t *testing.T) {
	pkg, _ := buildPluginPkg(t)
	r := newThrowaway(t)
	need(t, "python3", "setpriv", "useradd")
	if r.ok(t, "getent passwd backupsync") {
		t.Fatal("the machine already has a backupsync user: the test cannot tell the package's from it")
	}
	r.put(t, pkg, "/tmp/plugin.pkg", 0o644)
	r.sh(t, "cd /tmp && tar -xf plugin.pkg && tar -C / -xzf Plugin.Administration.BackupSync-"+pluginVersion+".tar.gz")
	out := r.sh(t, pluginPrefix+"/install-service")
	if !strings.Contains(out, "check-config") {
		t.Errorf("install-service names no next step:\n%s", out)
	}
	r.sh(t, "getent passwd backupsync && getent group backupsync")
	for path, want := range map[string]string{
		"/etc/backupsync":                         "770 root backupsync",
		"/etc/backupsync/backupsyncd.hcl":         "640 root backupsync",
		"/etc/backupsync/connections.cfg":         "640 root backupsync",
		"/etc/backupsync/gate.env":                "600 root root",
		"/var/lib/backupsync":                     "700 backupsync backupsync",
		"/etc/systemd/system/backupsyncd.service": "644 root root",
	} {
		if got := strings.TrimSpace(r.sh(t, "stat -c '%a %U %G' "+path)); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
	// A second run (a plugin upgrade) keeps what the admin set.
	r.sh(t, "echo '# kept' >>/etc/backupsync/gate.env && "+pluginPrefix+"/install-service && grep -qx '# kept' /etc/backupsync/gate.env")

	unit, err := os.ReadFile(r.changed("/etc/systemd/system/backupsyncd.service"))
	if err != nil {
		t.Fatal(err)
	}
	cmdline := execStart(t, string(unit))
	if cmdline[0] != pluginPrefix+"/bin/backupsyncd" || !r.ok(t, "test -x "+cmdline[0]) {
		t.Fatalf("the unit's ExecStart %s is not the packaged daemon", cmdline[0])
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := r.try(t, "systemd-analyze verify /etc/systemd/system/backupsyncd.service")
		t.Logf("systemd-analyze verify of the installed unit: %v %s", err, out)
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "backupsyncd.service") {
				t.Errorf("systemd-analyze verify of the installed unit: %s", line)
			}
		}
	}

	// The node's settings: loopback address, the packaged state dir.
	addr, port := controlAddr(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("gate-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	settings := fmt.Sprintf(`node {
  name  = "n0011"
  ip    = "127.0.14.12"
  index = 0
}
connections_file = "/etc/backupsync/connections.cfg"
state_dir        = "/var/lib/backupsync"
xmlrpc {
  listen = %q
  user "admin" { password_hash = %q }
}
`, addr, hash)
	url := "https://admin:gate-pw@127.0.14.12/"
	if port != 443 {
		url = fmt.Sprintf("https://admin:gate-pw@%s/", addr)
	}
	r.write(t, "/tmp/settings.hcl", strings.NewReader(settings), 0o644)
	r.write(t, "/tmp/gate.env", strings.NewReader("# the test's\nBACKUPSYNC_URL="+url+"\n"), 0o644)
	r.sh(t, `cat /tmp/settings.hcl >/etc/backupsync/backupsyncd.hcl && cat /tmp/gate.env >/etc/backupsync/gate.env
`+pluginPrefix+`/bin/backupsyncd check-config --settings /etc/backupsync/backupsyncd.hcl`)

	// Started as systemd would: the service user, only CAP_NET_BIND_SERVICE.
	out = r.sh(t, `setpriv --reuid=backupsync --regid=backupsync --init-groups \
  --bounding-set=-all,+net_bind_service --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service \
  -- `+strings.Join(cmdline, " ")+` >/tmp/daemon.log 2>&1 &
daemon=$!
i=0
until answer=$(`+pluginPrefix+`/exaoperation-gate/plugin-functions STATUS 2>&1); do
  i=$((i + 1))
  if [ $i -ge 150 ] || ! kill -0 $daemon 2>/dev/null; then
    echo "no answer: $answer"; cat /tmp/daemon.log
    kill $daemon 2>/dev/null || true
    exit 1
  fi
  sleep 0.2
done
echo "STATUS: $answer"
echo "user: $(ps -o user= -p $daemon)"
kill $daemon
wait $daemon || true
`)
	if !strings.Contains(out, "STATUS: not installed\n") {
		t.Errorf("the packaged daemon did not answer STATUS through the gate:\n%s", out)
	}
	if !strings.Contains(out, "user: backupsync") {
		t.Errorf("the daemon did not run as the service user:\n%s", out)
	}
	t.Logf("the packaged daemon on %s answered through the gate", addr)
}
