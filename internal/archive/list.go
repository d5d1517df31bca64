package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Entry is a file in a listing.
type Entry struct {
	// Path is slash-separated and relative to the volume root, e.g.
	// "DB/id_11/level_0/node_0/file". It never contains "..".
	Path    string
	Size    int64
	ModTime time.Time // UTC
	// Exact is true for MLSD times (to the second). False for ls-style
	// LIST times: to the minute for recent files, and only a date (at
	// least six months old) for older ones.
	Exact bool
}

// Listing is one node's part of a database's backup tree.
type Listing struct {
	Files []Entry // sorted by Path; includes temporary files (see IsTemp)
	// Dirs holds every directory listed, relative to the volume root and
	// sorted: the database directory, its id_*/level_* directories (also
	// those without a node_<n>), node_<n> and every directory below it.
	Dirs []string
}

// maxDepth bounds recursion below node_<n> (a hostile server could present
// endless directories).
const maxDepth = 32

var (
	idRe    = regexp.MustCompile(`^id_[0-9]+$`)
	levelRe = regexp.MustCompile(`^level_[0-9]+$`)
)

// defaultListConns is Options.ListConns' default. Every connection is a
// login, and a vsftpd login costs more than many listings: a no-op cycle
// over a 5,000-file tree (76 directories a side, loopback, 2 cores) took
// 0.40, 0.43-0.47, 0.52-0.57, 0.63-0.68 and 0.76-0.80 s with 1, 2, 4, 6 and
// 8 listing connections a side. Two keep a second listing in flight for
// links with a long round trip, where one would wait on each in turn.
const defaultListConns = 2

// ListNode lists <database>/id_*/level_*/node_<node>/ recursively, with up
// to Options.ListConns directories listed in parallel. A missing database
// directory is an empty listing; a missing or unreadable volume root is an
// error (ErrRootUnavailable). Entries ending in ".tar.gz" and entries named "~"
// are skipped at every level, as are symbolic links and special files;
// names other than id_<n> and level_<n> are ignored where those are
// expected. Any entry whose name could escape the tree, and any listing line
// that cannot be parsed, fails the whole listing with ErrUnsafeName: a
// listing is complete or it is an error. A directory removed while the tree
// is listed (a set expiring) is left out, not an error; a database
// directory created meanwhile (another node's first publish) is listed.
func (v *Volume) ListNode(ctx context.Context, database string, node int) (Listing, error) {
	if err := checkName(database); err != nil || node < 0 {
		return Listing{}, v.wrap("list", database, fmt.Errorf("%w: database %q node %d", ErrBadPath, database, node))
	}
	// The database directory is listed straight away. Only when that fails
	// or shows no directory does the root tell a missing database (an empty
	// listing) from a missing volume (ErrRootUnavailable) and from a file in
	// the database's place: servers answer a LIST of a missing directory
	// with an empty listing or an error, and a LIST of a file with the file.
	// That saves one round trip per listing.
	top, err := v.listOne(ctx, database)
	if err != nil || !slices.ContainsFunc(top, func(it item) bool { return it.dir }) {
		present, rerr := v.hasDir(ctx, database)
		switch {
		case rerr != nil:
			return Listing{}, v.wrap("list", "", rerr)
		case err != nil && !looksMissing(err):
			return Listing{}, v.wrap("list", database, err)
		case !present:
			return Listing{}, nil
		default:
			// The directory may have appeared between the two requests:
			// another node's first publish creates it. List it again.
			if top, err = v.listOne(ctx, database); err != nil {
				return Listing{}, v.wrap("list", database, err)
			}
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &walker{v: v, ctx: ctx, cancel: cancel, node: "node_" + strconv.Itoa(node),
		sem: make(chan struct{}, v.opt.ListConns)}
	w.dirs = append(w.dirs, database)
	w.wg.Add(1)
	w.expand(database, 1, top)
	w.wg.Wait()
	if w.err != nil {
		return Listing{}, w.err
	}
	sort.Slice(w.files, func(i, j int) bool { return w.files[i].Path < w.files[j].Path })
	sort.Strings(w.dirs)
	return Listing{Files: w.files, Dirs: w.dirs}, nil
}

// hasDir reports whether the volume root holds the directory name; an
// error means the root itself is missing or unreadable.
func (v *Volume) hasDir(ctx context.Context, name string) (bool, error) {
	testHookBeforeList("")
	var top []item
	err := v.withConn(ctx, func(c *conn) error {
		if err := c.sc.ChangeDir(v.ep.Root); err != nil {
			return asRootError(err)
		}
		var err error
		top, err = v.listDir(c, "")
		return asRootError(err)
	}, always)
	for _, it := range top {
		if it.name == name && it.dir {
			return true, err
		}
	}
	return false, err
}

// walker lists a tree with one goroutine per directory; sem bounds how
// many list at once.
type walker struct {
	v      *Volume
	ctx    context.Context
	cancel context.CancelFunc
	node   string
	sem    chan struct{}
	wg     sync.WaitGroup

	mu    sync.Mutex
	files []Entry
	dirs  []string
	err   error
}

func (w *walker) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
		w.cancel()
	}
}

