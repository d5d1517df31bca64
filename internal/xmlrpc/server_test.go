package xmlrpc

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

type ctxKey struct{}

// testServer registers the methods the server, client and Python tests use.
func testServer(logs io.Writer) *Server {
	s := &Server{Logger: slog.New(slog.NewTextHandler(logs, nil))}
	s.Register("echo", func(_ context.Context, params []any) (any, error) { return params, nil })
	s.Register("types", func(_ context.Context, params []any) (any, error) {
		names := make([]string, len(params))
		for i, p := range params {
			names[i] = fmt.Sprintf("%T", p)
		}
		return names, nil
	})
	s.Register("nested", func(context.Context, []any) (any, error) { return nestedResult(), nil })
	s.Register("zope", func(context.Context, []any) (any, error) {
		return nil, ZopeFault("NotFound: %s", "n0099")
	})
	s.Register("fault42", func(context.Context, []any) (any, error) {
		return nil, fmt.Errorf("wrapped: %w", NewFault(42, "custom <fault> & \"stuff\""))
	})
	s.Register("fail", func(context.Context, []any) (any, error) { return nil, errors.New("disk full") })
	s.Register("nilfault", func(context.Context, []any) (any, error) { var f *Fault; return nil, f })
	s.Register("panic", func(context.Context, []any) (any, error) { panic("boom") })
	s.Register("nan", func(context.Context, []any) (any, error) { return math.NaN(), nil })
	s.Register("whoami", func(ctx context.Context, _ []any) (any, error) {
		user, _ := ctx.Value(ctxKey{}).(string)
		return user, nil
	})
	s.Register("callPlugin", func(_ context.Context, params []any) (any, error) {
		if _, err := Arg[string](params, 0); err != nil {
			return nil, err
		}
		verb, err := Arg[string](params, 2)
		if err != nil {
			return nil, err
		}
		if strings.EqualFold(verb, "STATUS") {
			return []any{0, "activated"}, nil
		}
		return []any{256, "unknown verb " + verb}, nil
	})
	return s
}

func nestedResult() map[string]any {
	deep := any("bottom")
	for i := 0; i < 10; i++ {
		deep = []any{deep, map[string]any{"level": i}}
	}
	return map[string]any{
		"nodes":   []string{"n0011", "n0012", "n0013"},
		"plugin":  [2]any{0, "activated"},
		"big":     int64(1) << 40,
		"neg":     -7,
		"yes":     true,
		"no":      false,
		"none":    nil,
		"pi":      3.25,
		"bytes":   []byte{0, 1, 2, 254, 255},
		"when":    mustTime("2026-11-25T12:00:00Z"),
		"special": "<&>]]> \"' \r\n\t é € 😀",
		"ctrl":    "a\x00b\x1bc",
		"empty":   "",
		"list":    []any{},
		"dict":    map[string]any{},
		"deep":    deep,
	}
}

