package farend

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxPathLen bounds a path in a request.
const maxPathLen = 4096

// checkFile accepts the path of a file a client may publish, read or
// delete: strictly relative and clean, every component free of control
// characters, "/", "\", "..", and inside a node's backup tree:
// <DB>/id_<n>/level_<n>/node_<n>/<name>[/<name>…] (a temporary name of
// archive's is such a name too).
func checkFile(p string) error {
	parts, err := split(p)
	if err != nil {
		return err
	}
	if len(parts) < 5 {
		return fmt.Errorf("%w: %q is not under <database>/id_<n>/level_<n>/node_<n>/", ErrRefused, p)
	}
	return layout(p, parts)
}

// checkDir accepts a directory a client may remove: <DB>/id_<n>,
// <DB>/id_<n>/level_<n>, or one at or below <DB>/id_<n>/level_<n>/node_<n>.
func checkDir(p string) error {
	parts, err := split(p)
	if err != nil {
		return err
	}
	if len(parts) < 2 {
		return fmt.Errorf("%w: %q is not a backup set's directory", ErrRefused, p)
	}
	return layout(p, parts)
}

// checkDatabase accepts a database name for a listing.
func checkDatabase(db string) error {
	_, err := split(db)
	if err == nil && strings.Contains(db, "/") {
		err = fmt.Errorf("%w: database %q", ErrRefused, db)
	}
	return err
}

func split(p string) ([]string, error) {
	if p == "" || len(p) > maxPathLen || strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("%w: %q is not a relative path", ErrRefused, clip(p))
	}
	parts := strings.Split(p, "/")
	for _, s := range parts {
		if !safeName(s) {
			return nil, fmt.Errorf("%w: %q has an unsafe component", ErrRefused, clip(p))
		}
	}
	return parts, nil
}

// layout checks the numbered levels of parts.
func layout(p string, parts []string) error {
	for i, prefix := range []string{"id_", "level_", "node_"} {
		if i+1 >= len(parts) {
			break
		}
		if !numbered(parts[i+1], prefix) {
			return fmt.Errorf("%w: %q is not under <database>/id_<n>/level_<n>/node_<n>/", ErrRefused, clip(p))
		}
	}
	return nil
}

func numbered(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || rest == "" || len(rest) > 18 {
		return false
	}
	_, err := strconv.ParseUint(rest, 10, 64)
	return err == nil
}

// safeName accepts one path component that cannot escape its directory and
// prints as itself.
func safeName(s string) bool {
	if s == "" || s == "." || strings.Contains(s, "..") || strings.ContainsAny(s, "/\\") || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r >= 0x7f && r <= 0x9f {
			return false
		}
	}
	return true
}

// clip shortens a hostile path for an error message; %q escapes the rest.
func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