// visit lists dir (volume-relative) at depth 1 (database), 2 (id_),
// 3 (level_), 4 and more (node_<n> and below).
func (w *walker) visit(dir string, depth int) {
	defer w.wg.Done()
	select {
	case w.sem <- struct{}{}:
	case <-w.ctx.Done():
		return
	}
	if w.ctx.Err() != nil { // another directory failed meanwhile
		<-w.sem
		return
	}
	testHookBeforeList(dir)
	items, err := w.v.listOne(w.ctx, dir)
	if err != nil && looksMissing(err) && w.ctx.Err() == nil && w.vanished(dir, depth) {
		// Deleted since its parent was listed (a set expired meanwhile):
		// the tree without it is what the volume holds now.
		<-w.sem
		w.forget(dir)
		return
	}
	<-w.sem
	if err != nil {
		w.fail(w.v.wrap("list", dir, err))
		return
	}
	w.wg.Add(1)
	w.expand(dir, depth, items)
}

// looksMissing reports whether err is what servers answer for the listing
// of a missing directory: a 550, or vsftpd's "failed to open directory".
// A hostile or truncated listing is never taken for a missing directory.
func looksMissing(err error) bool {
	return errors.Is(err, ErrUnreadableDir) || replyCode(err) == 550
}

// vanished reports whether dir, at depth 2 or more, whose listing failed,
// is gone: its parent lists without it, or is gone itself. A parent that
// cannot be listed either (a dropped connection, an unreadable volume)
// leaves the failure standing.
func (w *walker) vanished(dir string, depth int) bool {
	if depth < 2 {
		return false
	}
	parent := path.Dir(dir)
	items, err := w.v.listOne(w.ctx, parent)
	if err != nil {
		return w.ctx.Err() == nil && w.vanished(parent, depth-1)
	}
	return !slices.ContainsFunc(items, func(it item) bool { return it.dir && it.name == path.Base(dir) })
}

// forget takes a vanished directory back out of the listing.
func (w *walker) forget(dir string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dirs = slices.DeleteFunc(w.dirs, func(d string) bool { return d == dir || strings.HasPrefix(d, dir+"/") })
}

// testHookBeforeList runs before ListNode lists a directory below the
// database's (dir relative to the volume) or the volume's root (""); tests
// set it to change the tree at that moment.
var testHookBeforeList = func(dir string) {}

// expand records the entries of dir, listed at depth, and visits its
// subdirectories.
func (w *walker) expand(dir string, depth int, items []item) {
	defer w.wg.Done()
	var subdirs []string
	w.mu.Lock()
	for _, it := range items {
		p := dir + "/" + it.name
		if it.dir {
			switch {
			case depth == 1 && !idRe.MatchString(it.name),
				depth == 2 && !levelRe.MatchString(it.name),
				depth == 3 && it.name != w.node:
				continue
			}
			w.dirs = append(w.dirs, p)
			subdirs = append(subdirs, p)
		} else if depth >= 4 {
			w.files = append(w.files, Entry{Path: p, Size: it.size, ModTime: it.mtime, Exact: it.exact})
		}
	}
	w.mu.Unlock()
	if depth+1 > maxDepth && len(subdirs) > 0 {
		w.fail(w.v.wrap("list", dir, fmt.Errorf("%w: tree deeper than %d levels", ErrUnsafeName, maxDepth)))
		return
	}
	for _, d := range subdirs {
		w.wg.Add(1)
		go w.visit(d, depth+1)
	}
}