// basicAuth stands in for the daemon's wrapper: it checks Basic auth and
// hands the user to the methods through the request's context.
func basicAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || user != "admin" || pass != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="backupsync"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, user)))
	})
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func post(t *testing.T, url string, body io.Reader, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// result decodes a 200 text/xml answer.
func (r response) result(t *testing.T) (any, error) {
	t.Helper()
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "text/xml" {
		t.Fatalf("status %d, Content-Type %q: %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	return DecodeResponse(bytes.NewReader(r.body))
}

func (r response) fault(t *testing.T) *Fault {
	t.Helper()
	v, err := r.result(t)
	var f *Fault
	if !errors.As(err, &f) {
		t.Fatalf("want a fault, got %#v, %v", v, err)
	}
	return f
}

func callDoc(t *testing.T, method string, params ...any) io.Reader {
	t.Helper()
	doc, err := EncodeCall(method, params...)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(doc)
}

func TestServerHTTP(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	ts := httptest.NewServer(testServer(&logs))
	defer ts.Close()

	t.Run("not POST is 405", func(t *testing.T) {
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodOptions} {
			req, _ := http.NewRequest(m, ts.URL, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
				t.Errorf("%s: %d, Allow %q", m, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
	})
	t.Run("body over 1 MiB is 413", func(t *testing.T) {
		big := strings.Repeat("x", MaxBodyBytes+1)
		doc := `<methodCall><methodName>echo</methodName><params><param><value>` + big + `</value></param></params></methodCall>`
		if r := post(t, ts.URL, strings.NewReader(doc), nil); r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("with Content-Length: %d %s", r.status, r.body)
		}
		// Without Content-Length (chunked), the limit stops the read.
		chunked := io.MultiReader(strings.NewReader(doc)) // not a type NewRequest can size
		if r := post(t, ts.URL, chunked, nil); r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked: %d %s", r.status, r.body)
		}
		// Just under the limit is decoded (and echoed).
		fits := `<methodCall><methodName>echo</methodName><params><param><value>` +
			strings.Repeat("y", MaxBodyBytes-200) + `</value></param></params></methodCall>`
		v, err := post(t, ts.URL, strings.NewReader(fits), nil).result(t)
		if err != nil || len(v.([]any)[0].(string)) != MaxBodyBytes-200 {
			t.Errorf("body under the limit: %v", err)
		}
	})
	t.Run("gzip body decoded, gzip bomb is 413", func(t *testing.T) {
		var small bytes.Buffer
		zw := gzip.NewWriter(&small)
		io.Copy(zw, callDoc(t, "echo", "zipped"))
		zw.Close()
		v, err := post(t, ts.URL, &small, map[string]string{"Content-Encoding": "gzip"}).result(t)
		if err != nil || !reflect.DeepEqual(v, []any{"zipped"}) {
			t.Errorf("gzip call: %#v, %v", v, err)
		}
		var bomb bytes.Buffer
		zw = gzip.NewWriter(&bomb)
		zw.Write([]byte(`<methodCall><methodName>echo</methodName><params><param><value>`))
		zw.Write(bytes.Repeat([]byte("z"), 4*MaxBodyBytes))
		zw.Close()
		if bomb.Len() > MaxBodyBytes/10 {
			t.Fatalf("bomb is %d bytes compressed", bomb.Len())
		}
		if r := post(t, ts.URL, &bomb, map[string]string{"Content-Encoding": "gzip"}); r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("gzip bomb: %d %s", r.status, r.body)
		}
		if r := post(t, ts.URL, callDoc(t, "echo"), map[string]string{"Content-Encoding": "br"}); r.status != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Encoding br: %d", r.status)
		}
	})
	t.Run("malformed XML is a parse-error fault", func(t *testing.T) {
		for _, body := range []string{"", "<methodCall><methodName>echo", "\x00\x01\x02", "<methodCall></b>"} {
			f := post(t, ts.URL, strings.NewReader(body), nil).fault(t)
			if f.Code != CodeParseError || !strings.HasPrefix(f.String, "xmlrpc: line ") {
				t.Errorf("%q: %v", body, f)
			}
		}
	})
	t.Run("not a methodCall is an invalid-request fault", func(t *testing.T) {
		for _, body := range []string{"<methodResponse/>", "hello", call(`<value><int>x</int></value>`)} {
			if f := post(t, ts.URL, strings.NewReader(body), nil).fault(t); f.Code != CodeInvalidRequest {
				t.Errorf("%q: %v", body, f)
			}
		}
	})
	t.Run("unknown method is a fault naming it", func(t *testing.T) {
		f := post(t, ts.URL, callDoc(t, "showPluginLst"), nil).fault(t)
		if f.Code != CodeMethodNotFound || f.String != `unknown method "showPluginLst"` {
			t.Errorf("%v", f)
		}
	})
	t.Run("nil and no params accepted", func(t *testing.T) {
		v, err := post(t, ts.URL, callDoc(t, "echo", nil, "x", nil), nil).result(t)
		if err != nil || !reflect.DeepEqual(v, []any{nil, "x", nil}) {
			t.Errorf("nil params: %#v, %v", v, err)
		}
		v, err = post(t, ts.URL, strings.NewReader(`<methodCall><methodName>echo</methodName></methodCall>`), nil).result(t)
		if err != nil || !reflect.DeepEqual(v, []any{}) {
			t.Errorf("no params: %#v, %v", v, err)
		}
	})
	t.Run("handler errors become faults", func(t *testing.T) {
		for _, tc := range []struct {
			method string
			want   Fault
		}{
			{"zope", Fault{-1, "Unexpected Zope exception: NotFound: n0099"}},
			{"fault42", Fault{42, `custom <fault> & "stuff"`}},
			{"fail", Fault{CodeApplication, "disk full"}},
			{"nilfault", Fault{CodeApplication, "fault <nil>"}},
			{"panic", Fault{CodeInternalError, "panic: internal error"}},
			{"nan", Fault{CodeInternalError, "nan: result cannot be encoded: xmlrpc: cannot encode: NaN (XML-RPC has no NaN or infinity)"}},
		} {
			if f := post(t, ts.URL, callDoc(t, tc.method), nil).fault(t); *f != tc.want {
				t.Errorf("%s: %v, want %v", tc.method, f, &tc.want)
			}
		}
		if !strings.Contains(logs.String(), "boom") || !strings.Contains(logs.String(), "method=nan") {
			t.Errorf("panic and encoding failure not logged:\n%s", logs.String())
		}
	})
	t.Run("invalid params fault", func(t *testing.T) {
		f := post(t, ts.URL, callDoc(t, "callPlugin", "Administration.BackupSync-1.0.1", "n0011", 7), nil).fault(t)
		if f.Code != CodeInvalidParams || f.String != "argument 3 is int, want string" {
			t.Errorf("%v", f)
		}
	})
	t.Run("concurrent calls", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, ts.URL, callDoc(t, "echo", i))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				v, err := DecodeResponse(resp.Body)
				if err != nil || !reflect.DeepEqual(v, []any{int64(i)}) {
					t.Errorf("call %d: %#v, %v", i, v, err)
				}
			})
		}
		wg.Wait()
	})
}

