package statuspage

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"backupsync/internal/confd"
	"backupsync/internal/control"
	"backupsync/internal/health"
	"backupsync/internal/history"
	"backupsync/internal/sync"
	"backupsync/internal/xmlrpc"
)

// This package's tests listen on 127.0.16.1 to 127.0.16.9.

const (
	user, password = "admin", "s3cret-page"
	hostileCause   = `<script>alert("x")</script> & "quoted" 'single'`
)

var now = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

var users = func() control.Users {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return control.Users{user: string(h)}
}()

// points is a day and a week of cycles every 10 minutes of one node.
func points(seed int, failFrom time.Time) []history.Point {
	var out []history.Point
	for t := now.Add(-history.Keep + time.Hour); !t.After(now.Add(-time.Minute)); t = t.Add(10 * time.Minute) {
		k := int(t.Unix()/600) + seed
		p := history.Point{Finished: t, LagSeconds: float64(60 + (k*37)%240), Bytes: int64((k*7919)%50) << 20, Seconds: 20, OK: true}
		if !failFrom.IsZero() && t.After(failFrom) {
			p.OK, p.Bytes, p.LagSeconds = false, 0, t.Sub(failFrom).Seconds()+300
		}
		out = append(out, p)
	}
	return out
}

// localData is n0011's part: Connection1 failing with a hostile cause,
// Connection2 running, DB1 copied.
func localData() NodeData {
	failFrom := now.Add(-3 * time.Hour)
	return NodeData{
		Node: "n0011", Version: "1.0.1", Time: now, Plugin: "activated",
		Connections: []Connection{
			{Health: health.Health{Connection: "Connection1", State: health.Failing, Failing: true, FailingSince: failFrom, Since: failFrom, Failures: 18,
				Cause: hostileCause + ": the destination's FTP server refused the login of REMOTE_URL", Next: "check the user and password in REMOTE_URL of Connection1",
				Lag: 3*time.Hour + 5*time.Minute, LagSeconds: (3*time.Hour + 5*time.Minute).Seconds(), LagKnown: true,
				LastCycle: now.Add(-time.Minute), LastSummary: "0 copied", NextRun: now.Add(9 * time.Minute)},
				Database: "DB1", Activated: true},
			{Health: health.Health{Connection: "Connection2", State: health.Running, Running: true, RunningSince: now.Add(-2 * time.Minute), Since: now.Add(-2 * time.Minute),
				LagSeconds: 120, Lag: 2 * time.Minute, LagKnown: true, LastCycle: now.Add(-12 * time.Minute), LastSummary: "3 copied (1.2 GiB), 40 up to date",
				Progress: &sync.ProgressSnapshot{FilesDone: 3, FilesTotal: 10, BytesDone: 300 << 20, BytesTotal: 1 << 30, Started: now.Add(-100 * time.Second), Rate: 3 << 20}},
				Database: "DB1", Activated: true},
		},
		History: map[string][]history.Point{"Connection1": points(0, failFrom), "Connection2": points(3, time.Time{})},
	}
}

func peerData(name string) NodeData {
	return NodeData{
		Node: name, Version: "1.0.1", Time: now, Plugin: "activated",
		Connections: []Connection{
			{Health: health.Health{Connection: "Connection1", State: health.OK, Since: now.Add(-time.Minute), LagKnown: true, LastCycle: now.Add(-time.Minute), LastSummary: "1 copied (12.0 MiB), 40 up to date", NextRun: now.Add(9 * time.Minute)},
				Database: "DB1", Activated: true},
			{Health: health.Health{Connection: "Connection2", State: health.NeverRan}, Database: "DB1"},
		},
		History: map[string][]history.Point{"Connection1": points(5, time.Time{})},
	}
}

func ptr[T any](v T) *T { return &v }