// item is one parsed listing line.
type item struct {
	name  string
	dir   bool
	size  int64
	mtime time.Time
	exact bool
}

// listOne lists one directory on a pooled connection (retried as any
// idempotent operation).
func (v *Volume) listOne(ctx context.Context, dir string) ([]item, error) {
	var items []item
	err := v.withConn(ctx, func(c *conn) error {
		var err error
		items, err = v.listDir(c, dir)
		return err
	}, always)
	return items, err
}

// listDir lists one directory on c and parses the raw lines itself
// (jlaffaye drops lines it cannot parse). Entries that are not data
// ("." "..", links, special files, *.tar.gz, "~") are left out.
func (v *Volume) listDir(c *conn, dir string) ([]item, error) {
	return v.listDirRaw(c, dir, true)
}

// listDirRaw is listDir; skip=false keeps names that are not backup data.
func (v *Volume) listDirRaw(c *conn, dir string, skip bool) ([]item, error) {
	mlsd := c.sc.IsTimePreciseInList()
	c.captureDataOnly()
	c.captureReplies()
	_, err := c.sc.List(v.abs(dir))
	replies := c.stopCaptureReplies()
	raw, capErr := c.stopCaptureData()
	if err != nil {
		return nil, err
	}
	if capErr != nil {
		return nil, capErr
	}
	// The final 226 may say the listing is not what it seems: vsftpd's
	// "Transfer done (but failed to open directory)." comes with no entries,
	// pure-ftpd's "Output truncated to 10000 matches" with the first 10,000.
	switch last := lastReply(replies); {
	case strings.Contains(last, "failed to open directory"):
		return nil, fmt.Errorf("%w: the server replied %.200q", ErrUnreadableDir, last)
	case strings.Contains(strings.ToLower(last), "truncated"):
		return nil, fmt.Errorf("%w: the server replied %.200q", ErrListingTruncated, last)
	}
	items, err := parseListing(raw, mlsd, time.Now(), skip)
	if err != nil {
		return nil, err
	}
	// vsftpd falls back to listing the parent filtered by the name when it
	// cannot open a directory: the "contents" are the directory's own entry.
	// The tree never nests a directory in one of the same name.
	if len(items) == 1 && items[0].name == path.Base(v.abs(dir)) {
		return nil, fmt.Errorf("%w: its listing shows only %q itself", ErrUnreadableDir, items[0].name)
	}
	return items, nil
}

// lastReply is the last final reply line ("226 ...") of a transcript, or
// its last line if it has none. Over FTPS the transcript also holds the
// commands and the listing's data, and the final reply may have been read
// before the data; no data line starts with three digits and a space.
func lastReply(replies []byte) string {
	lines := strings.Split(strings.TrimRight(string(replies), "\r\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); isFinalReply(l) {
			return l
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

func isFinalReply(l string) bool {
	return len(l) >= 4 && l[0] >= '1' && l[0] <= '5' && l[1] >= '0' && l[1] <= '9' && l[2] >= '0' && l[2] <= '9' && l[3] == ' '
}

func (c *conn) stopCaptureData() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.capture.Bytes()
	c.capture = nil
	return b, c.capErr
}

// parseListing parses a whole MLSD or LIST response; with skip it leaves
// out names that are not backup data.
func parseListing(raw []byte, mlsd bool, now time.Time, skip bool) ([]item, error) {
	var out []item
	for _, line := range bytes.Split(raw, []byte("\n")) {
		s := strings.TrimSuffix(string(line), "\r")
		if s == "" {
			continue
		}
		var (
			it   item
			keep bool
			err  error
		)
		if mlsd {
			it, keep, err = parseMLSDLine(s)
		} else {
			it, keep, err = parseLISTLine(s, now)
		}
		if err != nil {
			return nil, err
		}
		if keep && !(skip && skipName(it.name)) {
			out = append(out, it)
		}
	}
	return out, nil
}

// skipName reports names that are not backup data.
func skipName(name string) bool {
	return name == "~" || strings.HasSuffix(name, ".tar.gz")
}

// checkName accepts a single path component that cannot escape its
// directory and prints as itself: no control character (below 0x20, DEL,
// C1 U+0080-U+009F) and valid UTF-8, so that a name shown in a log, STATUS
// or on a terminal cannot move the cursor, recolour or hide text.
func checkName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("%w: name %q", ErrUnsafeName, name)
	case strings.ContainsAny(name, "/\\"), strings.Contains(name, ".."):
		return fmt.Errorf("%w: name %q", ErrUnsafeName, name)
	case hasControl(name):
		return fmt.Errorf("%w: name %q has a control character or is not UTF-8: rename or remove it on the archive volume", ErrUnsafeName, name)
	}
	return nil
}

