package confd

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"backupsync/internal/config"
	"backupsync/internal/control"
	"backupsync/internal/ftptest"
	"backupsync/internal/plugin"
	"backupsync/internal/tunnel"
	"backupsync/internal/xmlrpc"
)

// This package's tests use 127.0.15.1 to 127.0.15.9 (test/confd uses the
// rest of 127.0.15.x).

// testNode is one daemon's control plane: a plugin surface with the ConfD
// jobs registered, on its own TLS server.
type testNode struct {
	svc *Service
	srv *httptest.Server
	dir string
}

func (n *testNode) url() string { return n.srv.URL + "/" }

// startCluster starts one node per ip (n0011, n0012, …); a "" ip is a node
// whose daemon is down (its URL refuses connections).
func startCluster(t *testing.T, ips ...string) []*testNode {
	t.Helper()
	var lns []net.Listener
	var peers []control.Peer
	for i, ip := range ips {
		name := fmt.Sprintf("n%04d", 11+i)
		host := ip
		if host == "" {
			host = "127.0.15.1"
		}
		ln, err := net.Listen("tcp", host+":0")
		if err != nil {
			t.Fatal(err)
		}
		if ip == "" {
			ln.Close() // dead: nothing listens there
			ln = nil
		}
		lns = append(lns, ln)
		addr := ""
		if ln != nil {
			addr = ln.Addr().String()
		} else {
			addr = host + ":1"
		}
		peers = append(peers, control.Peer{Name: name, URL: "https://" + addr + "/"})
	}
	var nodes []*testNode
	for i, ip := range ips {
		if lns[i] == nil {
			nodes = append(nodes, nil)
			continue
		}
		dir := t.TempDir()
		s := &config.Settings{Node: config.Node{Name: peers[i].Name, IP: ip, Index: i}, StateDir: filepath.Join(dir, "state"),
			ConnectionsFile: filepath.Join(dir, "connections.cfg"), FTPDefaultPort: 2021}
		keys, err := tunnel.NewKeyStore(s.StateDir, s.Node.Name)
		if err != nil {
			t.Fatal(err)
		}
		surface := &control.Surface{Self: peers[i].Name, Nodes: peers, Local: &plugin.Node{Settings: s, Keys: keys},
			Version: "9.9", ForwardTimeout: 2 * time.Second}
		svc := &Service{Surface: surface, Users: func() []string { return []string{"ops", "admin"} }, ProbeTimeout: 3 * time.Second}
		x := surface.Server()
		svc.Register(x)
		mux := http.NewServeMux()
		mux.Handle("/", x)
		mux.Handle("/master", svc.MasterHandler())
		hs := httptest.NewUnstartedServer(mux)
		hs.Listener = lns[i]
		hs.StartTLS()
		t.Cleanup(hs.Close)
		nodes = append(nodes, &testNode{svc: svc, srv: hs, dir: dir})
	}
	return nodes
}