func backups(ctx context.Context, db string) ([]confd.BackupSet, []string, bool) {
	parts := func(a, b *bool) []confd.BackupPart {
		return []confd.BackupPart{{Node: "n0011", Index: 0, Files: 12, Bytes: 3 << 30, Synced: a}, {Node: "n0012", Index: 1, Files: 12, Bytes: 3 << 30, Synced: b}}
	}
	return []confd.BackupSet{
		{Volume: "v0002", ID: 7, Level: 0, Timestamp: "2026-12-01 02:00", Usage: "6.000 GiB", Dependencies: "-", Usable: true, Synced: ptr(true), Parts: parts(ptr(true), ptr(true))},
		{Volume: "v0002", ID: 8, Level: 1, Timestamp: "2026-12-06 02:00", Usage: "6.000 GiB", Dependencies: "DB1/id_7/level_0", Usable: true, Synced: ptr(false), Parts: parts(ptr(false), ptr(true))},
		{Volume: "v0002", ID: 9, Level: 1, Timestamp: "2026-12-06 11:00", Usage: "6.000 GiB", Dependencies: "DB1/id_8/level_1", Usable: true, Parts: parts(nil, ptr(true))},
	}, nil, false
}

// peerServer is another node's control plane: the XML-RPC server with
// NodeMethod, behind the login, on TLS at ip.
func peerServer(t *testing.T, ip string, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(control.NewLogin(nil).Require(users, h))
	s.Listener.Close()
	s.Listener = ln
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.URL + "/"
}

func xmlrpcPeer(t *testing.T, ip string, data NodeData) string {
	srv := &xmlrpc.Server{}
	Register(srv, func(context.Context) NodeData { return data })
	return peerServer(t, ip, srv)
}

// deadURL is a control URL where nothing listens.
func deadURL(t *testing.T, ip string) string {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return "https://" + ln.Addr().String() + "/"
}

func newPage(peers []control.Peer) *Page {
	s := &control.Surface{Self: "n0011", Nodes: peers, PeerUser: user, PeerPassword: password}
	return &Page{Surface: s, Local: func(context.Context) NodeData { return localData() }, Backups: backups,
		NodeTimeout: 3 * time.Second, Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))}
}

// get serves GET path through the login, as the daemon does, and returns
// the status and body.
func get(t *testing.T, h http.Handler, path string, auth bool) (int, http.Header, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.RemoteAddr = "127.0.16.9:40000"
	if auth {
		r.SetBasicAuth(user, password)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Header(), w.Body.String()
}

func guarded(p *Page) http.Handler {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "XML-RPC answers POST only", http.StatusMethodNotAllowed)
	})
	return control.NewLogin(nil).Require(users, p.Wrap(next))
}

// text is the page's visible text, tags removed and entities kept.
func text(html string) string {
	html = regexp.MustCompile(`(?s)<style>.*?</style>|<title>.*?</title>`).ReplaceAllString(html, " ")
	return strings.Join(strings.Fields(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(html, " ")), " ")
}

