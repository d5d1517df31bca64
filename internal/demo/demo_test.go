package demo

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The demo uses 127.0.41.x and 127.0.42.x.
func TestDemoOnce(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := Run(ctx, Options{Out: &out, Once: true}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{"paired Connection1 with backupsyncctl pair", "n0011  node_0  15", "n0012  node_1  15", "md5-identical", "backupsyncctl --insecure --url https://admin:"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "DIFFERS") {
		t.Errorf("a destination differs:\n%s", got)
	}
	dir := regexp.MustCompile(`files in (\S+)`).FindStringSubmatch(got)
	if dir == nil {
		t.Fatal("the demo does not say where its files are")
	}
	if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Errorf("the demo left %s behind: %v", dir[1], err)
	}
}