// call makes an XML-RPC call with EncodeCall, which, unlike the Client, can
// send None, and returns the decoded result.
func call(t *testing.T, url, method string, params ...any) any {
	t.Helper()
	body, err := xmlrpc.EncodeCall(method, params...)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Post(url, "text/xml", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	v, err := xmlrpc.DecodeResponse(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return v
}

func exec(t *testing.T, url, job string, params map[string]any) map[string]any {
	t.Helper()
	var r any
	if params == nil {
		r = call(t, url, "job_exec", job)
	} else {
		r = call(t, url, "job_exec", job, map[string]any{"params": params})
	}
	m, ok := r.(map[string]any)
	if !ok {
		t.Fatalf("job_exec(%s) = %#v, want a dict", job, r)
	}
	return m
}

func wantCode(t *testing.T, r map[string]any, code int, descHas string) {
	t.Helper()
	if r["result_code"] != int64(code) || r["result_name"] != codeNames[code] || !strings.Contains(r["result_desc"].(string), descHas) {
		t.Errorf("result %v, want code %d with %q in result_desc", r, code, descHas)
	}
	if id, _ := r["result_jobid"].(string); !strings.Contains(id, ".") {
		t.Errorf("result_jobid %q", id)
	}
}

func TestEnvelopeAndErrors(t *testing.T) {
	nodes := startCluster(t, "127.0.15.1")
	url := nodes[0].url()

	r := call(t, url, "job_list").(map[string]any)
	list, _ := r["result_output"].([]any)
	if r["result_code"] != int64(0) || r["result_desc"] != "Success" || len(list) != len(jobs) || list[0] != "backupsync_activate" {
		t.Errorf("job_list = %v", r)
	}
	help := call(t, url, "job_help", "backupsync_activate").(map[string]any)["result_output"].(map[string]any)
	if fmt.Sprint(help["mandatory"], help["optional"], help["allowed_users"], help["read_only"]) != "[connection] [nodes] [admin ops] false" {
		t.Errorf("job_help = %v", help)
	}
	help = call(t, url, "job_help", "remote_volume_state").(map[string]any)["result_output"].(map[string]any)
	if fmt.Sprint(help["substitutes"]) != "map[remote_volume_id:remote_volume_name]" {
		t.Errorf("job_help substitutes = %v", help)
	}
	if d := call(t, url, "job_desc", "db_backup_list").(map[string]any); !strings.Contains(d["result_output"].(string), "synced") {
		t.Errorf("job_desc = %v", d)
	}
	wantCode(t, call(t, url, "job_desc", "reboot").(map[string]any), CodeUnknownJob, `unknown job "reboot"`)

	wantCode(t, exec(t, url, "reboot_cluster", nil), CodeUnknownJob, `unknown job "reboot_cluster"`)
	wantCode(t, exec(t, url, "db_start", map[string]any{"db_name": "DB1"}), CodeNotProvided, "db_start is not provided by backupsync")
	wantCode(t, exec(t, url, "backupsync_activate", map[string]any{}), CodeInvalidParam, "missing mandatory parameter 'connection' of job backupsync_activate")
	wantCode(t, exec(t, url, "backupsync_activate", map[string]any{"conection": "C1", "connection": "C1"}), CodeInvalidParam, "unknown parameter 'conection'")
	wantCode(t, exec(t, url, "backupsync_status", map[string]any{"nodes": "n0099"}), CodeInvalidParam, "unknown node 'n0099' in parameter 'nodes': this cluster has n0011")
	wantCode(t, exec(t, url, "backupsync_getlog", map[string]any{"lines": "many"}), CodeInvalidParam, "parameter 'lines'")
	wantCode(t, call(t, url, "job_exec", 42).(map[string]any), CodeInvalidParam, "must be a string")
	wantCode(t, call(t, url, "job_exec").(map[string]any), CodeInvalidParam, "needs a job name")

	// None everywhere a value may be: the options, 'params', a value.
	for _, args := range [][]any{{"backupsync_status", nil}, {"backupsync_status", map[string]any{"params": nil}},
		{"backupsync_status", map[string]any{"params": map[string]any{"connection": nil, "nodes": nil}}}} {
		r := call(t, url, "job_exec", args...).(map[string]any)
		out, _ := r["result_output"].(map[string]any)
		if r["result_code"] != int64(0) || fmt.Sprint(out["n0011"]) != "map[code:0 output:not installed]" {
			t.Errorf("job_exec%v = %v", args, r)
		}
		if _, has := r["result_revision"]; has {
			t.Errorf("a read-only job has a revision: %v", r)
		}
	}

	// Job ids increase, also across a restart of the service.
	var last int64
	for i := 0; i < 3; i++ {
		id := exec(t, url, "node_list", nil)["result_jobid"].(string)
		var n, m int64
		fmt.Sscanf(id, "%d.%d", &n, &m)
		if n != 11 || m <= last {
			t.Errorf("job id %s after %d", id, last)
		}
		last = m
	}
	again := &Service{Surface: nodes[0].svc.Surface}
	again.init()
	id := again.envelope(outcome{})["result_jobid"].(string)
	var n, m int64
	fmt.Sscanf(id, "%d.%d", &n, &m)
	if n != 11 || m <= last {
		t.Errorf("after a restart the job id is %s, last was 11.%d", id, last)
	}

	// A job that changes state carries the revision, increasing.
	r1 := exec(t, url, "backupsync_install", nil)
	r2 := exec(t, url, "backupsync_install", map[string]any{"nodes": []any{"11"}})
	if r1["result_code"] != int64(0) || r2["result_revision"].(int64) != r1["result_revision"].(int64)+1 {
		t.Errorf("revisions: %v, %v", r1, r2)
	}
}

func TestVerbJobsAcrossNodes(t *testing.T) {
	nodes := startCluster(t, "127.0.15.2", "127.0.15.3", "")
	url := nodes[1].url() // any daemon answers for the cluster

	start := time.Now()
	r := exec(t, url, "backupsync_install", nil)
	out := r["result_output"].(map[string]any)
	if r["result_code"] != int64(CodeFailed) || fmt.Sprint(out["n0011"], out["n0012"]) != "map[code:0 output:installed] map[code:0 output:installed]" {
		t.Errorf("install = %v", r)
	}
	dead := out["n0013"].(map[string]any)
	if dead["code"] != int64(256) || !strings.HasPrefix(dead["output"].(string), "n0013 unreachable: ") ||
		!strings.HasPrefix(r["result_desc"].(string), "backupsync_install failed on 1 of 3 node(s): n0013: n0013 unreachable") {
		t.Errorf("dead node: %v", r)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("a dead node held the job up for %v", time.Since(start))
	}
	if _, ok := r["result_revision"]; !ok {
		t.Error("install changed two nodes but has no revision")
	}

	cfg := "C1\n{\nDATABASE_NAME = DB1\nSTART_CYCLE = @every 1h\nLOCAL_URL = ftp://u:pw-secret@%s/v0003\nREMOTE_URL = ftp://u:pw-secret@%s/v0002\nREMOTE_NODES = 127.0.15.9\nSSH = none\n}\n"
	// The file's text and its base64 (also as bytes) are the same upload.
	for _, c := range []any{cfg, base64.StdEncoding.EncodeToString([]byte(cfg)), []byte(base64.StdEncoding.EncodeToString([]byte(cfg)))} {
		r = exec(t, url, "backupsync_upload_config", map[string]any{"config": c, "nodes": "n0011,n0012"})
		// The same file each time: added once, then unchanged.
		if r["result_code"] != int64(0) || !strings.Contains(fmt.Sprint(r["result_output"]), "configuration uploaded (file sha256 ") ||
			!strings.Contains(fmt.Sprint(r["result_output"]), ": C1 (none)") {
			t.Errorf("upload_config = %v", r)
		}
	}
	r = exec(t, url, "backupsync_activate", map[string]any{"connection": "C1", "nodes": []any{"n0011", int64(12)}})
	if r["result_code"] != int64(0) || len(r["result_output"].(map[string]any)) != 2 {
		t.Errorf("activate = %v", r)
	}
	r = exec(t, url, "backupsync_status", map[string]any{"connection": "C1", "nodes": []any{"n0012"}})
	st := r["result_output"].(map[string]any)["n0012"].(map[string]any)["output"].(string)
	if !strings.HasPrefix(st, "health: activated\nconnection: C1 (activated)") || strings.Contains(st, "pw-secret") {
		t.Errorf("status = %v", r)
	}
	r = exec(t, url, "backupsync_activate", map[string]any{"connection": "C9", "nodes": []any{"n0011"}})
	if r["result_code"] != int64(CodeFailed) || !strings.Contains(r["result_desc"].(string), `n0011: no connection "C9"`) {
		t.Errorf("activate of an unknown connection = %v", r)
	}
	if _, has := r["result_revision"]; has {
		t.Errorf("a job that changed nothing has a revision: %v", r)
	}
	r = exec(t, url, "backupsync_getlog", map[string]any{"lines": int64(5), "nodes": "n0011"})
	if r["result_code"] != int64(0) {
		t.Errorf("getlog = %v", r)
	}
}

func TestNodesAndMaster(t *testing.T) {
	nodes := startCluster(t, "", "127.0.15.4", "127.0.15.5")
	url := nodes[2].url()
	r := exec(t, url, "node_list", nil)
	out := r["result_output"].(map[string]any)
	n12 := out["12"].(map[string]any)
	if len(out) != 3 || n12["id"] != "12" || n12["name"] != "n0012" || n12["private_ip"] != "127.0.15.4" {
		t.Errorf("node_list = %v", r)
	}
	r = exec(t, url, "node_state", nil)
	out = r["result_output"].(map[string]any)
	booted := out["booted"].(map[string]any)
	if out["11"] != "offline" || out["12"] != "online" || out["13"] != "online" || len(booted) != 2 {
		t.Errorf("node_state = %v", r)
	}
	if _, err := time.Parse(time.ANSIC, booted["13"].(string)); err != nil {
		t.Errorf("booted: %v", err)
	}

	// The first node is down: the second answers for the cluster, on every
	// node, without a login.
	for _, n := range nodes[1:] {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := hc.Get(n.srv.URL + "/master")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "127.0.15.4" {
			t.Errorf("GET /master on %s: %d %q", n.svc.Surface.Self, resp.StatusCode, body)
		}
		resp, err = hc.Post(n.srv.URL+"/master", "text/plain", nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 405 {
				t.Errorf("POST /master: %d", resp.StatusCode)
			}
		}
	}
}

func TestNodeIDs(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"n0011", "n0012"}, "[11 12]"},
		{[]string{"n11", "n0012", "n0"}, "[11 12 0]"},
		{[]string{"alpha", "beta"}, "[1 2]"},
		{[]string{"a1", "b01"}, "[1 2]"}, // the same number twice
		{nil, "[1]"},
	} {
		var peers []control.Peer
		for _, n := range tc.names {
			peers = append(peers, control.Peer{Name: n})
		}
		if got := fmt.Sprint(nodeIDs(peers)); got != tc.want {
			t.Errorf("nodeIDs(%v) = %s, want %s", tc.names, got, tc.want)
		}
	}
}

