package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// UPLOAD_CONFIG per pairing. A cluster that pairs with several others gets
// one uploaded file per pairing, as the installation guide wants ("an
// exclusive configuration file" per remote cluster). The connections file
// named by the settings stays the one file every part of the daemon reads;
// an upload is merged into it (Merge):
//
//   - a block the upload defines replaces the block of the same name
//     (names compare case-insensitively) in place, or is appended when the
//     file has none;
//   - a block "Name { REMOVE = true }" in the upload removes that block;
//   - every other block stays as it was written, byte for byte, with its
//     comments: an admin's hand-written file keeps working, and the
//     activation and keys of the connections it holds are not touched.
//
// Each block an upload wrote carries a comment line above it,
//
//	# backupsync-source: uploaded 2026-12-06T01:20:00Z (file sha256 0123456789ab, connection 1 of 2)
//
// which ParseConnections reads back into Connection.Source; a block without
// one was written by hand (Connection.Origin says where).

// sourceTagKey starts the comment that records where a block came from.
const sourceTagKey = "backupsync-source:"

// sourceTag returns the text of a "# backupsync-source: TEXT" comment line
// (text trimmed, starting with '#').
func sourceTag(text string) (string, bool) {
	body := strings.TrimSpace(strings.TrimPrefix(text, "#"))
	if rest, ok := strings.CutPrefix(body, sourceTagKey); ok {
		if rest = strings.TrimSpace(rest); rest != "" {
			return rest, true
		}
	}
	return "", false
}

// removal handles a block holding a REMOVE key and reports whether it did:
// in an upload, "Name { REMOVE = true }" with no other key removes Name;
// anywhere else the key is an error.
func (p *parser) removal(b *block) bool {
	var rm *assign
	for i := range b.assigns {
		if strings.EqualFold(b.assigns[i].key, "REMOVE") {
			rm = &b.assigns[i]
			break
		}
	}
	if rm == nil {
		return false
	}
	if !p.allowRemove {
		p.errorf(rm.line, rm.keyCol, "REMOVE = true removes connection %q only in a file sent with UPLOAD_CONFIG: here, delete the block instead", b.name)
		return true
	}
	if !strings.EqualFold(rm.value, "true") {
		p.errorf(rm.line, rm.valueCol, "REMOVE is %q: write REMOVE = true to remove connection %q, or leave the key out to define it", redactLine(rm.value), b.name)
		return true
	}
	ok := true
	for _, a := range b.assigns {
		if a.line != rm.line {
			p.errorf(a.line, a.keyCol, "connection %q says REMOVE = true, which removes it: a removal takes no other key (delete %s, or delete REMOVE to define the connection)", b.name, redactLine(a.key))
			ok = false
		}
	}
	if ok {
		b.remove = true
		p.removes = append(p.removes, b.name)
	}
	return true
}

// Upload is a file sent with UPLOAD_CONFIG, parsed by ParseUpload.
type Upload struct {
	// Connections are the blocks that define a connection, in file order.
	Connections []Connection
	// Remove names the connections the upload removes: its blocks
	// "Name { REMOVE = true }", in file order.
	Remove []string
	// SHA256 is the file's digest, in hex.
	SHA256 string

	text map[string][]string // lower-case name → the block's lines as written, source tags dropped
}

// ParseUpload parses a file sent with UPLOAD_CONFIG: the format of
// ParseConnections, plus blocks that remove a connection,
//
//	Connection2
//	{
//	REMOVE = true
//	}
//
// which hold no other key. A name may appear once in one upload (defined or
// removed); across uploads the later replaces the earlier (Merge). A file
// without any block is an error: it would change nothing.
func ParseUpload(file string, src []byte) (*Upload, error) {
	p := parser{file: file, allowRemove: true}
	p.parse(src)
	if len(p.diags) == 0 && len(p.blocks) == 0 {
		p.errorf(1, 1, "the file holds no connection block: nothing to upload (a connection is removed by uploading a block Name { REMOVE = true })")
	}
	if len(p.diags) > 0 {
		return nil, p.diags.sorted()
	}
	sum := sha256.Sum256(src)
	up := &Upload{Connections: p.conns, Remove: p.removes, SHA256: hex.EncodeToString(sum[:]), text: map[string][]string{}}
	lines := splitLines(src)
	for _, s := range segments(lines, p.blocks) {
		up.text[strings.ToLower(s.name)] = untagged(lines[s.from-1 : s.to])
	}
	return up, nil
}

// Names returns every connection the upload names: those it defines, then
// those it removes.
func (u *Upload) Names() []string {
	names := make([]string, 0, len(u.Connections)+len(u.Remove))
	for _, c := range u.Connections {
		names = append(names, c.Name)
	}
	return append(names, u.Remove...)
}

// MergeResult says what Merge did, by connection name.
type MergeResult struct {
	// Added, Replaced and Unchanged are the connections the upload
	// defines: new ones, those that replaced a block of the same name, and
	// those whose block the same file uploaded before (left as it was, its
	// source tag included, so that uploading a file again changes nothing).
	Added, Replaced, Unchanged []string
	// Kept are the connections of the file the upload does not name.
	Kept []string
	// Removed are the connections a REMOVE block removed; Absent those it
	// names that the file did not hold (nothing to remove).
	Removed, Absent []string
	// Problems are the current file's diagnostics in the parts Merge kept:
	// what still stops the merged file from loading when the current one
	// did not load. Lines and columns are those of the current file.
	Problems Diagnostics
}

