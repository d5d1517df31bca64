package sync

import (
	"path"
	"strconv"
	"strings"
)

// Exasol's archive layout: <DB>/id_<n>/level_<L>/node_<i>/<files>.

// A SetKey names one backup set, "<DB>/id_<n>/level_<L>".
type SetKey string

// order is the set's backup id and level ("DB/id_11/level_0" → 11, 0);
// keys come from locate, so both parse.
func (k SetKey) order() (id, level int) {
	parts := strings.Split(string(k), "/")
	if len(parts) == 3 {
		id, _ = numbered(parts[1], "id_")
		level, _ = numbered(parts[2], "level_")
	}
	return id, level
}

// location is where a path sits in the layout.
type location struct {
	set   SetKey
	id    int
	level int
	node  int
	rest  string // below node_<i>
}

// locate parses p ("DB/id_11/level_0/node_0/file"). ok is false for a path
// outside database db's layout.
func locate(db, p string) (loc location, ok bool) {
	parts := strings.SplitN(p, "/", 5)
	if len(parts) != 5 || parts[0] != db || parts[4] == "" {
		return loc, false
	}
	var err error
	if loc.id, err = numbered(parts[1], "id_"); err != nil {
		return loc, false
	}
	if loc.level, err = numbered(parts[2], "level_"); err != nil {
		return loc, false
	}
	if loc.node, err = numbered(parts[3], "node_"); err != nil {
		return loc, false
	}
	loc.set = SetKey(path.Join(parts[0], parts[1], parts[2]))
	loc.rest = parts[4]
	return loc, true
}

func numbered(s, prefix string) (int, error) {
	if !strings.HasPrefix(s, prefix) {
		return 0, strconv.ErrSyntax
	}
	n, err := strconv.Atoi(s[len(prefix):])
	if err != nil || n < 0 {
		return 0, strconv.ErrSyntax
	}
	return n, nil
}

// isMetadata reports whether a file makes its backup set visible as complete:
// it is copied after every data file of the set.
func isMetadata(p string) bool {
	return strings.HasPrefix(path.Base(p), "metadata")
}

// notBackupData reports names that DESIGN §1 says are not backup data.
func notBackupData(p string) bool {
	base := path.Base(p)
	return strings.HasSuffix(base, ".tar.gz") || base == "~"
}
