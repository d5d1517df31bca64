package config

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"unicode/utf8"
)

var connectionName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// ReadConnections reads a connections file (see ParseConnections).
func ReadConnections(path string) ([]Connection, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read connections: %w", err)
	}
	return ParseConnections(path, src)
}

// ParseConnections parses the legacy BackupSync connection format:
//
//	# a comment (only at the start of a line)
//	Connection1
//	{
//	DATABASE_NAME = exa_db1
//	…
//	}
//
// The opening brace may also end the name line. Keys are case-insensitive,
// values run to the end of the line and are trimmed. CRLF line ends, a UTF-8
// BOM, tabs and blank lines are accepted.
//
// On any problem it returns Diagnostics holding every problem found, each
// located in file; no diagnostic ever contains a password.
//
// A comment line "# backupsync-source: TEXT" above a block (UPLOAD_CONFIG
// writes one, see Merge) sets the connection's Source to TEXT. A block that
// says REMOVE = true is an error here: that form only means something in an
// uploaded file (ParseUpload).
func ParseConnections(file string, src []byte) ([]Connection, error) {
	p := parser{file: file}
	p.parse(src)
	if len(p.diags) > 0 {
		return nil, p.diags.sorted()
	}
	return p.conns, nil
}

// A line is one line of the source, its text without the line end, and the
// offset of its first non-blank character.
type line struct {
	num    int
	text   string // trimmed
	indent int    // characters before text
}

type block struct {
	name    string
	line    int
	col     int
	first   int    // first line of the comments directly above the name line, else line
	end     int    // line of the closing brace; 0 while open (see segments)
	source  string // the text of a "# backupsync-source:" comment above it
	remove  bool   // REMOVE = true (ParseUpload only)
	assigns []assign
	closed  bool
	// attempted holds keys that a malformed line seems to set, so that the
	// block is not also told that it lacks them.
	attempted map[string]bool
	braceLine int
}

type assign struct {
	key, value string
	line       int
	keyCol     int
	valueCol   int
	raw        string // the untrimmed line, to turn value byte offsets into columns
	valueByte  int    // byte offset of value in raw
}

type parser struct {
	file  string
	diags Diagnostics
	conns []Connection

	allowRemove bool     // REMOVE = true blocks are removals (an upload)
	removes     []string // names of the REMOVE = true blocks, in file order
	blocks      []*block // every block found, for the merge
	lines       int      // lines in the source
}