// Merge returns the connections file current (nil: none yet) with the
// upload applied, as the comment at the top of this file describes; blocks
// the upload defines are tagged as uploaded at when. current need not
// parse: its blocks are found by their name lines and braces, a block the
// upload replaces or removes may be broken, and the problems in what is
// kept are returned in MergeResult.Problems (check the result with
// ParseConnections before writing it).
func Merge(current []byte, up *Upload, when time.Time) ([]byte, MergeResult) {
	var res MergeResult
	cur := parser{file: ""}
	cur.parse(current)
	lines := splitLines(current)
	segs := segments(lines, cur.blocks)

	defined := map[string]int{} // lower-case name → index in up.Connections
	for i, c := range up.Connections {
		defined[strings.ToLower(c.Name)] = i
	}
	removed := map[string]bool{}
	for _, n := range up.Remove {
		removed[strings.ToLower(n)] = true
	}
	tagged := func(i int) []string {
		c := up.Connections[i]
		tag := fmt.Sprintf("# %s uploaded %s (file sha256 %s, connection %d of %d)", sourceTagKey,
			when.UTC().Format(time.RFC3339), up.SHA256[:min(12, len(up.SHA256))], i+1, len(up.Connections))
		return append([]string{tag}, up.text[strings.ToLower(c.Name)]...)
	}

	var (
		out     []string
		written = map[string]bool{} // lower-case names already in out, or dropped
		dropped []segment           // segments replaced or removed
		pos     = 1                 // next line of current to copy
	)
	for _, s := range segs {
		out = append(out, lines[pos-1:s.from-1]...)
		pos = s.to + 1
		key := strings.ToLower(s.name)
		if i, ok := defined[key]; ok {
			switch {
			case written[key]:
			case slices.Equal(untagged(lines[s.from-1:s.to]), up.text[key]) &&
				strings.Contains(s.source, "file sha256 "+up.SHA256[:min(12, len(up.SHA256))]+","):
				out = append(out, lines[s.from-1:s.to]...)
				res.Unchanged = append(res.Unchanged, up.Connections[i].Name)
			default:
				out = append(out, tagged(i)...)
				res.Replaced = append(res.Replaced, up.Connections[i].Name)
			}
			written[key] = true
			dropped = append(dropped, s)
			continue
		}
		if removed[key] {
			if !written[key] {
				res.Removed = append(res.Removed, s.name)
				written[key] = true
			}
			dropped = append(dropped, s)
			continue
		}
		out = append(out, lines[s.from-1:s.to]...)
		if !written[key] {
			res.Kept = append(res.Kept, s.name)
			written[key] = true
		}
	}
	out = append(out, lines[pos-1:]...)
	for len(out) > 0 && strings.TrimSpace(out[len(out)-1]) == "" {
		out = out[:len(out)-1]
	}
	for i, c := range up.Connections {
		if written[strings.ToLower(c.Name)] {
			continue
		}
		if len(out) > 0 {
			out = append(out, "")
		}
		out = append(out, tagged(i)...)
		res.Added = append(res.Added, c.Name)
	}
	for _, n := range up.Remove {
		if !written[strings.ToLower(n)] {
			res.Absent = append(res.Absent, n)
		}
	}
	for _, d := range cur.diags.sorted() {
		inDropped := false
		for _, s := range dropped {
			if d.Line >= s.from && d.Line <= s.to {
				inDropped = true
			}
		}
		if !inDropped {
			res.Problems = append(res.Problems, d)
		}
	}
	if len(out) == 0 {
		return nil, res
	}
	return []byte(strings.Join(out, "\n") + "\n"), res
}

// untagged returns lines without source tag comments.
func untagged(lines []string) []string {
	var out []string
	for _, l := range lines {
		if _, isTag := sourceTag(strings.TrimSpace(l)); !isTag {
			out = append(out, l)
		}
	}
	return out
}

// splitLines splits src into lines without their line ends (LF or CRLF)
// and without a UTF-8 BOM; a final line end starts no extra line.
func splitLines(src []byte) []string {
	src = bytes.TrimPrefix(src, []byte("\xef\xbb\xbf"))
	if len(src) == 0 {
		return nil
	}
	lines := strings.Split(strings.TrimSuffix(string(src), "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines
}

// segment is the lines (1-based, inclusive) one block occupies: the comment
// lines directly above its name line, through its closing brace.
type segment struct {
	name     string
	source   string // the block's source tag
	from, to int
}

// segments returns the blocks' segments in file order. A block whose
// closing brace is missing runs to the line before the next block's
// segment, or to the end of the file.
func segments(lines []string, blocks []*block) []segment {
	segs := make([]segment, 0, len(blocks))
	prevTo := 0
	for i, b := range blocks {
		from := max(b.first, prevTo+1)
		to := b.end
		if to == 0 {
			to = len(lines)
			if i+1 < len(blocks) {
				to = blocks[i+1].first - 1
			}
		}
		to = min(max(to, from), len(lines))
		if from > to {
			continue
		}
		segs = append(segs, segment{name: b.name, source: b.source, from: from, to: to})
		prevTo = to
	}
	return segs
}
