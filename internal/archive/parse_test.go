package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestParseLISTLine(t *testing.T) {
	tests := []struct {
		line string
		want item
		keep bool
	}{
		{"-rw-r--r--    1 0        0               6 Nov 25 11:54 a.txt", item{name: "a.txt", size: 6, mtime: time.Date(2026, 11, 25, 11, 54, 0, 0, time.UTC)}, true},
		{"drwxr-xr-x    2 0        0            4096 Nov 25 11:54 id_11", item{name: "id_11", dir: true, size: 4096, mtime: time.Date(2026, 11, 25, 11, 54, 0, 0, time.UTC)}, true},
		// proftpd / pure-ftpd owner names; a name with spaces.
		{"-rw-r--r--   1 bsyncftp root     12345 Mar  3  2024 data  with spaces ", item{name: "data  with spaces ", size: 12345, mtime: time.Date(2024, 3, 3, 0, 0, 0, 0, time.UTC)}, true},
		// No group column.
		{"-rw-r--r--   1 owner  77 Jan  2 03:04 f", item{name: "f", size: 77, mtime: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)}, true},
		// A December time seen in January belongs to last year... here a
		// time more than a day ahead of now is last year.
		{"-rw-r--r--   1 0 0 1 Dec 24 10:00 f", item{name: "f", size: 1, mtime: time.Date(2025, 12, 24, 10, 0, 0, 0, time.UTC)}, true},
		{"-rw-r--r--+  1 0 0 1 Nov 26 10:00 acl", item{name: "acl", size: 1, mtime: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)}, true},
		{"drwxr-xr-x    2 0        0            4096 Nov 25 11:54 .", item{}, false},
		{"drwxr-xr-x    2 0        0            4096 Nov 25 11:54 ..", item{}, false},
		{"lrwxrwxrwx    1 0        0               4 Nov 25 11:54 link -> /etc", item{}, false},
		{"prw-r--r--    1 0        0               0 Nov 25 11:54 fifo", item{}, false},
		{"total 12", item{}, false},
	}
	for _, tt := range tests {
		got, keep, err := parseLISTLine(tt.line, now)
		if err != nil || keep != tt.keep || (keep && got != tt.want) {
			t.Errorf("%q: got %+v keep=%v err=%v, want %+v keep=%v", tt.line, got, keep, err, tt.want, tt.keep)
		}
	}
	bad := []string{
		"", "garbage", "total x",
		"-rw-r--r--    1 0        0               6 Nov 25 11:54", // no name
		"-rw-r--r--    1 0        0               6 Foo 25 11:54 x",
		"-rw-r--r--    1 0        0              -6 Nov 25 11:54 x",
		"-rw-r--r--    1 0        0               6 Nov 32 11:54 x",
		"-rw-r--r--    1 0        0               6 Feb 31 11:54 x",
		"-rw-r--r--    1 0        0               6 Nov 25 25:54 x",
		"-rw-r--r--    1 0        0               6 Nov 25 11:54 ../x",
		"-rw-r--r--    1 0        0               6 Nov 25 11:54 a/b",
		"-rw-r--r--    1 0        0               6 Nov 25 11:54 ..",
		"-rw-r--r--    1 0        0               6 Nov 25 11:54 a\x00b",
		"-rw-r--r--    1 0        0               6 Nov 25 11:54 a\rb",
		"lrwxrwxrwx    1 0        0               4 Nov 25 11:54 ../l -> /etc",
		"11-25-26  11:54AM       <DIR>          dosdir",
	}
	for _, line := range bad {
		if _, _, err := parseLISTLine(line, now); !errors.Is(err, ErrUnsafeName) {
			t.Errorf("%q: err %v, want ErrUnsafeName", line, err)
		}
	}
}