func (p *parser) errorf(ln, col int, format string, args ...any) {
	p.diags = append(p.diags, Diagnostic{File: p.file, Line: ln, Col: col, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) parse(src []byte) {
	src = bytes.TrimPrefix(src, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(src) {
		// Report the first bad line; the rest still parses byte-wise.
		for i, l := range strings.Split(string(src), "\n") {
			if !utf8.ValidString(l) {
				p.errorf(i+1, 1, "line is not valid UTF-8")
				break
			}
		}
	}
	var (
		cur      *block // the block being read
		pending  *block // a name line waiting for its '{'
		blocks   []*block
		rawLines = strings.Split(string(src), "\n")
		// The run of comment lines just read outside a block: where it
		// starts, and the source tag it holds.
		commentFrom = 0
		tag         string
	)
	p.lines = len(rawLines)
	defer func() { p.blocks = blocks }()
	for i, raw := range rawLines {
		raw = strings.TrimSuffix(raw, "\r")
		ln := i + 1
		text := strings.Trim(raw, " \t\r\f\v")
		if text == "" || strings.HasPrefix(text, "#") {
			if cur == nil && pending == nil {
				switch {
				case text == "":
					commentFrom, tag = 0, ""
				default:
					if commentFrom == 0 {
						commentFrom = ln
					}
					if t, ok := sourceTag(text); ok {
						tag = t
					}
				}
			}
			continue
		}
		indent := utf8.RuneCountInString(raw[:strings.Index(raw, text)])
		col := indent + 1

		if pending != nil {
			if text == "{" {
				cur, pending = pending, nil
				cur.braceLine = ln
				continue
			}
			p.errorf(pending.line, pending.col+utf8.RuneCountInString(pending.name), "expected '{' after connection name %q, on the same or the next line", pending.name)
			if strings.Contains(text, "=") { // read on as if the brace were there
				cur, pending = pending, nil
			} else {
				pending = nil
			}
		}

		if cur == nil {
			switch {
			case text == "}":
				p.errorf(ln, col, "'}' without an open connection block")
			case strings.HasPrefix(text, "{"):
				p.errorf(ln, col, "'{' without a connection name: write the name (e.g. Connection1) on the line before")
			case strings.Contains(text, "="):
				k, _, _ := strings.Cut(text, "=")
				p.errorf(ln, col, "%s is outside a connection block: put it between 'Name {' and '}'", strings.TrimSpace(k))
			default:
				name, brace := strings.CutSuffix(text, "{")
				name = strings.TrimRight(name, " \t")
				b := &block{name: name, line: ln, col: col, first: ln, source: tag}
				if commentFrom > 0 {
					b.first = commentFrom
				}
				commentFrom, tag = 0, ""
				if !connectionName.MatchString(name) {
					p.errorf(ln, col, "connection name %q: use letters, digits, '_', '.' and '-' only", redactLine(name))
				}
				blocks = append(blocks, b)
				if brace {
					cur = b
					cur.braceLine = ln
				} else {
					pending = b
				}
			}
			continue
		}

		// Inside a block.
		if text == "}" {
			cur.closed, cur.end = true, ln
			cur = nil
			continue
		}
		if strings.HasPrefix(text, "}") {
			p.errorf(ln, col+1, "unexpected text after '}': put it on its own line")
			cur.closed, cur.end = true, ln
			cur = nil
			continue
		}
		k, v, ok := strings.Cut(text, "=")
		if !ok {
			if strings.HasSuffix(text, "{") || (i+1 < len(rawLines) && nextText(rawLines[i+1:]) == "{") {
				p.errorf(cur.line, cur.col, "connection %q has no closing '}' before the next block at line %d", cur.name, ln)
				cur.closed = true
				name, brace := strings.CutSuffix(text, "{")
				b := &block{name: strings.TrimSpace(name), line: ln, col: col, first: ln}
				blocks = append(blocks, b)
				cur = nil
				if brace {
					cur = b
				} else {
					pending = b
				}
				continue
			}
			p.errorf(ln, col, "expected KEY = value, found %q", redactLine(text))
			cur.attempt(text)
			continue
		}
		key := strings.TrimRight(k, " \t")
		if key == "" {
			p.errorf(ln, col, "a key is missing before '='")
			continue
		}
		if strings.ContainsAny(key, " \t") {
			p.errorf(ln, col, "expected KEY = value, found %q before '='", redactLine(key))
			cur.attempt(key)
			continue
		}
		valueByte := strings.Index(raw, text) + len(k) + 1
		valueByte += len(v) - len(strings.TrimLeft(v, " \t"))
		cur.assigns = append(cur.assigns, assign{
			key: key, value: strings.TrimSpace(v), line: ln, keyCol: col,
			valueCol: utf8.RuneCountInString(raw[:valueByte]) + 1, raw: raw, valueByte: valueByte,
		})
	}
	if pending != nil {
		p.errorf(pending.line, pending.col+utf8.RuneCountInString(pending.name), "expected '{' after connection name %q", pending.name)
	}
	if cur != nil && !cur.closed {
		p.errorf(cur.line, cur.col, "connection %q is not closed: add '}' after its last key", cur.name)
	}

	seen := map[string]int{}
	for _, b := range blocks {
		if first, dup := seen[strings.ToLower(b.name)]; dup {
			p.errorf(b.line, b.col, "connection %q is defined twice (first at line %d): names must be unique", b.name, first)
			continue
		}
		seen[strings.ToLower(b.name)] = b.line
		if p.removal(b) {
			continue
		}
		if c, ok := p.connection(b); ok {
			p.conns = append(p.conns, c)
		}
	}
}

// attempt records that a malformed line seems meant to set the key text
// names, or one close to it.
func (b *block) attempt(text string) {
	if b.attempted == nil {
		b.attempted = map[string]bool{}
	}
	for _, guess := range []string{text, firstWord(text), strings.Join(strings.Fields(text), "_")} {
		if k := suggestKey(guess); k != "" {
			b.attempted[strings.ToUpper(k)] = true
		}
	}
}

func firstWord(s string) string {
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i]
	}
	return s
}

func nextText(lines []string) string {
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") {
			return t
		}
	}
	return ""
}

