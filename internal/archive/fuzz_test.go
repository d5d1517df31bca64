package archive

import (
	"strings"
	"testing"
)

// checkItem holds what any accepted listing entry must satisfy, whatever
// the server sent.
func checkItem(t *testing.T, line string, it item) {
	t.Helper()
	if err := checkName(it.name); err != nil {
		t.Fatalf("line %q: accepted unsafe name %q", line, it.name)
	}
	if strings.ContainsAny(it.name, "/\\\x00\r\n") || strings.Contains(it.name, "..") || hasControl(it.name) {
		t.Fatalf("line %q: accepted name %q", line, it.name)
	}
	if it.size < 0 {
		t.Fatalf("line %q: negative size", line)
	}
}

func FuzzParseLISTLine(f *testing.F) {
	for _, s := range []string{
		"-rw-r--r--    1 0        0               6 Nov 25 11:54 a.txt",
		"drwxr-xr-x    2 0        0            4096 Nov 25 11:54 id_11",
		"-rw-r--r--   1 bsyncftp root     12345 Mar  3  2024 data with spaces",
		"lrwxrwxrwx    1 0        0               4 Nov 25 11:54 link -> /etc",
		"total 12",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		it, keep, err := parseLISTLine(line, now)
		if err == nil && keep {
			checkItem(t, line, it)
		}
		// Whole responses: every accepted entry is safe.
		items, err := parseListing([]byte(line+"\r\n"+line), false, now, true)
		if err == nil {
			for _, it := range items {
				checkItem(t, line, it)
			}
		}
	})
}

func FuzzParseMLSDLine(f *testing.F) {
	for _, s := range []string{
		"modify=20261125115421;perm=adfrw;size=6;type=file;unique=FE00U9841A3; b.txt",
		"type=dir;modify=20261125115421; id_1",
		"type=cdir; .",
		"type=file;size=0;modify=20261125115421.123; with space",
		"type=OS.unix=slink:/etc; link",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		it, keep, err := parseMLSDLine(line)
		if err == nil && keep {
			checkItem(t, line, it)
			if !it.mtime.IsZero() && !it.exact {
				t.Fatalf("line %q: MLSD time not exact", line)
			}
		}
		items, err := parseListing([]byte(line+"\n"+line), true, now, true)
		if err == nil {
			for _, it := range items {
				checkItem(t, line, it)
			}
		}
	})
}
