// Package compat runs admins' Python 3 scripts (xmlrpc.client, as the
// BackupSync guide drives EXAoperation) against loopback clusters of
// backupsyncd processes. Its tests use 127.0.8.x.
package compat

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"backupsync/internal/clustertest"
)

func python(t *testing.T) string {
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

func runScript(t *testing.T, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command(python(t), append([]string{script}, args...)...)
	out, err := cmd.CombinedOutput()
	t.Logf("%s:\n%s", script, out)
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return string(out)
}

const clientCfg = `Connection1
{
DATABASE_NAME = exa_db1
START_CYCLE = @every 1h
LOCAL_URL = ftp://FTPbackup:ftp-pw@%s/v0003
REMOTE_URL = ftp://FTPbackup:ftp-pw@%s/v0002
REMOTE_NODES = 127.0.8.21; 127.0.8.22
Verbose = true
SSH = client
}
`

const serverCfg = "Connection1\n{\nVerbose = true\nSSH = server\n}\n"

func TestAdminScripts(t *testing.T) {
	python(t)
	source := clustertest.Start(t, "n001", []string{"127.0.8.11", "127.0.8.12", "127.0.8.13"}, clustertest.Options{})
	dest := clustertest.Start(t, "n002", []string{"127.0.8.21", "127.0.8.22"}, clustertest.Options{})
	work := t.TempDir()
	client, server := filepath.Join(work, "client.cfg"), filepath.Join(work, "server.cfg")
	os.WriteFile(client, []byte(clientCfg), 0o600)
	os.WriteFile(server, []byte(serverCfg), 0o600)

	out := runScript(t, "admin_flow.py", source.URL(), dest.URL(), client, server, work)
	if !strings.Contains(out, "admin flow: OK") {
		t.Fatal("the admin flow did not finish")
	}
	for _, n := range append(source.Nodes, dest.Nodes...) {
		n.CheckNoSecrets(t, "ftp-pw")
	}

	source.Nodes[2].Stop()
	bad := strings.Replace(source.URL(), clustertest.Password, "wrong", 1)
	out = runScript(t, "errors.py", source.URL(), bad, source.Nodes[2].Name)
	if !strings.Contains(out, "errors: OK") {
		t.Fatal("the error checks did not finish")
	}
}