// hasControl reports whether s holds a control character (C0, DEL, C1) or
// a byte that is not UTF-8.
func hasControl(s string) bool {
	if !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		if r < 0x20 || r >= 0x7f && r <= 0x9f {
			return true
		}
	}
	return false
}

// DisplayName returns s, a name or path or a text that holds one, as it
// may be shown in a log, STATUS or on a terminal: unchanged when every
// character is printable (strconv.IsPrint: letters, marks, numbers,
// punctuation, symbols and the ASCII space), otherwise with each other one
// written as a Go escape: control characters and bytes that are not UTF-8
// as \xNN, invisible and bidirectional formatting characters as \uNNNN.
// ListNode refuses names with control characters; DisplayName is for what
// is shown anyway (a server's reply, a path from elsewhere).
func DisplayName(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1, r < utf8.RuneSelf && !strconv.IsPrint(r):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case strconv.IsPrint(r):
			b.WriteString(s[i : i+size])
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += size
	}
	return b.String()
}

// parseMLSDLine parses "fact=value;fact=value; name" (RFC 3659). keep is
// false for entries that are not files or directories.
func parseMLSDLine(line string) (it item, keep bool, err error) {
	facts, name, ok := strings.Cut(line, " ")
	if !ok || !strings.HasSuffix(facts, ";") && facts != "" {
		return it, false, fmt.Errorf("%w: MLSD line %.200q", ErrUnsafeName, line)
	}
	typ := ""
	sizeSeen := false
	for _, f := range strings.Split(facts, ";") {
		if f == "" {
			continue
		}
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			return it, false, fmt.Errorf("%w: MLSD fact %q in line %.200q", ErrUnsafeName, f, line)
		}
		switch strings.ToLower(k) {
		case "type":
			typ = strings.ToLower(val)
		case "size":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 0 {
				return it, false, fmt.Errorf("%w: MLSD size in line %.200q", ErrUnsafeName, line)
			}
			it.size, sizeSeen = n, true
		case "modify":
			t, err := parseMLSDTime(val)
			if err != nil {
				return it, false, fmt.Errorf("%w: MLSD modify in line %.200q", ErrUnsafeName, line)
			}
			it.mtime, it.exact = t, true
		}
	}
	switch typ {
	case "cdir", "pdir":
		return it, false, nil
	case "dir":
		it.dir = true
	case "file":
		if !sizeSeen {
			return it, false, fmt.Errorf("%w: MLSD file without size: %.200q", ErrUnsafeName, line)
		}
	case "":
		return it, false, fmt.Errorf("%w: MLSD line without type: %.200q", ErrUnsafeName, line)
	default:
		// Links (OS.unix=slink...) and special files are not data, but
		// their names must still be safe.
		if err := checkName(name); err != nil && name != "." && name != ".." {
			return it, false, err
		}
		return it, false, nil
	}
	if err := checkName(name); err != nil {
		return it, false, err
	}
	it.name = name
	return it, true, nil
}

