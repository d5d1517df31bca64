package xmlrpc

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// call wraps value XML as the one param of a methodCall.
func call(value string) string {
	return `<?xml version='1.0'?><methodCall><methodName>m</methodName><params><param>` + value + `</param></params></methodCall>`
}

func TestDecodeValues(t *testing.T) {
	t.Parallel()
	cet := time.FixedZone("", 3600)
	tests := []struct {
		name  string
		value string
		want  any
	}{
		{"int", `<value><int>42</int></value>`, int64(42)},
		{"int negative, spaces", `<value><int> -7 </int></value>`, int64(-7)},
		{"int plus sign", `<value><int>+7</int></value>`, int64(7)},
		{"i4", `<value><i4>2147483647</i4></value>`, int64(math.MaxInt32)},
		{"i8", `<value><i8>-9223372036854775808</i8></value>`, int64(math.MinInt64)},
		{"i1 i2 biginteger (Python)", `<value><biginteger>1099511627776</biginteger></value>`, int64(1 << 40)},
		{"ex:i8 (Apache namespace)", `<value><ex:i8 xmlns:ex="http://ws.apache.org/xmlrpc/namespaces/extensions">5</ex:i8></value>`, int64(5)},
		{"boolean 1", `<value><boolean>1</boolean></value>`, true},
		{"boolean 0", `<value><boolean>0</boolean></value>`, false},
		{"boolean true", `<value><boolean>true</boolean></value>`, true},
		{"boolean FALSE", `<value><boolean>FALSE</boolean></value>`, false},
		{"string", `<value><string>hello world</string></value>`, "hello world"},
		{"string kept exactly", `<value><string>  a  </string></value>`, "  a  "},
		{"string entities", `<value><string>&lt;a&gt; &amp; &quot;b&quot; &apos;c&apos; &#xD;&#10;&#x1F600;</string></value>`, "<a> & \"b\" 'c' \r\n😀"},
		{"string CDATA and comment", `<value><string>a<![CDATA[<b>]]><!-- c -->d</string></value>`, "a<b>d"},
		{"string unicode", `<value><string>äöü € 😀</string></value>`, "äöü € 😀"},
		{"string empty", `<value><string></string></value>`, ""},
		{"string self-closed", `<value><string/></value>`, ""},
		{"bare text", `<value>bare text</value>`, "bare text"},
		{"bare text spaces kept", `<value>  spaced  </value>`, "  spaced  "},
		{"bare empty", `<value></value>`, ""},
		{"bare self-closed", `<value/>`, ""},
		{"CRLF normalised in raw text", "<value><string>a\r\nb\rc</string></value>", "a\nb\nc"},
		{"double", `<value><double>1.5</double></value>`, 1.5},
		{"double exponent (Python repr)", `<value><double>1e+100</double></value>`, 1e100},
		{"double negative zero", `<value><double>-0.0</double></value>`, math.Copysign(0, -1)},
		{"float alias", `<value><float>-2.25</float></value>`, -2.25},
		{"dateTime Python", `<value><dateTime.iso8601>20261125T12:00:00</dateTime.iso8601></value>`, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)},
		{"dateTime dashes", `<value><dateTime.iso8601>2026-11-25T12:00:00</dateTime.iso8601></value>`, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)},
		{"dateTime Z", `<value><dateTime.iso8601>2026-11-25T12:00:00Z</dateTime.iso8601></value>`, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)},
		{"dateTime zone", `<value><dateTime.iso8601>20261125T12:00:00+01:00</dateTime.iso8601></value>`, time.Date(2026, 11, 25, 12, 0, 0, 0, cet)},
		{"dateTime zone compact", `<value><dateTime.iso8601>20261125T120000+0100</dateTime.iso8601></value>`, time.Date(2026, 11, 25, 12, 0, 0, 0, cet)},
		{"dateTime fraction", `<value><dateTime.iso8601>2026-11-25T12:00:00.250Z</dateTime.iso8601></value>`, time.Date(2026, 11, 25, 12, 0, 0, 250e6, time.UTC)},
		{"base64", `<value><base64>AAEC/w==</base64></value>`, []byte{0, 1, 2, 255}},
		{"base64 Python lines", "<value><base64>\nAAEC\n/w==\n</base64></value>", []byte{0, 1, 2, 255}},
		{"base64 unpadded", `<value><base64>AAEC/w</base64></value>`, []byte{0, 1, 2, 255}},
		{"base64 empty", `<value><base64></base64></value>`, []byte{}},
		{"nil", `<value><nil/></value>`, nil},
		{"ex:nil", `<value><ex:nil xmlns:ex="http://ws.apache.org/xmlrpc/namespaces/extensions"/></value>`, nil},
		{"nil with whitespace", "<value>\n<nil/>\n</value>", nil},
		{"struct", `<value><struct><member><name>a</name><value><int>1</int></value></member><member><name>b c</name><value>x</value></member></struct></value>`,
			map[string]any{"a": int64(1), "b c": "x"}},
		{"struct empty", `<value><struct></struct></value>`, map[string]any{}},
		{"struct repeated name: last wins", `<value><struct><member><name>a</name><value>1</value></member><member><name>a</name><value>2</value></member></struct></value>`,
			map[string]any{"a": "2"}},
		{"struct empty name", `<value><struct><member><name></name><value><nil/></value></member></struct></value>`, map[string]any{"": nil}},
		{"array", `<value><array><data><value><int>1</int></value><value>two</value><value><nil/></value></data></array></value>`, []any{int64(1), "two", nil}},
		{"array empty", `<value><array><data/></array></value>`, []any{}},
		{"array without data", `<value><array/></value>`, []any{}},
		{"nested", `<value><array><data><value><struct><member><name>l</name><value><array><data><value><boolean>1</boolean></value></data></array></value></member></struct></value></data></array></value>`,
			[]any{map[string]any{"l": []any{true}}}},
		{"Python layout", "<value><struct>\n<member>\n<name>k</name>\n<value><array><data>\n<value><int>1</int></value>\n</data></array></value>\n</member>\n</struct></value>\n",
			map[string]any{"k": []any{int64(1)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeCall(strings.NewReader(call(tc.value)))
			if err != nil {
				t.Fatalf("DecodeCall: %v", err)
			}
			if len(c.Params) != 1 {
				t.Fatalf("got %d params, want 1", len(c.Params))
			}
			got := c.Params[0]
			if want, ok := tc.want.(time.Time); ok {
				g, ok := got.(time.Time)
				if !ok || !g.Equal(want) {
					t.Fatalf("got %#v, want %v", got, want)
				}
				_, goff := g.Zone()
				_, woff := want.Zone()
				if goff != woff {
					t.Fatalf("zone offset %d, want %d", goff, woff)
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
			if f, ok := tc.want.(float64); ok && math.Signbit(f) != math.Signbit(got.(float64)) {
				t.Fatalf("sign of %v lost", f)
			}
		})
	}
}

func TestDecodeCallShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		doc    string
		method string
		params []any
	}{
		{"no params element", `<methodCall><methodName>getNodeList</methodName></methodCall>`, "getNodeList", []any{}},
		{"empty params", "<?xml version='1.0'?>\n<methodCall>\n<methodName>showPluginList</methodName>\n<params>\n</params>\n</methodCall>\n", "showPluginList", []any{}},
		{"nil param", `<methodCall><methodName>job_exec</methodName><params><param><value>node_list</value></param><param><value><nil/></value></param></params></methodCall>`,
			"job_exec", []any{"node_list", nil}},
		{"method name trimmed", "<methodCall><methodName>\n  callPlugin \n</methodName></methodCall>", "callPlugin", []any{}},
		{"comments, PIs and doctype ignored", `<?xml version="1.0"?><!DOCTYPE methodCall><!-- c --><methodCall><?pi x?><methodName>m</methodName><params><!-- c --><param><value><int>1</int></value></param></params></methodCall><!-- trailing -->`,
			"m", []any{int64(1)}},
		{"latin-1 declared", "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><methodCall><methodName>m</methodName><params><param><value>\xe4</value></param></params></methodCall>",
			"m", []any{"ä"}},
		{"BOM-less UTF-8 with declaration", `<?xml version="1.0" encoding="utf-8"?><methodCall><methodName>m</methodName></methodCall>`, "m", []any{}},
		{"several params", `<methodCall><methodName>callPlugin</methodName><params><param><value><string>Administration.BackupSync-1.0.1</string></value></param><param><value><string>n0011</string></value></param><param><value><string>STATUS</string></value></param></params></methodCall>`,
			"callPlugin", []any{"Administration.BackupSync-1.0.1", "n0011", "STATUS"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeCall(strings.NewReader(tc.doc))
			if err != nil {
				t.Fatalf("DecodeCall: %v", err)
			}
			if c.Method != tc.method || !reflect.DeepEqual(c.Params, tc.params) {
				t.Fatalf("got %q %#v, want %q %#v", c.Method, c.Params, tc.method, tc.params)
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("<value><array><data>", MaxDepth+1) + "<value>x</value>" + strings.Repeat("</data></array></value>", MaxDepth+1)
	deepOK := strings.Repeat("<value><array><data>", MaxDepth) + "<value>x</value>" + strings.Repeat("</data></array></value>", MaxDepth)
	if _, err := DecodeCall(strings.NewReader(call(deepOK))); err != nil {
		t.Fatalf("nesting of exactly MaxDepth refused: %v", err)
	}
	huge := "<value><array><data>" + strings.Repeat("<value/>", MaxValues) + "</data></array></value>"
	tests := []struct {
		name   string
		doc    string
		syntax bool   // a *DecodeError with Syntax set
		msg    string // part of the message
	}{
		{"empty", ``, true, "unexpected end"},
		{"whitespace only", "  \n", true, "unexpected end"},
		{"not XML", `hello`, false, "unexpected text"},
		{"truncated", `<methodCall><methodName>m</methodName><params>`, true, "unexpected EOF"},
		{"mismatched tags", `<methodCall><methodName>m</methodCall>`, true, "closed by"},
		{"wrong root", `<methodResponse/>`, false, "want <methodCall>"},
		{"no method name", `<methodCall></methodCall>`, false, "<methodName>"},
		{"empty method name", `<methodCall><methodName> </methodName></methodCall>`, false, "empty <methodName>"},
		{"element in method name", `<methodCall><methodName><b/></methodName></methodCall>`, false, "unexpected <b>"},
		{"unknown entity", `<methodCall><methodName>&foo;</methodName></methodCall>`, true, "invalid character entity"},
		{"custom entity (no DTD expansion)", `<!DOCTYPE m [<!ENTITY a "aaaa">]><methodCall><methodName>&a;</methodName></methodCall>`, true, "entity"},
		{"invalid UTF-8", "<methodCall><methodName>m\xff</methodName></methodCall>", true, "UTF-8"},
		{"control character", "<methodCall><methodName>m\x01</methodName></methodCall>", true, "illegal character"},
		{"unsupported encoding", `<?xml version="1.0" encoding="EBCDIC"?><methodCall/>`, false, "EBCDIC"},
		{"trailing element", `<methodCall><methodName>m</methodName></methodCall><x/>`, false, "after the root"},
		{"param without value", `<methodCall><methodName>m</methodName><params><param></param></params></methodCall>`, false, "<value>"},
		{"param with two values", call(`<value>a</value><value>b</value>`), false, "unexpected <value> in <param>"},
		{"stray element in params", `<methodCall><methodName>m</methodName><params><x/></params></methodCall>`, false, "unexpected <x>"},
		{"unknown type", call(`<value><bigdecimal>1.0</bigdecimal></value>`), false, "unknown value type <bigdecimal>"},
		{"bad int", call(`<value><int>12a</int></value>`), false, "bad <int>"},
		{"int overflow", call(`<value><i8>9223372036854775808</i8></value>`), false, "bad <i8>"},
		{"empty int", call(`<value><int></int></value>`), false, "bad <int>"},
		{"bad boolean", call(`<value><boolean>2</boolean></value>`), false, "bad <boolean>"},
		{"bad double", call(`<value><double>1,5</double></value>`), false, "bad <double>"},
		{"double overflow", call(`<value><double>1e400</double></value>`), false, "bad <double>"},
		{"bad dateTime", call(`<value><dateTime.iso8601>yesterday</dateTime.iso8601></value>`), false, "bad <dateTime.iso8601>"},
		{"bad dateTime month", call(`<value><dateTime.iso8601>20261325T12:00:00</dateTime.iso8601></value>`), false, "bad <dateTime.iso8601>"},
		{"bad base64", call(`<value><base64>!!!!</base64></value>`), false, "bad <base64>"},
		{"mixed content", call(`<value>abc<int>1</int></value>`), false, "beside <int>"},
		{"text after type", call(`<value><int>1</int>abc</value>`), false, "unexpected text"},
		{"two types", call(`<value><int>1</int><int>2</int></value>`), false, "unexpected <int> in <value>"},
		{"element in int", call(`<value><int><b>1</b></int></value>`), false, "unexpected <b> in <int>"},
		{"nil with content", call(`<value><nil>x</nil></value>`), false, "unexpected text"},
		{"member without name", call(`<value><struct><member><value>1</value></member></struct></value>`), false, "want <name>"},
		{"member without value", call(`<value><struct><member><name>a</name></member></struct></value>`), false, "<value>"},
		{"member value before name", call(`<value><struct><member><value>1</value><name>a</name></member></struct></value>`), false, "want <name>"},
		{"stray element in struct", call(`<value><struct><x/></struct></value>`), false, "unexpected <x> in <struct>"},
		{"array without data element", call(`<value><array><value>1</value></array></value>`), false, "unexpected <value> in <array>"},
		{"stray element in data", call(`<value><array><data><int>1</int></data></array></value>`), false, "unexpected <int> in <data>"},
		{"too deep", call(deep), false, "deeper than"},
		{"too many values", call(huge), false, "more than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeCall(strings.NewReader(tc.doc))
			if err == nil {
				t.Fatalf("accepted: %q %#v", c.Method, c.Params)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *DecodeError", err, err)
			}
			if de.Syntax != tc.syntax {
				t.Errorf("Syntax = %v, want %v (%v)", de.Syntax, tc.syntax, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

func TestDecodeResponse(t *testing.T) {
	t.Parallel()
	v, err := DecodeResponse(strings.NewReader("<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n<value><array><data>\n<value><int>0</int></value>\n<value><string>activated</string></value>\n</data></array></value>\n</param>\n</params>\n</methodResponse>\n"))
	if err != nil || !reflect.DeepEqual(v, []any{int64(0), "activated"}) {
		t.Fatalf("got %#v, %v", v, err)
	}
	// Python's SimpleXMLRPCServer layout of a fault.
	_, err = DecodeResponse(strings.NewReader("<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n<member>\n<name>faultCode</name>\n<value><int>-1</int></value>\n</member>\n<member>\n<name>faultString</name>\n<value><string>Unexpected Zope exception: NotFound</string></value>\n</member>\n</struct></value>\n</fault>\n</methodResponse>\n"))
	var f *Fault
	if !errors.As(err, &f) || f.Code != -1 || f.String != "Unexpected Zope exception: NotFound" {
		t.Fatalf("got %#v (%v)", f, err)
	}
	for name, doc := range map[string]string{
		"empty response":        `<methodResponse></methodResponse>`,
		"two params":            `<methodResponse><params><param><value>a</value></param><param><value>b</value></param></params></methodResponse>`,
		"no param":              `<methodResponse><params></params></methodResponse>`,
		"fault without code":    `<methodResponse><fault><value><struct><member><name>faultString</name><value>x</value></member></struct></value></fault></methodResponse>`,
		"fault code string":     `<methodResponse><fault><value><struct><member><name>faultCode</name><value>1</value></member><member><name>faultString</name><value>x</value></member></struct></value></fault></methodResponse>`,
		"fault not a struct":    `<methodResponse><fault><value>x</value></fault></methodResponse>`,
		"a call, not an answer": `<methodCall><methodName>m</methodName></methodCall>`,
		"HTML error page":       `<html><body>502 Bad Gateway</body></html>`,
	} {
		if v, err := DecodeResponse(strings.NewReader(doc)); err == nil || errors.As(err, &f) {
			t.Errorf("%s: got %#v, %v; want a decode error", name, v, err)
		}
	}
}
