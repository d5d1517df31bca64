package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"backupsync/internal/config"
	"backupsync/internal/history"
	"backupsync/internal/sync"
)

func getPage(t *testing.T, addr, path, user, password string) (int, string) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://"+addr+path, nil)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp.StatusCode, string(body)
}

// GET / answers the status page behind the login; a finished cycle is
// kept in the history under state_dir and charted.
func TestStatusPageOnTheControlPlane(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	d, _ := startDaemon(t, fmt.Sprintf("  user \"admin\" {\n    password_hash = %q\n  }\n", hash))
	cfg := "Connection1\n{\nDATABASE_NAME = DB1\nSTART_CYCLE = 0 3 * * *\nLOCAL_URL = ftp://u:p@%s:1/v0002\nREMOTE_URL = ftp://u:p@%s:1/v0002\nREMOTE_NODES = 127.0.13.9\n}\n"
	if err := os.WriteFile(d.Settings.ConnectionsFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Reload()
	conn := config.Connection{Name: "Connection1", Database: "DB1"}
	start := time.Now().Add(-time.Minute)
	d.cycleDone(conn, sync.Report{Connection: "Connection1", Started: start, Finished: start.Add(30 * time.Second), Error: "unreachable"}, fmt.Errorf("the source is unreachable"))
	pts := d.history.Since(time.Time{})["Connection1"]
	if len(pts) != 1 || pts[0].OK || pts[0].Seconds != 30 || pts[0].LagSeconds < 0 {
		t.Fatalf("history after a failed cycle: %+v", pts)
	}
	if _, err := os.Stat(filepath.Join(d.Settings.StateDir, "history.json")); err != nil {
		t.Errorf("history not saved under state_dir: %v", err)
	}
	if again, _ := history.Open(filepath.Join(d.Settings.StateDir, "history.json")); len(again.Since(time.Time{})["Connection1"]) != 1 {
		t.Error("the saved history does not reload")
	}

	if code, body := getPage(t, d.ControlAddr, "/", "", ""); code != http.StatusUnauthorized || strings.Contains(body, "Connection1") {
		t.Errorf("GET / without login: %d", code)
	}
	code, body := getPage(t, d.ControlAddr, "/cluster1/", "admin", "right")
	if code != http.StatusOK {
		t.Fatalf("GET /cluster1/: %d %s", code, body)
	}
	for _, want := range []string{"<title>[1 failing] backupsync status · n0011</title>", `<tr class="failing">`, "Connection1", "the source is unreachable", "Lag, last day", "<polyline", "Database DB1"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// POST stays XML-RPC.
	if resp := getNodeList(t, d.ControlAddr, "127.0.13.6", "admin", "right"); resp.StatusCode != http.StatusOK {
		t.Errorf("POST getNodeList: %d", resp.StatusCode)
	}
	data := d.statusPageData(context.Background())
	if data.Node != "n0011" || len(data.Connections) != 1 || data.Connections[0].Activated || data.Plugin == "" {
		t.Errorf("node data %+v", data)
	}
}
