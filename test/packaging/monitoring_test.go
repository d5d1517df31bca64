package packaging

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const monitoring = root + "/packaging/monitoring"

// promtool returns Prometheus's promtool: from PATH, or where
// test/install-deps.sh unpacks it. Under CI=true its lack fails the test.
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	p := "/opt/backupsync-test/prometheus/usr/bin/promtool"
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("promtool is missing (neither in PATH nor %s): test/install-deps.sh unpacks it", p)
	}
	t.Skip("promtool is missing: test/install-deps.sh unpacks it")
	return ""
}

// TestAlertRules checks the alerting rules with promtool and runs their
// tests (backupsync-alerts.test.yml): each alert fires on the series that
// should raise it, with the labels and texts an admin gets, and not on the
// others.
func TestAlertRules(t *testing.T) {
	p := promtool(t)
	out := run(t, monitoring, p, "check", "rules", "backupsync-alerts.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool check rules:\n%s", out)
	}
	out = run(t, monitoring, p, "test", "rules", "backupsync-alerts.test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules:\n%s", out)
	}
	rules, err := os.ReadFile(filepath.Join(monitoring, "backupsync-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, alert := range []string{"BackupSyncConnectionFailing", "BackupSyncLagHigh", "BackupSyncNoSuccess", "BackupSyncTunnelDown"} {
		if !strings.Contains(string(rules), "alert: "+alert+"\n") {
			t.Errorf("the rules lack %s", alert)
		}
	}
}

// exportedMetrics returns the backupsync_ metric names internal/metrics
// defines (the string literals of its non-test sources).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "internal/metrics/*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("internal/metrics sources: %v", err)
	}
	names := map[string]bool{}
	lit := regexp.MustCompile(`"(backupsync_[a-z0-9_]+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range lit.FindAllStringSubmatch(string(src), -1) {
			names[m[1]] = true
		}
	}
	return names
}

var metricName = regexp.MustCompile(`\bbackupsync_[a-z0-9_]+\b`)

// TestMonitoringNamesRealMetrics fails when the rules or the dashboard query
// a backupsync_ metric that internal/metrics does not export (a rename
// there would silence an alert).
func TestMonitoringNamesRealMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	for _, want := range []string{"backupsync_connection_up", "backupsync_replication_lag_seconds", "backupsync_last_success_timestamp_seconds", "backupsync_tunnel_up"} {
		if !exported[want] {
			t.Errorf("internal/metrics no longer exports %s, which the alerting rules use", want)
		}
	}
	for _, f := range []string{"backupsync-alerts.yml", "backupsync-alerts.test.yml", "backupsync-dashboard.json"} {
		src, err := os.ReadFile(filepath.Join(monitoring, f))
		if err != nil {
			t.Fatal(err)
		}
		used := map[string]bool{}
		for _, name := range metricName.FindAllString(string(src), -1) {
			used[name] = true
			if !exported[name] {
				t.Errorf("%s queries %s, which internal/metrics does not export", f, name)
			}
		}
		if len(used) == 0 {
			t.Errorf("%s names no backupsync metric", f)
		}
	}
}

type dashboard struct {
	UID, Title    string
	SchemaVersion int
	Templating    struct {
		List []struct{ Name, Type string }
	}
	Panels []struct {
		ID          int
		Type, Title string
		Datasource  struct{ Type, UID string }
		GridPos     struct{ X, Y, W, H int }
		Targets     []struct {
			RefID string
			Expr  string
		}
	}
}

// TestDashboard checks the Grafana dashboard: valid JSON, panels that fit
// the 24-column grid with unique ids, each querying the dashboard's
// Prometheus data source, and every query valid PromQL (promtool checks
// them as recording rules, Grafana's variables filled in).
func TestDashboard(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(monitoring, "backupsync-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(src, &d); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
		t.Fatalf("the dashboard lacks uid, title, schemaVersion or panels: %+v", d)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" || vars["connection"] != "query" {
		t.Errorf("the dashboard's variables: %v, want datasource, instance and connection", vars)
	}
	ids := map[int]bool{}
	var exprs []string
	for _, p := range d.Panels {
		if p.Title == "" || (p.Type != "timeseries" && p.Type != "stat") {
			t.Errorf("panel %d: title %q type %q", p.ID, p.Title, p.Type)
		}
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q does not fit the grid: %+v", p.Title, g)
		}
		if p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q queries %+v, not the dashboard's Prometheus variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if q.Expr == "" || q.RefID == "" {
				t.Errorf("panel %q: a query without expr or refId: %+v", p.Title, q)
			}
			exprs = append(exprs, q.Expr)
		}
	}

	// Every query must parse: check them as recording rules.
	p := promtool(t)
	fill := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*", "$connection", ".*")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	sort.Strings(exprs)
	for i, e := range exprs {
		q, _ := json.Marshal(fill.Replace(e)) // a JSON string is a YAML string
		fmt.Fprintf(&rules, "      - record: dashboard:query%d\n        expr: %s\n", i, q)
	}
	f := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(p, "check", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("a dashboard query is not valid PromQL: %v\n%s", err, out)
	}
}
