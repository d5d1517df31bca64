package config

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// A key is one KEY = value line a connection block may hold. Adding a key to
// the format means adding one entry to keys: the parser, the validation, the
// defaults, the canonical printer and the documentation all read this table.
type key struct {
	name string // canonical spelling; lookups ignore case
	doc  string
	ext  bool // our extension, not a key of the original plugin

	// roles lists the roles that accept the key; required, those that need it.
	roles    []Role
	required []Role

	set        func(c *Connection, value string) error
	setDefault func(c *Connection)
	// format prints the value back canonically, secrets masked; "" omits it.
	format func(c *Connection) string
}

var (
	copying = []Role{RoleClient, RoleDirect}
	anyRole = []Role{RoleClient, RoleDirect, RoleServer}
)

// keys is the connection block format. SSH comes first: the role it sets
// decides which other keys a block may hold.
var keys = []key{
	{
		name: "SSH", doc: "client: copy through an SSH tunnel; server: accept tunnels; none: plain FTP (our extension). Default none.",
		roles: anyRole,
		set: func(c *Connection, v string) error {
			switch strings.ToLower(v) {
			case "client":
				c.Role = RoleClient
			case "server":
				c.Role = RoleServer
			case "none":
				c.Role = RoleDirect
			default:
				if s := suggestRole(v); s != "" {
					return valueErrorf(0, "SSH is %q: did you mean %s? Use client, server or none", v, s)
				}
				return valueErrorf(0, "SSH is %q: use client, server or none", v)
			}
			return nil
		},
		format: func(c *Connection) string { return string(c.Role) },
	},
	{
		name: "DATABASE_NAME", doc: "The database whose backups are copied (the directory under the volume).",
		roles: copying, required: copying,
		set: func(c *Connection, v string) error {
			if !identifier.MatchString(v) {
				return valueErrorf(0, "DATABASE_NAME %q: use letters, digits, '_', '.' and '-' only", v)
			}
			c.Database = v
			return nil
		},
		format: func(c *Connection) string { return c.Database },
	},
	{
		name: "START_CYCLE", doc: "When a cycle starts: 5-field cron, a descriptor (@hourly, @every 5m), optional CRON_TZ=Zone prefix.",
		roles: copying, required: copying,
		set: func(c *Connection, v string) error {
			s, err := parseSchedule(v)
			if err != nil {
				return err
			}
			c.Schedule, c.schedule = v, s
			return nil
		},
		format: func(c *Connection) string { return c.Schedule },
	},
	{
		name: "LOCAL_URL", doc: "This cluster's archive volume: ftp://USER:PASSWORD@%s[:PORT]/VOLUME, %s is this node's IP.",
		roles: copying, required: copying,
		set: func(c *Connection, v string) (err error) {
			c.LocalURL, err = parseArchiveURL(v)
			return err
		},
		format: func(c *Connection) string { return c.LocalURL.Masked() },
	},
	{
		name: "REMOTE_URL", doc: "The remote cluster's archive volume, same form; %s is this node's entry in REMOTE_NODES.",
		roles: copying, required: copying,
		set: func(c *Connection, v string) (err error) {
			c.RemoteURL, err = parseArchiveURL(v)
			return err
		},
		format: func(c *Connection) string { return c.RemoteURL.Masked() },
	},
	{
		name: "REMOTE_NODES", doc: "The remote cluster's nodes, ';'-separated: database node i talks to entry i, then fails over in order.",
		roles: copying, required: copying,
		set: func(c *Connection, v string) (err error) {
			c.RemoteNodes, err = parseNodes(v)
			return err
		},
		format: func(c *Connection) string { return strings.Join(c.RemoteNodes, "; ") },
	},
	{
		name: "Verbose", doc: "true: log every file; false: errors and one summary per cycle. Default false.",
		roles: anyRole,
		set: func(c *Connection, v string) (err error) {
			c.Verbose, err = parseBool("Verbose", v)
			return err
		},
		format: func(c *Connection) string { return strconv.FormatBool(c.Verbose) },
	},
	{
		name: "PARALLEL", ext: true, doc: "Files copied at once, 1 to 64. Default 4.",
		roles:      copying,
		setDefault: func(c *Connection) { c.Parallel = 4 },
		set: func(c *Connection, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 64 {
				return valueErrorf(0, "PARALLEL is %q: use a whole number from 1 to 64", v)
			}
			c.Parallel = n
			return nil
		},
		format: func(c *Connection) string { return strconv.Itoa(c.Parallel) },
	},
	{
		name: "BANDWIDTH_LIMIT", ext: true, doc: "Bytes per second for the whole connection, K/M/G are binary multiples (50M); 0 means no limit. Default 0.",
		roles: copying,
		set: func(c *Connection, v string) (err error) {
			c.BandwidthLimit, err = parseBandwidth(v)
			return err
		},
		format: func(c *Connection) string { return formatBandwidth(c.BandwidthLimit) },
	},
	{
		name: "SETTLE_TIME", ext: true, doc: "How long a file must stay unchanged before it is copied (Go duration). Default 2m.",
		roles:      copying,
		setDefault: func(c *Connection) { c.SettleTime = 2 * time.Minute },
		set: func(c *Connection, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return valueErrorf(0, "SETTLE_TIME is %q: use a duration such as 90s, 2m or 1h", v)
			}
			c.SettleTime = d
			return nil
		},
		format: func(c *Connection) string { return c.SettleTime.String() },
	},
	{
		name: "DELETE", ext: true, doc: "true: delete destination backups that expired at the source. Default true.",
		roles:      copying,
		setDefault: func(c *Connection) { c.Delete = true },
		set: func(c *Connection, v string) (err error) {
			c.Delete, err = parseBool("DELETE", v)
			return err
		},
		format: func(c *Connection) string { return strconv.FormatBool(c.Delete) },
	},
	{
		name: "MAX_DELETE_SETS", ext: true, doc: "At most this many backup sets deleted in one cycle; 0 means no cap. Default 0.",
		roles: copying,
		set: func(c *Connection, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return valueErrorf(0, "MAX_DELETE_SETS is %q: use a whole number, 0 for no cap", v)
			}
			c.MaxDeleteSets = n
			return nil
		},
		format: func(c *Connection) string { return strconv.Itoa(c.MaxDeleteSets) },
	},
}

