package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAptInstallStartsNoService runs test/apt-no-start.sh's apt_install
// with a stand-in apt-get and POLICY_RC_D pointing into a temp dir: while
// apt runs, policy-rc.d refuses every start (101); afterwards the machine's
// own policy-rc.d is back unchanged (or none is left), also when apt fails,
// and one left aside by an interrupted run is put back.
func TestAptInstallStartsNoService(t *testing.T) {
	need(t, "bash")
	lib, err := filepath.Abs(filepath.Join(root, "test/apt-no-start.sh"))
	if err != nil {
		t.Fatal(err)
	}
	const own = "#!/bin/sh\n# the machine's own\nexit 0\n"
	for _, tc := range []struct {
		name      string
		existing  string // the machine's policy-rc.d, "" for none
		leftAside bool   // an interrupted run left ours in place and the machine's aside
		aptFails  bool
	}{
		{name: "none"},
		{name: "none, apt fails", aptFails: true},
		{name: "the machine's own", existing: own},
		{name: "the machine's own, apt fails", existing: own, aptFails: true},
		{name: "interrupted run", existing: own, leftAside: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			policy := filepath.Join(dir, "policy-rc.d")
			if tc.existing != "" {
				p := policy
				if tc.leftAside {
					p = policy + ".backupsync-saved"
					os.WriteFile(policy, []byte("#!/bin/sh\n# test/install-deps.sh: no service starts while it installs packages\nexit 101\n"), 0o755)
				}
				if err := os.WriteFile(p, []byte(tc.existing), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			aptExit := "0"
			if tc.aptFails {
				aptExit = "100"
			}
			// apt-get stands in for apt: it asks policy-rc.d, as
			// invoke-rc.d and deb-systemd-invoke do, and records the answer.
			script := `set -euo pipefail
. "$1"
apt-get() { "$POLICY_RC_D" vsftpd start && echo "policy: $?" || echo "policy: $?"; echo "apt-get $*"; return ` + aptExit + `; }
apt_install vsftpd openssh-server
echo "after apt"
`
			cmd := exec.Command("bash", "-c", script, "bash", lib)
			cmd.Env = append(os.Environ(), "POLICY_RC_D="+policy)
			out, err := cmd.CombinedOutput()
			if tc.aptFails != (err != nil) {
				t.Errorf("apt failing: %v, the install: %v\n%s", tc.aptFails, err, out)
			}
			if !strings.Contains(string(out), "policy: 101\napt-get install -y -qq --no-install-recommends vsftpd openssh-server\n") {
				t.Errorf("apt ran without a policy-rc.d refusing service starts:\n%s", out)
			}
			got, err := os.ReadFile(policy)
			switch {
			case tc.existing == "" && !os.IsNotExist(err):
				t.Errorf("a policy-rc.d was left behind: %q %v", got, err)
			case tc.existing != "" && string(got) != tc.existing:
				t.Errorf("the machine's policy-rc.d is now %q (%v), want it back unchanged", got, err)
			}
			if tc.existing != "" {
				if fi, err := os.Stat(policy); err != nil || fi.Mode().Perm() != 0o700 {
					t.Errorf("the machine's policy-rc.d mode: %v %v", fi, err)
				}
			}
			if _, err := os.Stat(policy + ".backupsync-saved"); !os.IsNotExist(err) {
				t.Errorf("the saved copy was left behind: %v", err)
			}
		})
	}
}

// TestInstallDepsLeavesServicesAlone fails when the test command's install
// script stops, disables, masks or restarts a service.
func TestInstallDepsLeavesServicesAlone(t *testing.T) {
	for _, f := range []string{"test/install-deps.sh", "test/apt-no-start.sh", "test/run.sh"} {
		src, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(src), "\n") {
			code, _, _ := strings.Cut(line, "#")
			for _, bad := range []string{"systemctl", "service ", "invoke-rc.d", "update-rc.d"} {
				if strings.Contains(code, bad) {
					t.Errorf("%s:%d touches services: %s", f, i+1, strings.TrimSpace(line))
				}
			}
		}
	}
}