func TestVerbArg(t *testing.T) {
	key := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO backupsync:Connection1@n0011\n"
	if got, _ := verbArg("key", key); got != base64.StdEncoding.EncodeToString([]byte(key)) {
		t.Errorf("a key line was not encoded: %q", got)
	}
	if got, _ := verbArg("key", []byte("c3No\nLWVk\n")); got != "c3No\nLWVk\n" {
		t.Errorf("base64 bytes changed: %q", got)
	}
	for _, v := range []any{int64(0), "0", "x", true} {
		if _, err := verbArg("lines", v); err == nil {
			t.Errorf("lines %v accepted", v)
		}
	}
	if got, _ := verbArg("lines", int64(20)); got != "20" {
		t.Errorf("lines 20: %q", got)
	}
	if _, err := verbArg("config", "  "); err == nil {
		t.Error("an empty config was accepted")
	}
}

// writeFile writes size bytes at dir/rel, modified at when.
func writeFile(t *testing.T, dir, rel string, size int, when time.Time) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.Repeat([]byte{'x'}, size), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, when, when)
}

// TestBackupsAndRemoteVolumes lists a two-node cluster's backups on real
// (embedded) FTP volumes and probes remote volumes that are up, unmounted
// and down.
func TestBackupsAndRemoteVolumes(t *testing.T) {
	nodes := startCluster(t, "127.0.15.6", "127.0.15.7")
	local := []*ftptest.Server{ftptest.Start(t, ftptest.KindEmbedded, "127.0.15.6"), ftptest.Start(t, ftptest.KindEmbedded, "127.0.15.7")}
	dst := ftptest.Start(t, ftptest.KindEmbedded, "127.0.15.8")
	deadLn, _ := net.Listen("tcp", "127.0.15.8:0")
	deadPort := deadLn.Addr().(*net.TCPAddr).Port
	deadLn.Close()

	for i, n := range nodes {
		n.svc.Surface.Local.Settings.FTPDefaultPort = local[i].Port
		cfg := fmt.Sprintf(`Copy
{
DATABASE_NAME = DB1
START_CYCLE = @every 1h
LOCAL_URL = ftp://%[1]s:%[2]s@%%s/v0003
REMOTE_URL = ftp://%[1]s:%[2]s@%%s:%[3]d/v0003
REMOTE_NODES = 127.0.15.8
SSH = none
}
Gone
{
DATABASE_NAME = DB2
START_CYCLE = @every 1h
LOCAL_URL = ftp://%[1]s:%[2]s@%%s/v0003
REMOTE_URL = ftp://%[1]s:%[2]s@%%s:%[3]d/v0009
REMOTE_NODES = 127.0.15.8
SSH = none
}
Down
{
DATABASE_NAME = DB1
START_CYCLE = @every 1h
LOCAL_URL = ftp://%[1]s:%[2]s@%%s/v0003
REMOTE_URL = ftp://%[1]s:%[2]s@%%s:%[4]d/v0003
REMOTE_NODES = 127.0.15.8
SSH = none
}
Tunnel
{
SSH = server
}
`, local[i].User, local[i].Password, dst.Port, deadPort)
		os.WriteFile(n.svc.Surface.Local.Settings.ConnectionsFile, []byte(cfg), 0o600)
	}
	url := nodes[0].url()

	r := exec(t, url, "remote_volume_list", nil)
	if fmt.Sprint(r["result_output"]) != "[Copy Gone Down]" {
		t.Errorf("remote_volume_list = %v", r)
	}
	for _, tc := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"remote_volume_name": "Copy"}, "[Online Online]"},
		{map[string]any{"remote_volume_name": "r0002"}, "[Unmounted Unmounted]"},
		{map[string]any{"remote_volume_id": int64(10003)}, "[Connection problem Connection problem]"},
	} {
		r := exec(t, url, "remote_volume_state", tc.params)
		if r["result_code"] != int64(0) || fmt.Sprint(r["result_output"]) != tc.want {
			t.Errorf("remote_volume_state %v = %v, want %s", tc.params, r, tc.want)
		}
	}
	wantCode(t, exec(t, url, "remote_volume_state", map[string]any{"remote_volume_name": "Tunnel"}), CodeFailed, `no remote volume "Tunnel": the remote volumes are Copy, Gone, Down`)

	// id_1 (level 0) on both nodes, copied; id_2 (level 1) on both,
	// node_1's part not copied; id_3 (level 0) only on node_0.
	vol := func(i int) string { return filepath.Join(local[i].Dir, "v0003") }
	dvol := filepath.Join(dst.Dir, "v0003")
	// Recent times on a whole minute: LIST shows them to the minute.
	hour := time.Now().Add(-time.Hour).Truncate(time.Minute)
	hours2 := hour.Add(-time.Hour)
	for i := range 2 {
		node := fmt.Sprintf("node_%d", i)
		for _, d := range []string{vol(i), dvol} {
			writeFile(t, d, "DB1/id_1/level_0/"+node+"/backup_202401020304/data", 1<<20, hour)
			writeFile(t, d, "DB1/id_1/level_0/"+node+"/metadata", 10, hour)
		}
		writeFile(t, vol(i), "DB1/id_2/level_1/"+node+"/data", 2048, hour)
	}
	writeFile(t, dvol, "DB1/id_2/level_1/node_0/data", 2048, hour)
	writeFile(t, dvol, "DB1/id_2/level_1/node_1/data", 1000, hour) // another size
	writeFile(t, vol(0), "DB1/id_3/level_0/node_0/data", 10, hours2)
	// Only the Copy connection's destination is up: Down makes synced
	// unknown where Copy says it is synced, and False stays False.
	// Listing writes nothing, not even a probe's scratch file: the volume
	// roots keep their modification times.
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, d := range []string{vol(0), vol(1), dvol} {
		os.Chtimes(d, old, old)
	}
	r = exec(t, url, "db_backup_list", map[string]any{"db_name": "DB1"})
	for _, d := range []string{vol(0), vol(1), dvol} {
		if fi, err := os.Stat(d); err != nil || !fi.ModTime().Equal(old) {
			t.Errorf("db_backup_list wrote into %s", d)
		}
	}
	rows, _ := r["result_output"].([]any)
	if r["result_code"] != int64(0) || len(rows) != 3 {
		t.Fatalf("db_backup_list = %v", r)
	}
	want := []string{
		"bid=1 level=0 path=DB1/id_1/level_0/node_0/backup_202401020304 ts=202401020304 timestamp=2024-01-02 03:04 usable=true deps=- last=false synced=<nil> usage=0.002 GiB volume=v0003 system=DB1 expired=false",
		"bid=2 level=1 path=DB1/id_2/level_1/node_0 ts=" + time.Now().Add(-time.Hour).Format("200601021504") + " timestamp=" + time.Now().Add(-time.Hour).Format("2006-01-02 15:04") + " usable=true deps=DB1/id_1/level_0 last=true synced=false usage=0.000 GiB volume=v0003 system=DB1 expired=false",
		"bid=3 level=0 path=DB1/id_3/level_0/node_0 ts=" + time.Now().Add(-2*time.Hour).Format("200601021504") + " timestamp=" + time.Now().Add(-2*time.Hour).Format("2006-01-02 15:04") + " usable=false deps=- last=true synced=false usage=0.000 GiB volume=v0003 system=DB1 expired=false",
	}
	for i, x := range rows {
		b := x.(map[string]any)
		got := fmt.Sprintf("bid=%v level=%v path=%v ts=%v timestamp=%v usable=%v deps=%v last=%v synced=%v usage=%v volume=%v system=%v expired=%v",
			b["bid"], b["level"], b["path"], b["ts"], b["timestamp"], b["usable"], b["dependencies"], b["last_item"], b["synced"], b["usage"], b["volume"], b["system"], b["expired"])
		if got != want[i] {
			t.Errorf("row %d:\n got %s\nwant %s", i, got, want[i])
		}
	}

	// Without the Down connection, id_1 is known to be synced.
	for i, n := range nodes {
		cfg := fmt.Sprintf("Copy\n{\nDATABASE_NAME = DB1\nSTART_CYCLE = @every 1h\nLOCAL_URL = ftp://%[1]s:%[2]s@%%s/v0003\nREMOTE_URL = ftp://%[1]s:%[2]s@%%s:%[3]d/v0003\nREMOTE_NODES = 127.0.15.8\nSSH = none\n}\n",
			local[i].User, local[i].Password, dst.Port)
		os.WriteFile(n.svc.Surface.Local.Settings.ConnectionsFile, []byte(cfg), 0o600)
	}
	r = exec(t, url, "db_backup_list", map[string]any{"db_name": "DB1"})
	rows, _ = r["result_output"].([]any)
	if len(rows) != 3 || rows[0].(map[string]any)["synced"] != true || rows[1].(map[string]any)["synced"] != false {
		t.Errorf("db_backup_list with one destination = %v", r)
	}
	// per_node: each node's part at the destination.
	r = exec(t, url, "db_backup_list", map[string]any{"db_name": "DB1", "per_node": true})
	rows, _ = r["result_output"].([]any)
	var perNode []string
	for _, x := range rows {
		perNode = append(perNode, fmt.Sprint(x.(map[string]any)["nodes"]))
	}
	if fmt.Sprint(perNode) != "[map[n0011:synced n0012:synced] map[n0011:synced n0012:missing] map[n0011:missing]]" {
		t.Errorf("db_backup_list per_node: %v", perNode)
	}
	wantCode(t, exec(t, url, "db_backup_list", map[string]any{"db_name": "DB7"}), CodeFailed, "no connection copies database DB7 on this cluster")

	// A node whose volume is down: the listing is incomplete, and says so.
	local[1].Stop()
	r = exec(t, url, "db_backup_list", map[string]any{"db_name": "DB1"})
	rows, _ = r["result_output"].([]any)
	if r["result_code"] != int64(CodeFailed) || !strings.Contains(r["result_desc"].(string), "listing incomplete") ||
		!strings.Contains(r["result_desc"].(string), "n0012: local archive volume") || len(rows) != 3 || rows[0].(map[string]any)["usable"] != false {
		t.Errorf("db_backup_list with a volume down = %v", r)
	}
	if strings.Contains(fmt.Sprint(r), local[1].Password) {
		t.Error("a result holds the FTP password")
	}
}

