package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// serverBlock is a server connection; name picks its name.
func serverBlock(name string) string { return name + "\n{\nSSH = server\n}\n" }

// clientBlock is a client connection to db; name picks its name.
func clientBlock(name, db string) string {
	return strings.Replace(strings.Replace(client, "Connection1", name, 1), "exa_db1", db, 1)
}

var uploadTime = time.Date(2026, 12, 6, 1, 20, 0, 0, time.UTC)

func TestMerge(t *testing.T) {
	handWritten := "# the connections of cluster A, written by hand\n\n" +
		"# pairing with EDU01\n" + serverBlock("Connection1")
	for _, tc := range []struct {
		name    string
		current string
		upload  string
		want    MergeResult // Problems compared by count only
		// conns is what the merged file holds: name → database ("" for a
		// server), in file order.
		conns []string
		// sources: name → want Origin prefix.
		sources  map[string]string
		contains []string // lines the merged file must hold
		problems int
	}{
		{
			name: "first upload into no file", current: "", upload: serverBlock("Connection1"),
			want:    MergeResult{Added: []string{"Connection1"}},
			conns:   []string{"Connection1="},
			sources: map[string]string{"Connection1": "uploaded 2026-12-06T01:20:00Z (file sha256 "},
		},
		{
			name: "a second pairing keeps the first", current: handWritten, upload: clientBlock("Connection3", "edu03db"),
			want:     MergeResult{Added: []string{"Connection3"}, Kept: []string{"Connection1"}},
			conns:    []string{"Connection1=", "Connection3=edu03db"},
			sources:  map[string]string{"Connection1": "written in /etc/c.cfg line 4", "Connection3": "uploaded "},
			contains: []string{"# the connections of cluster A, written by hand", "# pairing with EDU01"},
		},
		{
			name: "an upload replaces the block it names in place, comments and all", current: handWritten + "\n" + clientBlock("Connection3", "old"),
			upload:   "# new EDU01 pairing\n" + strings.Replace(serverBlock("CONNECTION1"), "SSH = server", "SSH = server\nVerbose = true", 1),
			want:     MergeResult{Replaced: []string{"CONNECTION1"}, Kept: []string{"Connection3"}},
			conns:    []string{"CONNECTION1=", "Connection3=old"},
			sources:  map[string]string{"CONNECTION1": "uploaded ", "Connection3": "written in /etc/c.cfg line 11"},
			contains: []string{"# the connections of cluster A, written by hand", "# new EDU01 pairing", "Verbose = true"},
		},
		{
			name: "the removal form", current: handWritten + "\n" + clientBlock("Connection3", "edu03db"),
			upload:  "Connection3\n{\nREMOVE = true\n}\nConnection9 {\nremove = TRUE\n}\n",
			want:    MergeResult{Kept: []string{"Connection1"}, Removed: []string{"Connection3"}, Absent: []string{"Connection9"}},
			conns:   []string{"Connection1="},
			sources: map[string]string{"Connection1": "written in "},
		},
		{
			name: "removing the last connection leaves an empty file", current: serverBlock("Connection1"),
			upload: "Connection1 {\nREMOVE = true\n}\n",
			want:   MergeResult{Removed: []string{"Connection1"}},
		},
		{
			name: "uploading the same file again replaces it with itself", current: "",
			upload:   serverBlock("Connection1") + serverBlock("Connection2"),
			want:     MergeResult{Added: []string{"Connection1", "Connection2"}},
			conns:    []string{"Connection1=", "Connection2="},
			sources:  map[string]string{"Connection2": "uploaded 2026-12-06T01:20:00Z (file sha256 ", "Connection1": "uploaded "},
			contains: []string{"connection 1 of 2)", "connection 2 of 2)"},
		},
		{
			name: "a broken block is replaced", current: serverBlock("Connection1") + "Connection2\n{\nSSH = sever\n}\n",
			upload: serverBlock("connection2"),
			want:   MergeResult{Replaced: []string{"connection2"}, Kept: []string{"Connection1"}},
			conns:  []string{"Connection1=", "connection2="},
		},
		{
			name: "a broken block kept is a problem", current: serverBlock("Connection1") + "Connection2\n{\nSSH = sever\n}\n",
			upload: serverBlock("Connection3"), problems: 1,
			want:  MergeResult{Added: []string{"Connection3"}, Kept: []string{"Connection1", "Connection2"}},
			conns: nil, // does not parse
		},
		{
			name: "a block without its closing brace is replaced whole", current: "Connection1\n{\nSSH = server\nConnection2\n{\nSSH = server\n}\n",
			upload: serverBlock("Connection1"),
			want:   MergeResult{Replaced: []string{"Connection1"}, Kept: []string{"Connection2"}},
			conns:  []string{"Connection1=", "Connection2="},
		},
		{
			name: "a source tag in the upload is not copied", current: "",
			upload:  "# backupsync-source: uploaded long ago\n" + serverBlock("Connection1"),
			want:    MergeResult{Added: []string{"Connection1"}},
			conns:   []string{"Connection1="},
			sources: map[string]string{"Connection1": "uploaded 2026-12-06T01:20:00Z"},
		},
		{
			name: "CRLF and BOM on both sides", current: "\ufeff" + strings.ReplaceAll(serverBlock("Connection1"), "\n", "\r\n"),
			upload: "\ufeff" + strings.ReplaceAll(serverBlock("Connection2"), "\n", "\r\n"),
			want:   MergeResult{Added: []string{"Connection2"}, Kept: []string{"Connection1"}},
			conns:  []string{"Connection1=", "Connection2="},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, err := ParseUpload("up.cfg", []byte(tc.upload))
			if err != nil {
				t.Fatalf("ParseUpload: %v", err)
			}
			merged, res := Merge([]byte(tc.current), up, uploadTime)
			if (len(res.Problems) > 0) != (tc.problems > 0) {
				t.Errorf("problems %v, want some: %v", res.Problems, tc.problems > 0)
			}
			res.Problems = nil
			if !equalResult(res, tc.want) {
				t.Errorf("result %+v, want %+v", res, tc.want)
			}
			for _, l := range tc.contains {
				if !strings.Contains(string(merged), l+"\n") {
					t.Errorf("merged file lacks %q:\n%s", l, merged)
				}
			}
			conns, err := ParseConnections("/etc/c.cfg", merged)
			if tc.problems > 0 {
				if err == nil {
					t.Errorf("the merged file parses, though a kept block is broken:\n%s", merged)
				}
				return
			}
			if err != nil {
				t.Fatalf("merged file does not parse: %v\n%s", err, merged)
			}
			var got []string
			for _, c := range conns {
				got = append(got, c.Name+"="+c.Database)
				if want, ok := tc.sources[c.Name]; ok && !strings.HasPrefix(c.Origin(), want) {
					t.Errorf("%s: origin %q, want %q…", c.Name, c.Origin(), want)
				}
			}
			if !slices.Equal(got, tc.conns) {
				t.Errorf("merged file holds %v, want %v:\n%s", got, tc.conns, merged)
			}
			// Uploading the same file again, later, changes nothing.
			again, res2 := Merge(merged, up, uploadTime.Add(time.Hour))
			if string(again) != string(merged) {
				t.Errorf("a second merge changed the file:\n%s\nto\n%s", merged, again)
			}
			if len(res2.Added)+len(res2.Replaced) != 0 || len(res2.Unchanged) != len(up.Connections) {
				t.Errorf("second merge: %+v", res2)
			}
		})
	}
}