func TestPageShowsTheWholeCluster(t *testing.T) {
	peers := []control.Peer{
		{Name: "n0011"},
		{Name: "n0012", URL: xmlrpcPeer(t, "127.0.16.1", peerData("n0012"))},
		{Name: "n0013", URL: deadURL(t, "127.0.16.2")},
	}
	p := newPage(peers)
	code, hdr, body := get(t, guarded(p), "/", true)
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %v\n%s", code, hdr, body)
	}
	if dir := os.Getenv("BACKUPSYNC_ARTIFACTS"); dir != "" {
		os.WriteFile(filepath.Join(dir, "statuspage-unit.html"), []byte(body), 0o644)
	}
	txt := text(body)
	for _, want := range []string{
		"Attention: 1 failing",
		"n0011 failing since 2026-12-06T09:00:00Z (3h00m ago) · 18 failed cycles in a row",
		"refused the login of REMOTE_URL",
		"next step: check the user and password in REMOTE_URL of Connection1",
		"3h05m",
		"n0012 ok since 2026-12-06T11:59:00Z",
		"n0013 no answer",
		"n0011 running since 2026-12-06T11:58:00Z (2m00s ago) 3 of 10 files, 300.0 MiB of 1.00 GiB, 3.0 MiB/s, ETA 4m01s",
		"n0012 never ran not activated on this node: ACTIVATE Connection2",
		"Database DB1",
		"7 0 2026-12-01 02:00 6.000 GiB yes synced synced · 12 files, 3.00 GiB synced · 12 files, 3.00 GiB",
		"not synced not synced · 12 files",
		"unknown unknown · 12 files",
		"Lag, last day", "Lag, last week", "Copied, last day", "Copied, last week",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if !regexp.MustCompile(`n0013 no answer \d+ ms n0013 unreachable: is backupsyncd running on n0013\? Nothing accepts connections`).MatchString(txt) {
		t.Errorf("the dead node is not shown with its reason:\n%s", txt)
	}
	// Failing rows are marked by colour (their class) and the word.
	if !regexp.MustCompile(`<tr class="failing">\s*<td class="nowrap"><b>n0011</b></td>\s*<td><span class="badge">failing</span>`).MatchString(body) {
		t.Error("the failing row is not marked failing")
	}
	// Everything from the nodes is escaped.
	if strings.Contains(body, "<script") || !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;quoted&#34; &#39;single&#39;") {
		t.Error("the cause is not escaped")
	}
	// Charts: lines for each node, red dots for failed cycles, bars.
	if n := strings.Count(body, "<svg class=\"chart\""); n != 8 {
		t.Errorf("%d charts, want 4 per connection", n)
	}
	for _, want := range []string{"<polyline", "<circle", `fill="#2563eb"`, `fill="#d97706"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the charts lack %s", want)
		}
	}
	for _, bad := range []string{"src=", `href="http`, "url(", "@import", "<script", "<img", "<link rel=\"stylesheet\""} {
		if strings.Contains(body, bad) {
			t.Errorf("the page holds %q: it must need nothing from elsewhere", bad)
		}
	}
	if strings.Contains(body, password) {
		t.Error("the page shows the cluster password")
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
}

// No login, no page: 401 before anything is gathered; a wrong password
// too; POST still reaches the XML-RPC server.
func TestLoginRequired(t *testing.T) {
	asked := false
	p := newPage([]control.Peer{{Name: "n0011"}})
	p.Local = func(context.Context) NodeData { asked = true; return localData() }
	h := guarded(p)
	if code, hdr, _ := get(t, h, "/", false); code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") == "" {
		t.Errorf("GET / without login: %d %v", code, hdr)
	}
	r := httptest.NewRequest(http.MethodGet, "/cluster1/", nil)
	r.RemoteAddr = "127.0.16.9:40001"
	r.SetBasicAuth(user, "wrong")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized || strings.Contains(w.Body.String(), "Connection1") {
		t.Errorf("GET with a wrong password: %d", w.Code)
	}
	if asked {
		t.Error("the page gathered data for a request without a login")
	}
	if code, _, body := get(t, h, "/cluster1/", true); code != http.StatusOK || !strings.Contains(body, "Connection1") {
		t.Errorf("GET /cluster1/ with login: %d", code)
	}
	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader("<methodCall/>"))
	r.RemoteAddr = "127.0.16.9:40002"
	r.SetBasicAuth(user, password)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST / did not reach the next handler: %d", w.Code)
	}
	if code, _, _ := get(t, h, "/favicon.ico", true); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /favicon.ico is not the page: %d", code)
	}
}