func parseMLSDTime(s string) (time.Time, error) {
	if len(s) < 14 {
		return time.Time{}, errors.New("short time")
	}
	t, err := time.Parse("20060102150405", s[:14])
	if err != nil {
		return t, err
	}
	if rest := s[14:]; rest != "" {
		if rest[0] != '.' || len(rest) < 2 {
			return t, errors.New("bad fraction")
		}
		frac := rest[1:]
		for _, r := range frac {
			if r < '0' || r > '9' {
				return t, errors.New("bad fraction")
			}
		}
		ns, _ := strconv.Atoi((frac + "000000000")[:9])
		t = t.Add(time.Duration(ns))
	}
	return t.UTC(), nil
}

var months = map[string]time.Month{
	"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
	"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}

var (
	clockRe = regexp.MustCompile(`^([0-9]{1,2}):([0-9]{2})$`)
	yearRe  = regexp.MustCompile(`^[0-9]{4}$`)
)

// parseLISTLine parses an ls-style line:
//
//	drwxr-xr-x    2 0        0            4096 Nov 25 11:54 name
//	-rw-r--r--    1 owner    group       12345 Mar  3  2024 name with spaces
//
// (the group column may be missing). "total N" lines are skipped. keep is
// false for "." "..", links and special files. Times are UTC: to the minute
// for recent files (the year is the latest one that does not put the time
// more than a day ahead of now), a date for files six months old or more.
func parseLISTLine(line string, now time.Time) (it item, keep bool, err error) {
	bad := func() (item, bool, error) {
		return item{}, false, fmt.Errorf("%w: LIST line %.200q", ErrUnsafeName, line)
	}
	if strings.HasPrefix(line, "total ") {
		if _, err := strconv.Atoi(strings.TrimSpace(line[6:])); err == nil {
			return it, false, nil
		}
	}
	if len(line) < 10 || !strings.ContainsRune("-dlpscb", rune(line[0])) {
		return bad()
	}
	// Tokenise, remembering where each token ends.
	type tok struct {
		s   string
		end int
	}
	var toks []tok
	for i := 0; i < len(line) && len(toks) < 9; {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		j := i
		for j < len(line) && line[j] != ' ' {
			j++
		}
		if j > i {
			toks = append(toks, tok{line[i:j], j})
		}
		i = j
	}
	// Find: size month day time-or-year, then exactly one space and the
	// name. Size is at index 3 (no group) or 4.
	for si := 3; si <= 4 && si+3 < len(toks); si++ {
		size, err := strconv.ParseInt(toks[si].s, 10, 64)
		if err != nil || size < 0 {
			continue
		}
		mon, ok := months[strings.ToLower(toks[si+1].s)]
		if !ok {
			continue
		}
		day, err := strconv.Atoi(toks[si+2].s)
		if err != nil || day < 1 || day > 31 {
			continue
		}
		tt := toks[si+3]
		if tt.end >= len(line) || line[tt.end] != ' ' {
			continue
		}
		name := line[tt.end+1:]
		var mtime time.Time
		if m := clockRe.FindStringSubmatch(tt.s); m != nil {
			h, _ := strconv.Atoi(m[1])
			mi, _ := strconv.Atoi(m[2])
			if h > 23 || mi > 59 {
				continue
			}
			mtime = time.Date(now.Year(), mon, day, h, mi, 0, 0, time.UTC)
			if mtime.After(now.Add(24 * time.Hour)) {
				mtime = time.Date(now.Year()-1, mon, day, h, mi, 0, 0, time.UTC)
			}
		} else if yearRe.MatchString(tt.s) {
			y, _ := strconv.Atoi(tt.s)
			mtime = time.Date(y, mon, day, 0, 0, 0, 0, time.UTC)
		} else {
			continue
		}
		if mtime.Day() != day {
			continue // e.g. Feb 31
		}
		switch line[0] {
		case 'l':
			// "name -> target": not data, but a name that escapes is
			// still refused.
			n, _, _ := strings.Cut(name, " -> ")
			if err := checkName(n); err != nil {
				return item{}, false, err
			}
			return it, false, nil
		case 'd', '-':
		default:
			return it, false, nil
		}
		if (name == "." || name == "..") && line[0] == 'd' {
			return it, false, nil
		}
		if err := checkName(name); err != nil {
			return item{}, false, err
		}
		return item{name: name, dir: line[0] == 'd', size: size, mtime: mtime}, true, nil
	}
	return bad()
}