// connection validates one block's keys against the format in keys.
func (p *parser) connection(b *block) (Connection, bool) {
	before := len(p.diags)
	c := defaults(b.name, p.file, b.line)
	c.Source = b.source

	byKey := map[*key]assign{}
	var order []*key
	for _, a := range b.assigns {
		k, ok := lookupKey(a.key)
		if !ok {
			msg := fmt.Sprintf("unknown key %q in connection %q", redactLine(a.key), b.name)
			if s := suggestKey(a.key); s != "" {
				msg += fmt.Sprintf("; did you mean %s?", s)
				b.attempt(s)
			}
			p.errorf(a.line, a.keyCol, "%s", msg)
			continue
		}
		if first, dup := byKey[k]; dup {
			p.errorf(a.line, a.keyCol, "%s is set twice in connection %q (first at line %d)", k.name, b.name, first.line)
			continue
		}
		byKey[k] = a
		order = append(order, k)
	}

	// The role decides which keys belong; read SSH first. A misspelt SSH
	// value leaves the role unknown: the keys are then checked for their
	// values only, so that the misspelling is the block's one problem
	// instead of a list of keys a guessed role would need or refuse.
	roleKnown := true
	if ssh, ok := lookupKey("SSH"); ok {
		if a, set := byKey[ssh]; set {
			n := len(p.diags)
			p.apply(&c, ssh, a)
			roleKnown = len(p.diags) == n
		}
	}
	for _, k := range order {
		if k.name == "SSH" {
			continue
		}
		a := byKey[k]
		if roleKnown && !k.accepts(c.Role) {
			p.errorf(a.line, a.keyCol, "%s does not belong in connection %q with SSH = %s: a server only accepts tunnels; set the copy keys on the client cluster", k.name, b.name, c.Role)
			continue
		}
		p.apply(&c, k, a)
	}
	for i := range keys {
		k := &keys[i]
		if _, set := byKey[k]; !set && roleKnown && k.requires(c.Role) && !b.attempted[strings.ToUpper(k.name)] {
			p.errorf(b.line, b.col, "connection %q needs %s (SSH = %s)", b.name, k.name, c.Role)
		}
	}
	return c, len(p.diags) == before
}

func (p *parser) apply(c *Connection, k *key, a assign) {
	if a.value == "" {
		p.errorf(a.line, a.valueCol, "%s has no value", k.name)
		return
	}
	if err := k.set(c, a.value); err != nil {
		col := a.valueCol
		if ve, ok := err.(*valueError); ok && ve.at > 0 && a.valueByte+ve.at <= len(a.raw) {
			col = utf8.RuneCountInString(a.raw[:a.valueByte+ve.at]) + 1
		}
		p.errorf(a.line, col, "%s", err.Error())
	}
}

// redactLine shortens a line that is quoted in an error and hides anything
// that could be a URL's password.
func redactLine(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[:i] + "://…"
	}
	if utf8.RuneCountInString(s) > 40 {
		s = string([]rune(s)[:40]) + "…"
	}
	return s
}

// suggestKey returns the known key closest to name, if it is a near miss.
func suggestKey(name string) string {
	best, bestDist := "", 3
	for _, k := range keys {
		if d := editDistance(strings.ToUpper(name), strings.ToUpper(k.name)); d < bestDist {
			best, bestDist = k.name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