// Hostile and broken peers cost their own row, bounded: one that never
// answers, one that answers more than MaxNodeAnswerBytes, one that
// answers as another node, one with too many connections and texts, one
// whose daemon has no status page method.
func TestHostilePeersAreBounded(t *testing.T) {
	stall := make(chan struct{})
	slow := peerServer(t, "127.0.16.3", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	huge := peerServer(t, "127.0.16.4", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, "<?xml version=\"1.0\"?><methodResponse><params><param><value><string>")
		chunk := strings.Repeat("A", 64<<10)
		for range (MaxNodeAnswerBytes + 1<<20) / len(chunk) {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
		io.WriteString(w, "</string></value></param></params></methodResponse>")
	}))
	liar := peerData("n0099")
	flood := peerData("n0016")
	for i := range MaxConnections + 50 {
		flood.Connections = append(flood.Connections, Connection{Health: health.Health{Connection: fmt.Sprintf("Flood%03d", i), State: health.OK, Cause: strings.Repeat("x", 100)}})
	}
	flood.Connections[0].Cause = strings.Repeat("é", maxText)
	flood.Connections[0].State, flood.Connections[0].Failing = health.Failing, true
	// Runs before the servers' Close, which waits for the stalled handler.
	t.Cleanup(func() { close(stall) })
	old := &xmlrpc.Server{}
	peers := []control.Peer{
		{Name: "n0011"},
		{Name: "n0012", URL: slow},
		{Name: "n0013", URL: huge},
		{Name: "n0014", URL: xmlrpcPeer(t, "127.0.16.5", liar)},
		{Name: "n0015", URL: peerServer(t, "127.0.16.6", old)},
		{Name: "n0016", URL: xmlrpcPeer(t, "127.0.16.7", flood)},
	}
	p := newPage(peers)
	p.NodeTimeout = 4 * time.Second
	done := make(chan string, 1)
	go func() { _, _, body := get(t, guarded(p), "/", true); done <- body }()
	var body string
	select {
	case body = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the page did not answer within 30s with a stalled peer")
	}
	txt := text(body)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`n0012 no answer \S+( ms)? n0012 unreachable: is backupsyncd running on n0012\? It did not answer in time`),
		regexp.MustCompile(`n0013 no answer \S+( ms)? .*larger than`),
		regexp.MustCompile(`n0014 no answer \S+( ms)? answered as node &#34;n0099&#34;: check the cluster settings`),
		regexp.MustCompile(`n0015 no answer \S+( ms)? its backupsyncd serves no status page data: upgrade it`),
		regexp.MustCompile(`n0016 answered`),
	} {
		if !want.MatchString(txt) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if n := strings.Count(body, `id="conn-Flood`); n != MaxConnections-2 {
		t.Errorf("%d flood connections shown, want %d (MaxConnections of n0016's, 2 of them its real ones)", n, MaxConnections-2)
	}
	if strings.Contains(body, strings.Repeat("é", maxText)) || !strings.Contains(body, strings.Repeat("é", 100)) {
		t.Error("a long cause is not clipped")
	}
	if len(body) > 8<<20 {
		t.Errorf("the page is %d bytes", len(body))
	}
}

