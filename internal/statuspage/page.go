package statuspage

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	gosync "sync"
	"time"

	"backupsync/internal/confd"
	"backupsync/internal/control"
)

// Defaults of Page's limits.
const (
	DefaultNodeTimeout    = 5 * time.Second
	DefaultBackupsTimeout = 15 * time.Second
	DefaultBackupsMaxAge  = time.Minute
	// MaxDatabases bounds the databases whose backup sets are listed.
	MaxDatabases = 8
	// RefreshSeconds is how often the page reloads itself.
	RefreshSeconds = 60
)

// Page is the status page of one daemon. Set its fields before it serves;
// it is safe for concurrent use.
type Page struct {
	// Surface is the daemon's plugin surface: this node (Self), the
	// cluster (Nodes) and the login to the other daemons.
	Surface *control.Surface
	// Local answers this node's data.
	Local func(context.Context) NodeData
	// Backups lists a database's backup sets with their synced state per
	// node (confd.Service.BackupSets); nil shows no backup sets.
	Backups func(ctx context.Context, db string) (sets []confd.BackupSet, problems []string, unconfigured bool)
	// Logger receives what went wrong while the page was made; nil: none.
	Logger *slog.Logger
	// Limits; zero values take the defaults.
	NodeTimeout, BackupsTimeout, BackupsMaxAge time.Duration
	// Now is the clock; nil: time.Now.
	Now func() time.Time

	mu      gosync.Mutex // guards backups
	backups map[string]*backupsEntry
}

// backupsEntry is a database's listing of backup sets, when it was made,
// and the listing under way, if any.
type backupsEntry struct {
	at      time.Time
	value   dbView
	listed  bool          // value holds a listing
	running chan struct{} // closed when the listing under way ends; nil: none
}

// Wrap serves the page for GET and HEAD of "/" and of any path ending in
// "/" and passes every other request (XML-RPC's POST) to next. Put it
// behind the control plane's login, as next is.
func (p *Page) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasSuffix(r.URL.Path, "/") {
			p.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ServeHTTP answers the page. Its work is bounded: the nodes are asked in
// parallel within NodeTimeout, the backup sets listed within
// BackupsTimeout.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v := p.view(r.Context())
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, v); err != nil {
		p.log().Error("status page not rendered", "error", err)
		http.Error(w, "500 Internal Server Error: the status page did not render; see the daemon's log", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// Nothing from anywhere: no script, no image, no frame; inline CSS only.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	h.Set("X-Frame-Options", "DENY")
	if r.Method == http.MethodHead {
		return
	}
	w.Write(buf.Bytes())
}

func (p *Page) log() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

func (p *Page) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// gather asks every node (at most MaxNodes) for its data, in parallel,
// and lists the backup sets of local's databases meanwhile.
func (p *Page) gather(ctx context.Context, now time.Time) ([]answer, []dbView, int) {
	nodes := p.Surface.Nodes
	skipped := 0
	if len(nodes) > MaxNodes {
		nodes, skipped = nodes[:MaxNodes], len(nodes)-MaxNodes
	}
	timeout := orDefault(p.NodeTimeout, DefaultNodeTimeout)
	// This node's data first: it names the databases to list.
	local := p.Local(ctx)
	self := func(context.Context) NodeData { return local }
	dbs := databases(local)
	listed := make(chan []dbView, 1)
	go func() {
		if p.Backups == nil {
			listed <- nil
			return
		}
		listed <- p.listBackups(ctx, dbs, now)
	}()
	answers := make([]answer, len(nodes))
	var wg gosync.WaitGroup
	for i, peer := range nodes {
		wg.Go(func() { answers[i] = askNode(ctx, p.Surface, peer, self, timeout, now) })
	}
	wg.Wait()
	return answers, <-listed, skipped
}

// databases are the databases node's connections copy, sorted, at most
// MaxDatabases.
func databases(node NodeData) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range node.Connections {
		key := strings.ToUpper(c.Database)
		if c.Database == "" || seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, c.Database)
	}
	sortStrings(out)
	if len(out) > MaxDatabases {
		out = out[:MaxDatabases]
	}
	return out
}

// listBackups answers each database's sets. A listing older than
// BackupsMaxAge is shown as it is while a new one runs in the background
// (one per database at a time, within BackupsTimeout, whoever asked), so
// that reloads stay fast when a destination is slow; only a database never
// listed yet waits for its listing.
func (p *Page) listBackups(ctx context.Context, dbs []string, now time.Time) []dbView {
	maxAge := orDefault(p.BackupsMaxAge, DefaultBackupsMaxAge)
	timeout := orDefault(p.BackupsTimeout, DefaultBackupsTimeout)
	p.mu.Lock()
	if p.backups == nil {
		p.backups = map[string]*backupsEntry{}
	}
	// Forget databases no longer asked for.
	for db, e := range p.backups {
		if !containsString(dbs, db) && e.running == nil {
			delete(p.backups, db)
		}
	}
	waits := make([]chan struct{}, len(dbs))
	for i, db := range dbs {
		e := p.backups[db]
		if e == nil {
			e = &backupsEntry{}
			p.backups[db] = e
		}
		fresh := e.listed && now.Sub(e.at) < maxAge && now.Sub(e.at) >= 0
		if !fresh && e.running == nil {
			e.running = make(chan struct{})
			go p.refresh(db, e, now, timeout)
		}
		if !e.listed {
			waits[i] = e.running
		}
	}
	p.mu.Unlock()
	for _, w := range waits {
		if w == nil {
			continue
		}
		select {
		case <-w:
		case <-ctx.Done():
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]dbView, len(dbs))
	for i, db := range dbs {
		e := p.backups[db]
		switch {
		case e != nil && e.listed:
			out[i] = e.value
		default:
			out[i] = dbView{Name: db, Problems: []string{"the backup sets are being listed: reload in a few seconds"}}
		}
		if e != nil && e.listed && e.running != nil {
			out[i].Refreshing = true
		}
	}
	return out
}

// refresh lists db's sets into e within timeout.
func (p *Page) refresh(db string, e *backupsEntry, at time.Time, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sets, problems, unconfigured := p.Backups(ctx, db)
	if ctx.Err() != nil {
		problems = append(problems, fmt.Sprintf("the listing did not finish within %s", timeout))
	}
	v := backupsView(db, sets, problems, unconfigured, at)
	p.mu.Lock()
	defer p.mu.Unlock()
	// A listing cut short is shown once, then tried again at the next load.
	e.value, e.listed = v, true
	if ctx.Err() == nil {
		e.at = at
	} else {
		e.at = time.Time{}
	}
	close(e.running)
	e.running = nil
}