func equalResult(a, b MergeResult) bool {
	return slices.Equal(a.Added, b.Added) && slices.Equal(a.Replaced, b.Replaced) && slices.Equal(a.Unchanged, b.Unchanged) && slices.Equal(a.Kept, b.Kept) &&
		slices.Equal(a.Removed, b.Removed) && slices.Equal(a.Absent, b.Absent)
}

// TestMergeSameBlockOtherFile: the same block in another file is replaced
// (its source tag names the new file).
func TestMergeSameBlockOtherFile(t *testing.T) {
	first, _ := ParseUpload("", []byte(serverBlock("Connection1")))
	second, _ := ParseUpload("", []byte(serverBlock("Connection1")+serverBlock("Connection2")))
	merged, _ := Merge(nil, first, uploadTime)
	_, res := Merge(merged, second, uploadTime)
	if !slices.Equal(res.Replaced, []string{"Connection1"}) || len(res.Unchanged) != 0 {
		t.Errorf("%+v", res)
	}
}

func TestMergeSourceTag(t *testing.T) {
	up, err := ParseUpload("", []byte(serverBlock("Connection1")+clientBlock("Connection2", "db")))
	if err != nil {
		t.Fatal(err)
	}
	merged, _ := Merge(nil, up, uploadTime)
	conns, err := ParseConnections("c.cfg", merged)
	if err != nil {
		t.Fatal(err)
	}
	want := "uploaded 2026-12-06T01:20:00Z (file sha256 " + up.SHA256[:12] + ", connection 2 of 2)"
	if conns[1].Source != want || conns[1].Origin() != want {
		t.Errorf("source %q, want %q", conns[1].Source, want)
	}
	if strings.Contains(conns[1].Source, secret) {
		t.Error("the source tag holds the password")
	}
}

func TestParseUploadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"a name twice in one upload", serverBlock("Connection1") + serverBlock("connection1"), `connection "connection1" is defined twice (first at line 1)`},
		{"defined and removed in one upload", serverBlock("Connection1") + "Connection1 {\nREMOVE = true\n}\n", "is defined twice"},
		{"REMOVE with other keys", "Connection1 {\nREMOVE = true\nSSH = server\n}\n", `connection "Connection1" says REMOVE = true, which removes it`},
		{"REMOVE = false", "Connection1 {\nREMOVE = false\n}\n", `REMOVE is "false": write REMOVE = true`},
		{"an empty file", "# nothing\n", "the file holds no connection block"},
		{"an empty block is no removal", "Connection1\n{\n}\n", "needs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseUpload("up.cfg", []byte(tc.src))
			var ds Diagnostics
			if !errors.As(err, &ds) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	// In the connections file itself, REMOVE is no key.
	_, err := ParseConnections("c.cfg", []byte("Connection1 {\nREMOVE = true\n}\n"))
	if err == nil || !strings.Contains(err.Error(), "only in a file sent with UPLOAD_CONFIG") {
		t.Errorf("REMOVE in a connections file: %v", err)
	}
}

// FuzzMerge: whatever an upload and the current file hold, Merge never
// panics, and when both are valid the merged file is valid and holds the
// kept connections and the upload's, each once.
func FuzzMerge(f *testing.F) {
	f.Add([]byte(serverBlock("Connection1")), []byte(clientBlock("Connection3", "db")))
	f.Add([]byte(client+serverBlock("Connection2")), []byte("Connection2 {\nREMOVE = true\n}\n"))
	f.Add([]byte("Connection1\n{\nSSH = server\n"), []byte("# c\nconnection1\n{\nSSH = server\n}\n"))
	f.Fuzz(func(t *testing.T, current, upload []byte) {
		up, err := ParseUpload("up.cfg", upload)
		if err != nil {
			return
		}
		merged, res := Merge(current, up, uploadTime)
		before, err := ParseConnections("c.cfg", current)
		if err != nil {
			return
		}
		after, err := ParseConnections("c.cfg", merged)
		if err != nil {
			t.Fatalf("two valid files merged into an invalid one: %v\ncurrent:\n%s\nupload:\n%s\nmerged:\n%s", err, current, upload, merged)
		}
		if len(after) != len(before)+len(res.Added)-len(res.Removed) {
			t.Fatalf("%d connections before, %+v, %d after", len(before), res, len(after))
		}
	})
}
