package config

import (
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// HostPlaceholder stands for a node's IP address in LOCAL_URL and REMOTE_URL.
const HostPlaceholder = "%s"

// An ArchiveURL is a LOCAL_URL or REMOTE_URL: an FTP URL of an archive volume
// whose host is the placeholder %s, filled in per node.
type ArchiveURL struct {
	Scheme   string // "ftp" or "ftps" (explicit TLS)
	User     string // decoded
	Password string // decoded; never printed, see Masked
	Port     int    // 0 when the URL names none: the settings' ftp_default_port applies
	Path     string // "/v0003" or "/v0003/sub", always starting with the volume
}

// Volume is the archive volume the URL points into ("v0003").
func (u ArchiveURL) Volume() string {
	v, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	return v
}

// Masked is the URL as written, with the password replaced by "***". It is
// the only form of an ArchiveURL that may reach a log, a status or an error.
func (u ArchiveURL) Masked() string {
	return u.format(HostPlaceholder, "***", u.Port)
}

// Resolve fills in host for %s and defaultPort where the URL names no port,
// and returns the result in masked form together with the address to dial.
func (u ArchiveURL) Resolve(host string, defaultPort int) (masked, addr string) {
	port := u.Port
	if port == 0 {
		port = defaultPort
	}
	return u.format(host, "***", port), net.JoinHostPort(host, strconv.Itoa(port))
}

func (u ArchiveURL) format(host, password string, port int) string {
	var b strings.Builder
	b.WriteString(u.Scheme)
	b.WriteString("://")
	b.WriteString(url.PathEscape(u.User))
	b.WriteString(":")
	b.WriteString(password)
	b.WriteString("@")
	if strings.Contains(host, ":") { // IPv6 literal
		host = "[" + host + "]"
	}
	b.WriteString(host)
	if port != 0 {
		b.WriteString(":" + strconv.Itoa(port))
	}
	b.WriteString(u.Path)
	return b.String()
}

var volumeName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// parseArchiveURL parses s. Errors carry the byte offset in s that they
// concern and never contain the password.
func parseArchiveURL(s string) (ArchiveURL, error) {
	var u ArchiveURL
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return u, valueErrorf(0, "not a URL: expected ftp://USER:PASSWORD@%%s/VOLUME")
	}
	switch strings.ToLower(scheme) {
	case "ftp", "ftps":
		u.Scheme = strings.ToLower(scheme)
	default:
		return u, valueErrorf(0, "scheme %q is not supported: use ftp:// or ftps://", scheme)
	}
	restAt := len(scheme) + 3
	if n := strings.Count(s, HostPlaceholder); n != 1 {
		if n == 0 {
			return u, valueErrorf(restAt, "the host must be %%s (replaced by each node's IP), found none")
		}
		return u, valueErrorf(strings.LastIndex(s, HostPlaceholder), "%%s must appear exactly once, as the host; found it %d times", n)
	}
	at := strings.Index(rest, "@"+HostPlaceholder)
	if at < 0 {
		at := restAt + strings.Index(rest, HostPlaceholder)
		if !strings.Contains(rest, "@") {
			return u, valueErrorf(restAt, "user and password missing: expected ftp://USER:PASSWORD@%%s/VOLUME")
		}
		return u, valueErrorf(at, "%%s must be the host, right after USER:PASSWORD@")
	}
	userinfo, hostAndPath := rest[:at], rest[at+1+len(HostPlaceholder):]
	user, password, ok := strings.Cut(userinfo, ":")
	if !ok || user == "" {
		return u, valueErrorf(restAt, "user and password missing: expected ftp://USER:PASSWORD@%%s/VOLUME")
	}
	if password == "" {
		return u, valueErrorf(restAt+len(user)+1, "password missing after %q:", user)
	}
	var err error
	if u.User, err = url.PathUnescape(user); err != nil {
		return u, valueErrorf(restAt, "user: bad percent-encoding (write %%25 for a literal %%)")
	}
	if u.Password, err = url.PathUnescape(password); err != nil {
		// The error text of url would quote the password: say it our way.
		return u, valueErrorf(restAt+len(user)+1, "password: bad percent-encoding (write %%25 for a literal %%)")
	}
	afterHost := restAt + at + 1 + len(HostPlaceholder)
	portText, path := "", hostAndPath
	if strings.HasPrefix(hostAndPath, ":") {
		portText, path, _ = strings.Cut(hostAndPath[1:], "/")
		path = "/" + path
		if !strings.Contains(hostAndPath, "/") {
			path = ""
		}
		p, err := strconv.Atoi(portText)
		if err != nil || p < 1 || p > 65535 {
			return u, valueErrorf(afterHost+1, "port %q is not a number from 1 to 65535", portText)
		}
		u.Port = p
	}
	pathAt := afterHost
	if portText != "" {
		pathAt += 1 + len(portText)
	}
	if path == "" || path == "/" {
		return u, valueErrorf(pathAt, "the path must start with the archive volume, e.g. /v0003")
	}
	if !strings.HasPrefix(path, "/") {
		return u, valueErrorf(pathAt, "unexpected %q after the host: expected :PORT or /VOLUME", path)
	}
	u.Path = strings.TrimSuffix(path, "/")
	for _, seg := range strings.Split(u.Path[1:], "/") {
		if !volumeName.MatchString(seg) || seg == "." || seg == ".." {
			return u, valueErrorf(pathAt, "path %q: each part must be a plain name such as v0003", u.Path)
		}
	}
	return u, nil
}
