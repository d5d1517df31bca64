package xmlrpc

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

type plugState struct {
	Role     string `xmlrpc:"role"`
	Next     string `xmlrpc:"next_run,omitempty"`
	Skipped  string `xmlrpc:"-"`
	Active   bool
	internal int
	Lag      *int `xmlrpc:"lag"`
}

func TestEncodeRoundTrip(t *testing.T) {
	t.Parallel()
	type named string
	seven := 7
	when := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   any
		want any // what DecodeResponse returns
	}{
		{"nil", nil, nil},
		{"int", 42, int64(42)},
		{"int8", int8(-8), int64(-8)},
		{"uint32", uint32(math.MaxUint32), int64(math.MaxUint32)},
		{"int64 beyond int32 as i8", int64(1) << 40, int64(1) << 40},
		{"min int64", int64(math.MinInt64), int64(math.MinInt64)},
		{"wait status", 256, int64(256)},
		{"true", true, true},
		{"false", false, false},
		{"string", "activated", "activated"},
		{"empty string", "", ""},
		{"named string", named("x"), "x"},
		{"XML specials", `<a href="x">&amp;</a> ]]> 'q'`, `<a href="x">&amp;</a> ]]> 'q'`},
		{"line ends kept", "a\r\nb\rc\nd\te", "a\r\nb\rc\nd\te"},
		{"unicode", "äöü € 😀 \u2028", "äöü € 😀 \u2028"},
		{"controls replaced", "a\x00b\x1bc\x7fd", "a\uFFFDb\uFFFDc\x7fd"},
		{"invalid UTF-8 replaced", "a\xffb\xc3", "a\uFFFDb\uFFFD"},
		{"U+FFFE replaced", "a\uFFFEb\uFFFF", "a\uFFFDb\uFFFD"},
		{"float", 1.5, 1.5},
		{"float32", float32(0.25), 0.25},
		{"tiny float", 5e-324, 5e-324},
		{"huge float", 1.7976931348623157e308, 1.7976931348623157e308},
		{"time", when, when},
		{"time in a zone sent as UTC", when.In(time.FixedZone("", 3600)), when},
		{"time fraction dropped", when.Add(500 * time.Millisecond), when},
		{"bytes", []byte{0, 1, 2, 255}, []byte{0, 1, 2, 255}},
		{"empty bytes", []byte{}, []byte{}},
		{"[]any", []any{1, "two", nil, true}, []any{int64(1), "two", nil, true}},
		{"[]string", []string{"n0011", "n0012"}, []any{"n0011", "n0012"}},
		{"nil slice", []string(nil), []any{}},
		{"array", [2]int{1, 2}, []any{int64(1), int64(2)}},
		{"map[string]any", map[string]any{"result_code": 0, "result_name": "OK", "result_output": nil},
			map[string]any{"result_code": int64(0), "result_name": "OK", "result_output": nil}},
		{"map[string]string", map[string]string{"<&>": "v"}, map[string]any{"<&>": "v"}},
		{"nil map", map[string]int(nil), map[string]any{}},
		{"struct with tags", plugState{Role: "client", Skipped: "x", Active: true, internal: 1, Lag: &seven},
			map[string]any{"role": "client", "Active": true, "lag": int64(7)}},
		{"struct nil pointer", plugState{Next: "soon"}, map[string]any{"role": "", "next_run": "soon", "Active": false, "lag": nil}},
		{"pointer", &seven, int64(7)},
		{"nil pointer", (*int)(nil), nil},
		{"nested", map[string]any{"a": []any{map[string]any{"b": [][]byte{{1}}}}}, map[string]any{"a": []any{map[string]any{"b": []any{[]byte{1}}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := EncodeResponse(tc.in)
			if err != nil {
				t.Fatalf("EncodeResponse: %v", err)
			}
			wellFormed(t, doc)
			got, err := DecodeResponse(bytes.NewReader(doc))
			if err != nil {
				t.Fatalf("DecodeResponse: %v\n%s", err, doc)
			}
			if w, ok := tc.want.(time.Time); ok {
				if g, ok := got.(time.Time); !ok || !g.Equal(w) || g.Location() != time.UTC {
					t.Fatalf("got %#v, want %v UTC", got, w)
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v\n%s", got, tc.want, doc)
			}

			// The same value as a call's param decodes the same.
			doc, err = EncodeCall("echo", tc.in)
			if err != nil {
				t.Fatalf("EncodeCall: %v", err)
			}
			c, err := DecodeCall(bytes.NewReader(doc))
			if err != nil {
				t.Fatalf("DecodeCall: %v\n%s", err, doc)
			}
			if c.Method != "echo" || len(c.Params) != 1 || !reflect.DeepEqual(c.Params[0], tc.want) {
				t.Fatalf("call decoded as %q %#v", c.Method, c.Params)
			}
		})
	}
}

// wellFormed checks doc with encoding/xml alone, independent of our decoder.
func wellFormed(t *testing.T, doc []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, doc)
		}
	}
}

