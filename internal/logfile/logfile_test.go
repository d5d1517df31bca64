package logfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRotationAndTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log", "plugin.log")
	l, err := Open(p, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range 20 {
		fmt.Fprintf(l, "line %02d\n", i) // 8 bytes each: 12 fit in 100
	}
	got, err := l.Tail(15)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 15 || got[0] != "line 05" || got[14] != "line 19" {
		t.Errorf("tail %q", got)
	}
	if fi, _ := os.Stat(p); fi.Size() > 100 {
		t.Errorf("current file %d bytes, over the limit", fi.Size())
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
}

func TestSecretsAreMasked(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "plugin.log"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Mask("hunter2", "", "pw")
	fmt.Fprintln(l, "login ftp://u:hunter2@127.0.0.1/v0003 failed; pw stays")
	got, _ := l.Tail(5)
	if len(got) != 1 || strings.Contains(got[0], "hunter2") || !strings.Contains(got[0], "u:***@") || !strings.Contains(got[0], "pw stays") {
		t.Errorf("tail %q", got)
	}
}
