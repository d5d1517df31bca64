package archive

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// Names with control characters are refused as ".." and "/" are: the whole
// listing fails with ErrUnsafeName, whatever kind of entry holds the name.
func TestNamesWithControlCharactersAreRefused(t *testing.T) {
	names := []string{
		"evil\x01\x1b[31m\x7f", // the hostile review's file
		"\x1b]0;title\x07",
		"tab\there",
		"del\x7f",
		"c1\u0085next-line", // NEL, as UTF-8
		"c1\u009bcsi",       // CSI, as UTF-8
		"raw-c1\x9b31m",     // CSI as a single byte: not UTF-8
		"latin1-\xe9t\xe9",  // not UTF-8
		"nul\x00",
		"cr\r",
	}
	for _, name := range names {
		for _, line := range []string{
			"-rw-r--r--    1 0        0               6 Nov 25 11:54 " + name,
			"drwxr-xr-x    2 0        0            4096 Nov 25 11:54 " + name,
			"lrwxrwxrwx    1 0        0               4 Nov 25 11:54 " + name + " -> /etc",
		} {
			if _, _, err := parseLISTLine(line, now); !errors.Is(err, ErrUnsafeName) {
				t.Errorf("LIST %q: err %v, want ErrUnsafeName", line, err)
			}
			if _, err := parseListing([]byte("-rw-r--r-- 1 0 0 1 Nov 25 11:54 fine\r\n"+line+"\r\n"), false, now, true); !errors.Is(err, ErrUnsafeName) {
				t.Errorf("LIST listing with %q: err %v, want ErrUnsafeName", line, err)
			}
		}
		for _, line := range []string{
			"type=file;size=6;modify=20261125115421; " + name,
			"type=dir;modify=20261125115421; " + name,
			"type=OS.unix=slink:/etc;modify=20261125115421; " + name,
		} {
			if _, _, err := parseMLSDLine(line); !errors.Is(err, ErrUnsafeName) {
				t.Errorf("MLSD %q: err %v, want ErrUnsafeName", line, err)
			}
			if _, err := parseListing([]byte("type=file;size=1; fine\r\n"+line+"\r\n"), true, now, true); !errors.Is(err, ErrUnsafeName) {
				t.Errorf("MLSD listing with %q: err %v, want ErrUnsafeName", line, err)
			}
		}
		// Skipped names (archives, "~") are refused too: the name is
		// checked before it is skipped.
		if _, err := parseListing([]byte("type=file;size=1; "+name+".tar.gz\r\n"), true, now, true); !errors.Is(err, ErrUnsafeName) {
			t.Errorf("skipped name %q: err %v", name, err)
		}
		// The error shows the name escaped.
		_, _, err := parseMLSDLine("type=file;size=6; " + name)
		if msg := err.Error(); hasControl(msg) || !strings.Contains(msg, "control character") {
			t.Errorf("%q: the error %q is not printable or does not say why", name, msg)
		}
	}
	// Printable names, Unicode included, stay accepted.
	for _, name := range []string{"data_000", "with space", "ünïcode ✓", "日本", "a\u00a0b", "emoji 😀"} {
		if it, keep, err := parseMLSDLine("type=file;size=1; " + name); err != nil || !keep || it.name != name {
			t.Errorf("%q: %+v keep=%v err=%v", name, it, keep, err)
		}
	}
}

func TestDisplayName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"DB/id_1/level_0/node_0/data_000", "DB/id_1/level_0/node_0/data_000"},
		{"with space ünïcode ✓ 😀", "with space ünïcode ✓ 😀"},
		{"evil\x01\x1b[31m\x7f", `evil\x01\x1b[31m\x7f`},
		{"line\nbreak\r\t", `line\x0abreak\x0d\x09`},
		{"c1\u0085", `c1\u0085`},
		{"raw\x9b", `raw\x9b`},
		{"rtl\u202eexe.txt", `rtl\u202eexe.txt`},
		{"zero\u200bwidth", `zero\u200bwidth`},
		{"tag\U000e0041", `tag\U000e0041`},
		{"kept\ufffd", "kept\ufffd"},
		{"", ""},
	} {
		if got := DisplayName(tc.in); got != tc.want {
			t.Errorf("DisplayName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Whatever DisplayName is given, what it returns is printable, and a
// printable input comes back unchanged.
func FuzzDisplayName(f *testing.F) {
	for _, s := range []string{"data_000", "evil\x01\x1b[31m\x7f", "\xff\xfe", "rtl\u202e", "ünïcode"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := DisplayName(s)
		if !utf8.ValidString(out) {
			t.Fatalf("DisplayName(%q) = %q is not UTF-8", s, out)
		}
		printable := true
		for _, r := range s {
			if r == utf8.RuneError || !strconv.IsPrint(r) {
				printable = false
			}
		}
		for _, r := range out {
			if !strconv.IsPrint(r) {
				t.Fatalf("DisplayName(%q) = %q holds %U", s, out, r)
			}
		}
		if printable && out != s {
			t.Fatalf("printable %q came back as %q", s, out)
		}
		if hasControl(s) && out == s {
			t.Fatalf("%q came back unescaped", s)
		}
	})
}