func TestEncodeForm(t *testing.T) {
	t.Parallel()
	// Exact text where other clients (Python, kolo) depend on it.
	for _, tc := range []struct {
		in   any
		want string
	}{
		{true, "<value><boolean>1</boolean></value>"},
		{int64(math.MaxInt32), "<value><int>2147483647</int></value>"},
		{int64(math.MaxInt32) + 1, "<value><i8>2147483648</i8></value>"},
		{1e21, "<value><double>1000000000000000000000</double></value>"},
		{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), "<value><dateTime.iso8601>20261125T12:00:00</dateTime.iso8601></value>"},
		{"a\r<b>&", "<value><string>a&#xD;&lt;b&gt;&amp;</string></value>"},
		{nil, "<value><nil/></value>"},
		{map[string]int{"b": 2, "a": 1}, "<value><struct><member><name>a</name><value><int>1</int></value></member><member><name>b</name><value><int>2</int></value></member></struct></value>"},
	} {
		doc, err := EncodeResponse(tc.in)
		if err != nil {
			t.Fatalf("%#v: %v", tc.in, err)
		}
		if !bytes.Contains(doc, []byte("<param>"+tc.want+"</param>")) {
			t.Errorf("%#v encoded as\n%s\nwant %s", tc.in, doc, tc.want)
		}
	}
	f := EncodeFault(ZopeFault("NotFound: %s", "n0099"))
	want := `<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>-1</int></value></member><member><name>faultString</name><value><string>Unexpected Zope exception: NotFound: n0099</string></value></member></struct></value></fault></methodResponse>`
	if !bytes.Contains(f, []byte(want)) || !bytes.HasPrefix(f, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) {
		t.Errorf("fault encoded as\n%s", f)
	}
}

func TestEncodeRefuses(t *testing.T) {
	t.Parallel()
	cyclic := []any{nil}
	cyclic[0] = cyclic
	deep := any("x")
	for range MaxDepth + 1 {
		deep = []any{deep}
	}
	for name, v := range map[string]any{
		"NaN":             math.NaN(),
		"+Inf":            math.Inf(1),
		"huge uint64":     uint64(math.MaxUint64),
		"channel":         make(chan int),
		"func":            func() {},
		"int-keyed map":   map[int]string{1: "a"},
		"complex":         complex(1, 2),
		"cycle":           cyclic,
		"too deep":        deep,
		"year 10000":      time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		"nested NaN":      map[string]any{"a": []any{math.NaN()}},
		"negative year":   time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		"unexported only": struct{ c chan int }{}, // encodes as an empty struct: not refused
	} {
		doc, err := EncodeResponse(v)
		if name == "unexported only" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: encoded as %s", name, doc)
		} else if !strings.Contains(err.Error(), "cannot encode") {
			t.Errorf("%s: error %q", name, err)
		}
	}
	if _, err := EncodeCall(""); err == nil {
		t.Error("EncodeCall accepted an empty method name")
	}
	if _, err := EncodeCall("m", 1, math.NaN()); err == nil || !strings.Contains(err.Error(), "param 2") {
		t.Errorf("EncodeCall NaN: %v", err)
	}
}

func TestArg(t *testing.T) {
	t.Parallel()
	params := []any{"Administration.BackupSync-1.0.1", int64(3), nil, map[string]any{"params": map[string]any{}}, int64(1) << 40}
	if s, err := Arg[string](params, 0); err != nil || s != "Administration.BackupSync-1.0.1" {
		t.Errorf("Arg[string] = %q, %v", s, err)
	}
	if n, err := Arg[int64](params, 1); err != nil || n != 3 {
		t.Errorf("Arg[int64] = %d, %v", n, err)
	}
	if n, err := Arg[int](params, 1); err != nil || n != 3 {
		t.Errorf("Arg[int] = %d, %v", n, err)
	}
	if v, err := Arg[any](params, 2); err != nil || v != nil {
		t.Errorf("Arg[any] of nil = %v, %v", v, err)
	}
	if m, err := Arg[map[string]any](params, 3); err != nil || m["params"] == nil {
		t.Errorf("Arg[struct] = %v, %v", m, err)
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{second(Arg[string](params, 1)), "argument 2 is int, want string"},
		{second(Arg[string](params, 2)), "argument 3 is nil, want string"},
		{second(Arg[[]any](params, 3)), "argument 4 is struct, want array"},
		{second(Arg[[]byte](params, 0)), "argument 1 is string, want base64"},
		{second(Arg[bool](params, 9)), "argument 10 is missing (got 5)"},
		{second(Arg[string](params, -1)), "argument 0 is missing (got 5)"},
	} {
		var f *Fault
		if !errors.As(tc.err, &f) || f.Code != CodeInvalidParams || f.String != tc.want {
			t.Errorf("got %v, want fault %d %q", tc.err, CodeInvalidParams, tc.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }
