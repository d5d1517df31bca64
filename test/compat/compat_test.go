// Package compat runs admins' Python 3 scripts (xmlrpc.client, as the
// BackupSync guide drives EXAoperation) against loopback clusters of
// backupsyncd processes. Its tests use 127.0.8.x.
package compat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"backupsync/internal/clustertest"
)

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
	clustertest.Python(t)
	source := clustertest.Start(t, "n001", []string{"127.0.8.11", "127.0.8.12", "127.0.8.13"}, clustertest.Options{})
	dest := clustertest.Start(t, "n002", []string{"127.0.8.21", "127.0.8.22"}, clustertest.Options{})
	work := t.TempDir()
	client, server := filepath.Join(work, "client.cfg"), filepath.Join(work, "server.cfg")
	os.WriteFile(client, []byte(clientCfg), 0o600)
	os.WriteFile(server, []byte(serverCfg), 0o600)

	out := clustertest.RunScript(t, "admin_flow.py", source.URL(), dest.URL(), client, server, work)
	if !strings.Contains(out, "admin flow: OK") {
		t.Fatal("the admin flow did not finish")
	}
	for _, n := range append(source.Nodes, dest.Nodes...) {
		n.CheckNoSecrets(t, "ftp-pw")
	}

	source.Nodes[2].Stop()
	bad := strings.Replace(source.URL(), clustertest.Password, "wrong", 1)
	out = clustertest.RunScript(t, "errors.py", source.URL(), bad, source.Nodes[2].Name)
	if !strings.Contains(out, "errors: OK") {
		t.Fatal("the error checks did not finish")
	}
}
