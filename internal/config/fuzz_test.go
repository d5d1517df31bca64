package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// FuzzParseConnections: the parser never panics, every problem it reports
// carries a position inside the input, and a password that parsed into a
// URL never appears in what is printed back.
func FuzzParseConnections(f *testing.F) {
	for _, p := range []string{"../../testdata/seed/client.cfg", "../../testdata/seed/server.cfg"} {
		src, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Add([]byte(client))
	f.Add([]byte("A{\nSTART_CYCLE = TZ=UTC\n}\nB\n{\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		conns, err := ParseConnections("f.cfg", src)
		if err != nil {
			var diags Diagnostics
			if !errors.As(err, &diags) || len(diags) == 0 {
				t.Fatalf("error without diagnostics: %v", err)
			}
			lines := strings.Count(string(src), "\n") + 1
			for _, d := range diags {
				if d.Line < 1 || d.Line > lines || d.Col < 1 || d.File != "f.cfg" {
					t.Fatalf("diagnostic outside the input (%d lines): %v", lines, d)
				}
			}
			return
		}
		out := Format(conns)
		for _, c := range conns {
			for _, pw := range []string{c.LocalURL.Password, c.RemoteURL.Password} {
				if len(pw) > 3 && strings.Contains(out, "@%s") && strings.Contains(out, ":"+pw+"@") {
					t.Fatalf("Format shows password %q", pw)
				}
			}
		}
		if _, err := ParseConnections("again.cfg", []byte(out)); err != nil {
			t.Fatalf("Format output does not parse: %v\n%s", err, out)
		}
	})
}