func TestBackupRowsDependencies(t *testing.T) {
	mk := func(id, level int, sync int) *set {
		return &set{volume: "v1", id: id, level: level, parts: map[int]part{0: {volume: "v1", id: id, level: level, files: 1, bytes: 1 << 30, sync: sync}}}
	}
	sets := map[string]*set{"a": mk(10, 0, syncYes), "b": mk(11, 1, syncYes), "c": mk(12, 2, syncUnknown), "d": mk(13, 2, syncNo), "e": mk(14, 1, syncYes)}
	sets["orphan"] = &set{volume: "v2", id: 5, level: 1, parts: map[int]part{0: {files: 1}}}
	rows := backupRows(sets, "DB", true)
	var got []string
	for _, x := range rows {
		r := x.(map[string]any)
		got = append(got, fmt.Sprintf("%v/%v:%v:%v:%v:%v:%v", r["volume"], r["bid"], r["dependencies"], r["usable"], r["last_item"], r["synced"], r["usage"]))
	}
	want := "v1/10:-:true:false:true:1.000 GiB v1/11:DB/id_10/level_0:true:false:true:1.000 GiB " +
		"v1/12:DB/id_11/level_1:true:true:<nil>:1.000 GiB v1/13:DB/id_11/level_1:true:true:false:1.000 GiB " +
		"v1/14:DB/id_10/level_0:true:true:true:1.000 GiB v2/5:missing: no level_0 backup before it:false:true:<nil>:0.000 GiB"
	if strings.Join(got, " ") != want {
		t.Errorf("rows:\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
}