func TestServerHooks(t *testing.T) {
	t.Parallel()
	s := &Server{
		MaxBodyBytes:  512,
		UnknownMethod: func(m string) *Fault { return ZopeFault("AttributeError: %s", m) },
		ErrorFault:    func(m string, err error) *Fault { return ZopeFault("%s: %v", m, err) },
	}
	s.Register("fail", func(context.Context, []any) (any, error) { return nil, errors.New("no") })
	s.Register("whoami", func(ctx context.Context, _ []any) (any, error) { return ctx.Value(ctxKey{}), nil })
	ts := httptest.NewServer(basicAuth(s))
	defer ts.Close()
	authed := strings.Replace(ts.URL, "http://", "http://admin:s3cret@", 1)

	if f := post(t, authed, callDoc(t, "nosuch"), nil).fault(t); *f != (Fault{-1, "Unexpected Zope exception: AttributeError: nosuch"}) {
		t.Errorf("UnknownMethod: %v", f)
	}
	if f := post(t, authed, callDoc(t, "fail"), nil).fault(t); *f != (Fault{-1, "Unexpected Zope exception: fail: no"}) {
		t.Errorf("ErrorFault: %v", f)
	}
	if v, err := post(t, authed, callDoc(t, "whoami"), nil).result(t); err != nil || v != "admin" {
		t.Errorf("request context: %#v, %v", v, err)
	}
	if r := post(t, authed, callDoc(t, "whoami", strings.Repeat("x", 512)), nil); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("MaxBodyBytes 512: %d", r.status)
	}
	if r := post(t, ts.URL, callDoc(t, "whoami"), nil); r.status != http.StatusUnauthorized {
		t.Errorf("without credentials: %d", r.status)
	}
	if got := s.Methods(); !reflect.DeepEqual(got, []string{"fail", "whoami"}) {
		t.Errorf("Methods() = %v", got)
	}
}

func TestRegisterRefuses(t *testing.T) {
	t.Parallel()
	h := func(context.Context, []any) (any, error) { return nil, nil }
	for name, f := range map[string]func(s *Server){
		"empty name":  func(s *Server) { s.Register("", h) },
		"nil handler": func(s *Server) { s.Register("m", nil) },
		"twice":       func(s *Server) { s.Register("m", h); s.Register("m", h) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f(&Server{})
		}()
	}
}

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}