func TestParseMLSDLine(t *testing.T) {
	tests := []struct {
		line string
		want item
		keep bool
	}{
		{"modify=20261125115421;perm=adfrw;size=6;type=file;unique=FE00U9841A3;UNIX.mode=0644; b.txt", item{name: "b.txt", size: 6, mtime: time.Date(2026, 11, 25, 11, 54, 21, 0, time.UTC), exact: true}, true},
		{"Type=dir;Modify=20261125115421; id_1", item{name: "id_1", dir: true, mtime: time.Date(2026, 11, 25, 11, 54, 21, 0, time.UTC), exact: true}, true},
		{"type=file;size=0;modify=20261125115421.123; with space", item{name: "with space", mtime: time.Date(2026, 11, 25, 11, 54, 21, 123e6, time.UTC), exact: true}, true},
		{"type=file;size=1; notime", item{name: "notime", size: 1}, true},
		{"type=cdir;modify=20261125115421; .", item{}, false},
		{"type=pdir;modify=20261125115421; ..", item{}, false},
		{"type=OS.unix=slink:/etc;modify=20261125115421; link", item{}, false},
	}
	for _, tt := range tests {
		got, keep, err := parseMLSDLine(tt.line)
		if err != nil || keep != tt.keep || (keep && !(got.name == tt.want.name && got.dir == tt.want.dir && got.size == tt.want.size && got.mtime.Equal(tt.want.mtime) && got.exact == tt.want.exact)) {
			t.Errorf("%q: got %+v keep=%v err=%v, want %+v", tt.line, got, keep, err, tt.want)
		}
	}
	bad := []string{
		"", "garbage", "type=file; nosize", "size=1; notype", "type=file;size=x; f",
		"type=file;size=1;modify=2026; f", "type=file;size=1;modify=20261125115421.x; f",
		"type=file;size=1; ../x", "type=file;size=1; a/b", "type=dir; ..", "type=file;size=1; a\x00",
		"type=file;size=1;broken; f", "type=file;size=1 f",
	}
	for _, line := range bad {
		if _, _, err := parseMLSDLine(line); !errors.Is(err, ErrUnsafeName) {
			t.Errorf("%q: err %v, want ErrUnsafeName", line, err)
		}
	}
}

func TestParseListingSkips(t *testing.T) {
	raw := "type=file;size=1; a\r\ntype=file;size=1; b.tar.gz\r\ntype=dir; ~\r\n\r\n"
	items, err := parseListing([]byte(raw), true, now, true)
	if err != nil || len(items) != 1 || items[0].name != "a" {
		t.Errorf("skip: %+v %v", items, err)
	}
	items, err = parseListing([]byte(raw), true, now, false)
	if err != nil || len(items) != 3 {
		t.Errorf("no skip: %+v %v", items, err)
	}
}

func TestTempNames(t *testing.T) {
	if TempName("a/b") != "a/b.backupsync-part" {
		t.Error(TempName("a/b"))
	}
	for in, want := range map[string]string{"a/b.backupsync-part": "a/b", "x.backupsync-part": "x"} {
		if got, ok := IsTemp(in); !ok || got != want {
			t.Errorf("IsTemp(%q) = %q %v", in, got, ok)
		}
	}
	for _, in := range []string{"a/b", ".backupsync-part", "a/.backupsync-part", "x.backupsync-partx"} {
		if _, ok := IsTemp(in); ok {
			t.Errorf("IsTemp(%q) true", in)
		}
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		raw  string
		port int
		want Endpoint
	}{
		{"ftp://user:pw@10.0.0.1/v0003", 2021, Endpoint{Host: "10.0.0.1", Port: 2021, User: "user", Password: "pw", Root: "/v0003"}},
		{"ftps://user:pw@host:21/v0003/", 2021, Endpoint{Host: "host", Port: 21, User: "user", Password: "pw", TLS: true, Root: "/v0003"}},
		{"ftp://u:p@ss/w;rd@127.0.0.1:2021/r0001", 0, Endpoint{Host: "127.0.0.1", Port: 2021, User: "u", Password: "p@ss/w;rd", Root: "/r0001"}},
		{"ftp://u%40x:p%2Fq@h:1/", 0, Endpoint{Host: "h", Port: 1, User: "u@x", Password: "p/q", Root: "/"}},
		{"ftp://u:p@[::1]:2021/v1", 0, Endpoint{Host: "::1", Port: 2021, User: "u", Password: "p", Root: "/v1"}},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.raw, tt.port)
		if err != nil || got != tt.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", tt.raw, got, err, tt.want)
		}
	}
	for _, raw := range []string{"http://u:secret@h/v", "ftp://u:secret@/v", "ftp://u:secret@h:99999/v", "ftp://u:secret@h/v", "ftp://h:21/v", "ftp://u:secret@h:x/v", "ftp://u:secret@h:21/v\r\n"} {
		_, err := ParseURL(raw, 0)
		if err == nil {
			t.Errorf("ParseURL(%q) accepted", raw)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURL error shows the password: %v", err)
		}
	}
}