// The backup sets are listed at most once per BackupsMaxAge, within
// BackupsTimeout, whatever the reloads; a stale listing is shown while a
// new one runs, so that a slow destination never slows the page.
func TestBackupsCachedAndBounded(t *testing.T) {
	var calls atomic.Int32
	p := newPage([]control.Peer{{Name: "n0011"}})
	var clockMu gosync.Mutex
	clock := now
	p.Now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	advance := func(d time.Duration) { clockMu.Lock(); clock = clock.Add(d); clockMu.Unlock() }
	p.BackupsTimeout = 500 * time.Millisecond
	p.Backups = func(ctx context.Context, db string) ([]confd.BackupSet, []string, bool) {
		if calls.Add(1) == 3 {
			<-ctx.Done() // a listing that hangs: bounded by BackupsTimeout
			return nil, []string{"n0011 unreachable: " + ctx.Err().Error()}, false
		}
		return backups(ctx, db)
	}
	idle := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			p.mu.Lock()
			running := p.backups["DB1"] != nil && p.backups["DB1"].running != nil
			p.mu.Unlock()
			if !running {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the background listing did not end within 10s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	h := guarded(p)
	// The first load waits for the first listing.
	if _, _, body := get(t, h, "/", true); calls.Load() != 1 || !strings.Contains(text(body), "7 0 2026-12-01 02:00") {
		t.Fatalf("first load: %d listings", calls.Load())
	}
	get(t, h, "/", true)
	if calls.Load() != 1 {
		t.Fatalf("%d listings for two loads within a minute", calls.Load())
	}
	advance(2 * time.Minute)
	if _, _, body := get(t, h, "/", true); !strings.Contains(text(body), "7 0 2026-12-01 02:00") {
		t.Error("a stale listing is not shown while the next runs")
	}
	idle()
	if calls.Load() != 2 {
		t.Fatalf("%d listings after a stale load", calls.Load())
	}
	// A hanging listing: the page answers at once with the last one.
	advance(2 * time.Minute)
	if _, _, body := get(t, h, "/", true); !strings.Contains(text(body), "7 0 2026-12-01 02:00") {
		t.Error("the last listing is not shown while one hangs")
	}
	idle()
	_, _, body := get(t, h, "/", true)
	if !strings.Contains(text(body), "incomplete n0011 unreachable: context deadline exceeded") ||
		!strings.Contains(body, "the listing did not finish within 500ms") {
		t.Errorf("a hanging listing is not reported:\n%s", text(body))
	}
	// A listing cut short is not kept: the next load lists again.
	idle()
	if _, _, body := get(t, h, "/", true); calls.Load() != 4 || !strings.Contains(text(body), "7 0 2026-12-01 02:00") {
		t.Errorf("%d listings after a failed one", calls.Load())
	}
}

// A destination cluster: no copying connection, tunnels served.
func TestServerClusterPage(t *testing.T) {
	p := newPage([]control.Peer{{Name: "n0011"}})
	p.Local = func(context.Context) NodeData {
		return NodeData{Node: "n0011", Time: now, Plugin: "not activated", Served: []Served{
			{Connection: "Connection1", Line: "ok, accepting tunnels for 2 client node(s): 1 connected, 3 forwards open"},
			{Connection: "Connection4", Line: "failing: the SSH tunnel server is not running; next: see GETLOG for why it stopped", Failing: true},
		}}
	}
	_, _, body := get(t, guarded(p), "/", true)
	txt := text(body)
	for _, want := range []string{
		"Connection1 n0011 ok accepting tunnels for 2 client node(s)",
		"Connection4 n0011 failing the SSH tunnel server is not running",
		"No copying connection is configured",
		"no connection of n0011 copies a database",
		"Attention: 1 failing",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("the page lacks %q:\n%s", want, txt)
		}
	}
}

// The method peers call answers this node's data as JSON, which decodes
// back to the same data (lag included).
func TestRegisterAnswersNodeData(t *testing.T) {
	url := xmlrpcPeer(t, "127.0.16.8", localData())
	c, err := xmlrpc.NewClient(url, xmlrpc.ClientOptions{Username: user, Password: password, Insecure: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var reply string
	if err := c.Call(context.Background(), NodeMethod, &reply); err != nil {
		t.Fatal(err)
	}
	d, err := decodeNodeData([]byte(reply))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.check("n0011", now); err != nil {
		t.Fatal(err)
	}
	if c1 := d.Connections[0]; c1.Lag != 3*time.Hour+5*time.Minute || c1.Cause != localData().Connections[0].Cause || len(d.History["Connection1"]) < 900 {
		t.Errorf("decoded %+v, %d points", c1, len(d.History["Connection1"]))
	}
}

func FuzzNodeData(f *testing.F) {
	seed, _ := json.Marshal(localData())
	f.Add(seed)
	f.Add([]byte(`{"node":"n0012","connections":[{"connection":"<zz>","health":"failing","failing":true,"lag_seconds":-5,"lag_known":true}],"history":{"<zz>":[{"t":"2026-12-06T11:00:00Z","lag":1e300,"bytes":-1}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := decodeNodeData(data)
		if err != nil {
			return
		}
		name := d.Node
		if err := d.check(name, now); err != nil {
			return
		}
		p := newPage([]control.Peer{{Name: name}})
		p.Surface.Self = name
		p.Local = func(context.Context) NodeData { return d }
		p.Backups = nil
		w := httptest.NewRecorder()
		p.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		body := w.Body.String()
		if w.Code != http.StatusOK || strings.Contains(body, "<script") || strings.Contains(body, "<zz") {
			t.Fatalf("unescaped node data in the page")
		}
	})
}