// KeyDoc is the documentation of one connection key.
type KeyDoc struct {
	Name      string
	Extension bool
	Doc       string
}

// KeyDocs documents every key a connection block may hold, in canonical order.
func KeyDocs() []KeyDoc {
	docs := make([]KeyDoc, len(keys))
	for i, k := range keys {
		docs[i] = KeyDoc{Name: k.name, Extension: k.ext, Doc: k.doc}
	}
	return docs
}

func lookupKey(name string) (*key, bool) {
	for i := range keys {
		if strings.EqualFold(keys[i].name, name) {
			return &keys[i], true
		}
	}
	return nil, false
}

func (k *key) accepts(r Role) bool  { return hasRole(k.roles, r) }
func (k *key) requires(r Role) bool { return hasRole(k.required, r) }

func hasRole(rs []Role, r Role) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// A valueError is a problem at a byte offset inside a value.
type valueError struct {
	at  int
	msg string
}

func (e *valueError) Error() string { return e.msg }

func valueErrorf(at int, format string, args ...any) error {
	return &valueError{at: at, msg: fmt.Sprintf(format, args...)}
}

var identifier = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// validLabel: 1 to 63 letters, digits and hyphens, neither first nor last a
// hyphen (RFC 1123). By hand: the regular expression's {0,61} cost every
// process start a millisecond to compile.
func validLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func parseBool(name, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "yes", "1":
		return true, nil
	case "false", "no", "0":
		return false, nil
	}
	return false, valueErrorf(0, "%s is %q: use true or false", name, v)
}

// parseSchedule validates a START_CYCLE before robfig/cron sees it: the
// library panics on some inputs ("TZ=UTC" with no spec), so the time zone
// prefix is checked here and the parse itself runs under recover.
func parseSchedule(v string) (s cron.Schedule, err error) {
	spec := v
	if strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=") {
		prefix, rest, ok := strings.Cut(spec, " ")
		zone := prefix[strings.Index(prefix, "=")+1:]
		if !ok || strings.TrimSpace(rest) == "" {
			return nil, valueErrorf(0, "START_CYCLE %q: a schedule must follow the time zone, e.g. CRON_TZ=Europe/Berlin 0 2 * * *", v)
		}
		if zone == "" || strings.EqualFold(zone, "local") {
			return nil, valueErrorf(len(prefix)-len(zone), "START_CYCLE: name a time zone after %s, e.g. Europe/Berlin or UTC", prefix[:strings.Index(prefix, "=")+1])
		}
		if _, err := time.LoadLocation(zone); err != nil {
			return nil, valueErrorf(len(prefix)-len(zone), "START_CYCLE: unknown time zone %q", zone)
		}
		spec = prefix + " " + strings.TrimSpace(rest)
	}
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, valueErrorf(0, "START_CYCLE %q is not a valid schedule", v)
		}
	}()
	s, err = cron.ParseStandard(spec)
	if err != nil {
		return nil, valueErrorf(0, "START_CYCLE %q: %v; use 5 fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @every 10m", v, err)
	}
	return s, nil
}

func parseNodes(v string) ([]string, error) {
	var nodes []string
	seen := map[string]bool{}
	at := 0
	for i, part := range strings.Split(v, ";") {
		start := at + len(part) - len(strings.TrimLeft(part, " \t"))
		at += len(part) + 1
		n := strings.TrimSpace(part)
		if n == "" {
			return nil, valueErrorf(start, "REMOTE_NODES entry %d is empty: list nodes as IP1; IP2", i+1)
		}
		if !validHost(n) {
			return nil, valueErrorf(start, "REMOTE_NODES entry %q is neither an IP address nor a host name", n)
		}
		if seen[strings.ToLower(n)] {
			return nil, valueErrorf(start, "REMOTE_NODES lists %q twice", n)
		}
		seen[strings.ToLower(n)] = true
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if !validLabel(l) {
			return false
		}
	}
	// All-numeric dotted names are mistyped IPs, not host names.
	_, err := strconv.Atoi(labels[len(labels)-1])
	return err != nil
}

var bandwidth = regexp.MustCompile(`^([0-9]+)\s*([KMG]?)(i?B)?(/s)?$`)

func parseBandwidth(v string) (int64, error) {
	m := bandwidth.FindStringSubmatch(strings.ToUpper(strings.ReplaceAll(v, "iB", "IB")))
	if m == nil || (m[3] != "" && m[3] != "B" && m[3] != "IB") {
		return 0, valueErrorf(0, "BANDWIDTH_LIMIT is %q: use bytes per second such as 50M, 512K or 0 for no limit", v)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, valueErrorf(0, "BANDWIDTH_LIMIT %q is too large", v)
	}
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30}[m[2]]
	if n > (1<<62)>>shift {
		return 0, valueErrorf(0, "BANDWIDTH_LIMIT %q is too large", v)
	}
	return n << shift, nil
}

func formatBandwidth(n int64) string {
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"G", 30}, {"M", 20}, {"K", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