func TestEndpointString(t *testing.T) {
	ep := Endpoint{Host: "127.0.0.1", Port: 2021, User: "admin", Password: "s3cret", Root: "/v0003"}
	if got := ep.String(); got != "ftp://admin:***@127.0.0.1:2021/v0003" {
		t.Errorf("String() = %q", got)
	}
	ep.TLS, ep.Password = true, ""
	if got := ep.String(); got != "ftps://admin@127.0.0.1:2021/v0003" {
		t.Errorf("String() = %q", got)
	}
	if s := fmt.Sprintf("%v %+v", ep, Endpoint{Password: "s3cret"}); strings.Contains(s, "s3cret") {
		// %+v of the struct prints fields; String wins for %v and %+v.
		t.Errorf("formatting shows the password: %s", s)
	}
}

func TestIsTransient(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&textproto.Error{Code: 421, Msg: "closing"}, true},
		{&textproto.Error{Code: 450, Msg: "busy"}, true},
		{&textproto.Error{Code: 425, Msg: "no data connection"}, true},
		{&textproto.Error{Code: 500, Msg: "OOPS: child died"}, true}, // vsftpd's session process failed
		{&textproto.Error{Code: 550, Msg: "no such file"}, false},
		{&textproto.Error{Code: 530, Msg: "login incorrect"}, false},
		{&Error{Op: "read", Err: &textproto.Error{Code: 553, Msg: "x"}}, false},
		{errors.Join(&textproto.Error{Code: 550, Msg: "x"}, syscall.ECONNRESET), true},
		{io.EOF, true},
		{io.ErrUnexpectedEOF, true},
		{fmt.Errorf("x: %w", syscall.ECONNRESET), true},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{os.ErrDeadlineExceeded, true},
		{context.Canceled, false},
		{errors.Join(context.Canceled, io.EOF), false},
		{context.DeadlineExceeded, false},
		{&Error{Err: &fullError{err: &textproto.Error{Code: 452, Msg: "full"}}}, false},
		{ErrUnsafeName, false},
		{fmt.Errorf("%w: x", ErrSizeMismatch), true},
		{errors.New("something else"), false},
	}
	for _, tt := range tests {
		if got := IsTransient(tt.err); got != tt.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	v := &Volume{ep: Endpoint{Host: "h", Port: 1, User: "u", Password: "pw"}}
	err := v.wrap("publish", "a/b", &textproto.Error{Code: 552, Msg: "Quota exceeded"})
	if !errors.Is(err, ErrVolumeFull) || !strings.HasPrefix(err.Error(), "destination volume full: publish a/b on ftp://u:***@h:1: 552") {
		t.Errorf("552: %v", err)
	}
	err = v.wrap("publish", "a/b", &textproto.Error{Code: 451, Msg: "No space left on device"})
	if !errors.Is(err, ErrVolumeFull) {
		t.Errorf("451 no space: %v", err)
	}
}
