package xmlrpc

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/rpc"
	"reflect"
	"strings"
	"testing"
	"time"

	kolo "github.com/kolo/xmlrpc"
)

// tlsServer serves testServer behind basicAuth over TLS, plus a method that
// waits for its caller to give up.
func tlsServer(t *testing.T) *httptest.Server {
	t.Helper()
	s := testServer(io.Discard)
	s.Register("slow", func(ctx context.Context, _ []any) (any, error) {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
		return "late", nil
	})
	mux := http.NewServeMux()
	mux.Handle("/cluster1/", basicAuth(s))
	mux.Handle("/moved/", http.RedirectHandler("/cluster1/", http.StatusMovedPermanently))
	mux.HandleFunc("/html/", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<html><body>hello</body></html>"))
	})
	ts := httptest.NewTLSServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

func withUser(ts *httptest.Server, userinfo, path string) string {
	return strings.Replace(ts.URL, "https://", "https://"+userinfo+"@", 1) + path
}

func newClient(t *testing.T, url string, opts ClientOptions) *Client {
	t.Helper()
	c, err := NewClient(url, opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestClientCalls(t *testing.T) {
	t.Parallel()
	ts := tlsServer(t)
	c := newClient(t, withUser(ts, "admin:s3cret", "/cluster1/"), ClientOptions{Insecure: true})
	ctx := context.Background()
	if c.URL() != ts.URL+"/cluster1/" {
		t.Errorf("URL() = %q", c.URL())
	}

	var row []any
	if err := c.Call(ctx, "callPlugin", &row, "Administration.BackupSync-1.0.1", "n0011", "status", ""); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(row, []any{int64(0), "activated"}) {
		t.Errorf("callPlugin = %#v", row)
	}

	var who string
	if err := c.Call(ctx, "whoami", &who); err != nil || who != "admin" {
		t.Errorf("whoami = %q, %v", who, err)
	}

	// *any receives our decoder's view: every type, nil and bytes intact.
	var v any
	if err := c.Call(ctx, "nested", &v); err != nil {
		t.Fatal(err)
	}
	want, _ := DecodeResponse(strings.NewReader(string(must(EncodeResponse(nestedResult())))))
	if !reflect.DeepEqual(v, want) {
		t.Errorf("nested = %#v\nwant %#v", v, want)
	}

	// A typed reply is filled by kolo/xmlrpc.
	var typed struct {
		Nodes []string  `xmlrpc:"nodes"`
		Big   int64     `xmlrpc:"big"`
		Neg   int       `xmlrpc:"neg"`
		Yes   bool      `xmlrpc:"yes"`
		Pi    float64   `xmlrpc:"pi"`
		When  time.Time `xmlrpc:"when"`
		Spec  string    `xmlrpc:"special"`
		Bytes string    `xmlrpc:"bytes"`
	}
	if err := c.Call(ctx, "nested", &typed); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(typed.Nodes, []string{"n0011", "n0012", "n0013"}) || typed.Big != 1<<40 || typed.Neg != -7 ||
		!typed.Yes || typed.Pi != 3.25 || !typed.When.Equal(mustTime("2026-11-25T12:00:00Z")) ||
		typed.Spec != "<&>]]> \"' \r\n\t é € 😀" || typed.Bytes != "AAEC/v8=" {
		t.Errorf("typed reply = %+v", typed)
	}

	// Every type the client sends arrives as the server decodes it.
	type member struct {
		Name string `xmlrpc:"name"`
		Skip string `xmlrpc:"-"`
	}
	when := mustTime("2026-11-25T13:00:00+01:00")
	var echoed any
	err := c.Call(ctx, "echo", &echoed, 7, int64(1)<<40, uint16(9), true, "s<&>\r\n", 2.5, when, []byte{0, 255},
		[]string{"a"}, map[string]any{"k": []any{1, false}}, member{Name: "n", Skip: "x"}, &who, "")
	if err != nil {
		t.Fatal(err)
	}
	wantEcho := []any{int64(7), int64(1) << 40, int64(9), true, "s<&>\r\n", 2.5, when.UTC(), []byte{0, 255},
		[]any{"a"}, map[string]any{"k": []any{int64(1), false}}, map[string]any{"name": "n"}, "admin", ""}
	if !reflect.DeepEqual(echoed, wantEcho) {
		t.Errorf("echo = %#v\nwant %#v", echoed, wantEcho)
	}
	var types []string
	if err := c.Call(ctx, "types", &types, 1, true, "s", 1.5, when, []byte{1}, map[string]any{}, []any{}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"int64", "bool", "string", "float64", "time.Time", "[]uint8", "map[string]interface {}", "[]interface {}"}; !reflect.DeepEqual(types, want) {
		t.Errorf("types = %v, want %v", types, want)
	}
	if err := c.Call(ctx, "echo", nil); err != nil {
		t.Errorf("nil reply: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestClientFaultsAndErrors(t *testing.T) {
	t.Parallel()
	ts := tlsServer(t)
	ctx := context.Background()
	c := newClient(t, withUser(ts, "admin:s3cret", "/cluster1/"), ClientOptions{Insecure: true})

	for _, tc := range []struct {
		method string
		args   []any
		want   Fault
	}{
		{"zope", nil, Fault{-1, "Unexpected Zope exception: NotFound: n0099"}},
		{"fault42", nil, Fault{42, `custom <fault> & "stuff"`}},
		{"fail", nil, Fault{CodeApplication, "disk full"}},
		{"getNodeLst", nil, Fault{CodeMethodNotFound, `unknown method "getNodeLst"`}},
		{"callPlugin", []any{"p", "n0011", 5}, Fault{CodeInvalidParams, "argument 3 is int, want string"}},
	} {
		err := c.Call(ctx, tc.method, nil, tc.args...)
		var f *Fault
		if !errors.As(err, &f) || *f != tc.want {
			t.Errorf("%s: %v, want %v", tc.method, err, &tc.want)
		}
	}

	t.Run("401 is ErrUnauthorized and never shows the password", func(t *testing.T) {
		for _, url := range []string{ts.URL + "/cluster1/", withUser(ts, "admin:WRONGPW", "/cluster1/")} {
			err := newClient(t, url, ClientOptions{Insecure: true}).Call(ctx, "whoami", nil)
			var he *HTTPError
			if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &he) || he.StatusCode != 401 {
				t.Errorf("%v", err)
			}
			if !strings.Contains(err.Error(), "wrong user or password") || strings.Contains(err.Error(), "WRONGPW") {
				t.Errorf("error text %q", err)
			}
		}
		// Options override the URL's credentials.
		c := newClient(t, withUser(ts, "admin:WRONGPW", "/cluster1/"), ClientOptions{Insecure: true, Username: "admin", Password: "s3cret"})
		if err := c.Call(ctx, "whoami", nil); err != nil {
			t.Errorf("credentials from options: %v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		c := newClient(t, withUser(ts, "admin:s3cret", "/cluster1/"), ClientOptions{Insecure: true, Timeout: 200 * time.Millisecond})
		start := time.Now()
		err := c.Call(ctx, "slow", nil)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer from") {
			t.Errorf("%v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("timed out after %v", d)
		}
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(100*time.Millisecond, cancel)
		if err := newClient(t, withUser(ts, "admin:s3cret", "/cluster1/"), ClientOptions{Insecure: true}).Call(cctx, "slow", nil); !errors.Is(err, context.Canceled) {
			t.Errorf("canceled: %v", err)
		}
	})
	t.Run("HTTP errors", func(t *testing.T) {
		var he *HTTPError
		err := newClient(t, ts.URL+"/moved/", ClientOptions{Insecure: true}).Call(ctx, "whoami", nil)
		if !errors.As(err, &he) || he.StatusCode != 301 || he.Location != "/cluster1/" {
			t.Errorf("redirect: %v", err)
		}
		err = newClient(t, ts.URL+"/nowhere", ClientOptions{Insecure: true}).Call(ctx, "whoami", nil)
		if !errors.As(err, &he) || he.StatusCode != 404 || errors.Is(err, ErrUnauthorized) {
			t.Errorf("404: %v", err)
		}
		err = newClient(t, ts.URL+"/html/", ClientOptions{Insecure: true}).Call(ctx, "whoami", nil)
		if err == nil || !strings.Contains(err.Error(), "invalid answer") {
			t.Errorf("HTML answer: %v", err)
		}
		err = newClient(t, withUser(ts, "admin:s3cret", "/cluster1/"), ClientOptions{Insecure: true, MaxResponseBytes: 100}).Call(ctx, "nested", nil)
		if err == nil || !strings.Contains(err.Error(), "larger than 100 bytes") {
			t.Errorf("answer over MaxResponseBytes: %v", err)
		}
		err = c.Call(ctx, "echo", nil, strings.Repeat("x", MaxBodyBytes))
		if !errors.As(err, &he) || he.StatusCode != 413 {
			t.Errorf("413: %v", err)
		}
		var wrong []int
		if err := c.Call(ctx, "nested", &wrong); err == nil || !strings.Contains(err.Error(), "does not fit") {
			t.Errorf("reply of the wrong type: %v", err)
		}
	})
	t.Run("arguments kolo cannot send are refused before sending", func(t *testing.T) {
		for name, args := range map[string][]any{
			"nil":             {nil},
			"nil pointer":     {(*int)(nil)},
			"nested nil":      {[]any{1, nil}},
			"NaN":             {[]any{func() float64 { var z float64; return z / z }()}},
			"escaped key":     {map[string]any{"a<b": 1}},
			"channel":         {make(chan int)},
			"year 10000":      {time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
			"non-string keys": {map[int]int{1: 1}},
		} {
			if err := c.Call(ctx, "echo", nil, args...); err == nil || !strings.Contains(err.Error(), "argument 1") {
				t.Errorf("%s: %v", name, err)
			}
		}
		for _, m := range []string{"", "a b", "a<b>", "naïve"} {
			if err := c.Call(ctx, m, nil); err == nil || !strings.Contains(err.Error(), "method name") {
				t.Errorf("method %q: %v", m, err)
			}
		}
	})
}

func TestClientTLS(t *testing.T) {
	t.Parallel()
	ts := tlsServer(t)
	ctx := context.Background()
	url := withUser(ts, "admin:s3cret", "/cluster1/")
	der := ts.Certificate().Raw
	sum := sha256.Sum256(der)
	colonHex := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(colonHex); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(colonHex[i : i+2])
	}
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())

	for name, opts := range map[string]ClientOptions{
		"insecure":              {Insecure: true},
		"pinned base64":         {Fingerprint: Fingerprint(der)},
		"pinned hex":            {Fingerprint: hex.EncodeToString(sum[:])},
		"pinned openssl colons": {Fingerprint: "sha256:" + b.String()},
		"pinned and insecure":   {Fingerprint: Fingerprint(der), Insecure: true},
		"root CA":               {RootCAs: pool},
	} {
		if err := newClient(t, url, opts).Call(ctx, "whoami", nil); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	other := sha256.Sum256([]byte("another certificate"))
	for name, opts := range map[string]ClientOptions{
		"wrong pin":               {Fingerprint: "SHA256:" + strings.TrimRight(b64(other[:]), "=")},
		"wrong pin with insecure": {Fingerprint: hex.EncodeToString(other[:]), Insecure: true},
	} {
		err := newClient(t, url, opts).Call(ctx, "whoami", nil)
		if !errors.Is(err, ErrFingerprintMismatch) || !strings.Contains(err.Error(), Fingerprint(der)) {
			t.Errorf("%s: %v", name, err)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: password in %q", name, err)
		}
	}
	var ue x509.UnknownAuthorityError
	if err := newClient(t, url, ClientOptions{}).Call(ctx, "whoami", nil); !errors.As(err, &ue) {
		t.Errorf("unverified self-signed certificate accepted or odd error: %v", err)
	}
}

func TestNewClientRefuses(t *testing.T) {
	t.Parallel()
	for url, want := range map[string]string{
		"https://admin:pw123@host:port/": "bad server URL",
		"ftp://admin:pw123@host/":        "http:// or https://",
		"https:///cluster1/":             "no host",
		"admin:pw123@host":               "http:// or https://",
	} {
		_, err := NewClient(url, ClientOptions{})
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "pw123") {
			t.Errorf("%s: %v", url, err)
		}
	}
	if _, err := NewClient("https://host/", ClientOptions{Fingerprint: "SHA256:short"}); err == nil {
		t.Error("bad fingerprint accepted")
	}
}

func TestParseFingerprint(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("cert"))
	h := hex.EncodeToString(sum[:])
	var colons []string
	for i := 0; i < len(h); i += 2 {
		colons = append(colons, h[i:i+2])
	}
	for _, s := range []string{
		Fingerprint([]byte("cert")),
		"SHA256:" + b64(sum[:]),
		strings.TrimPrefix(Fingerprint([]byte("cert")), "SHA256:"),
		h,
		strings.ToUpper(h),
		"SHA256:" + h,
		strings.Join(colons, ":"),
		"  sha256:" + strings.ToUpper(strings.Join(colons, ":")) + "\n",
	} {
		got, err := ParseFingerprint(s)
		if err != nil || got != sum {
			t.Errorf("%q: %x, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "SHA256:", "SHA256:abc", h[:62], h + "00", "SHA256:" + strings.Repeat("!", 43), strings.Join(colons, "-"), "MD5:" + h} {
		if _, err := ParseFingerprint(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
	if !strings.HasPrefix(Fingerprint(nil), "SHA256:") || len(Fingerprint(nil)) != 7+43 {
		t.Errorf("Fingerprint form: %q", Fingerprint(nil))
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// TestKoloClientInterop checks the stock github.com/kolo/xmlrpc client (its
// net/rpc path, which Client does not use) against the Server: results
// arrive, and faults as the text "Fault(CODE): STRING" of an
// rpc.ServerError, which is why Client decodes answers itself.
func TestKoloClientInterop(t *testing.T) {
	t.Parallel()
	ts := tlsServer(t)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	kc, err := kolo.NewClient(withUser(ts, "admin:s3cret", "/cluster1/"), tr)
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	var row []any
	if err := kc.Call("callPlugin", []any{"Administration.BackupSync-1.0.1", "n0011", "STATUS"}, &row); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(row, []any{int64(0), "activated"}) {
		t.Errorf("callPlugin = %#v", row)
	}
	err = kc.Call("zope", nil, nil)
	var se rpc.ServerError
	if !errors.As(err, &se) || string(se) != "Fault(-1): Unexpected Zope exception: NotFound: n0099" {
		t.Errorf("kolo fault: %T %v", err, err)
	}
}

func TestNewClientNeverQuotesAPassword(t *testing.T) {
	for _, raw := range []string{"https://admin:pw-12/x@127.0.0.1:4443/", "https://admin:pw-12%zz@127.0.0.1/"} {
		_, err := NewClient(raw, ClientOptions{})
		if err == nil || strings.Contains(err.Error(), "pw-12") {
			t.Errorf("%q: %v", raw, err)
		}
	}
}
