package xmlrpc

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const xmlHeader = `<?xml version="1.0" encoding="UTF-8"?>` + "\n"

// EncodeResponse returns the methodResponse document carrying result as
// its one param. It fails, writing nothing, when result holds a value
// XML-RPC cannot carry (see the package documentation).
func EncodeResponse(result any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(xmlHeader)
	b.WriteString("<methodResponse><params><param>")
	if err := encodeValue(&b, reflect.ValueOf(result), 0); err != nil {
		return nil, err
	}
	b.WriteString("</param></params></methodResponse>\n")
	return b.Bytes(), nil
}

// EncodeFault returns the methodResponse document carrying f as a fault: a
// struct of exactly faultCode (int) and faultString (string), the shape
// Python's xmlrpc.client turns into xmlrpc.client.Fault.
func EncodeFault(f *Fault) []byte {
	var b bytes.Buffer
	b.WriteString(xmlHeader)
	b.WriteString("<methodResponse><fault><value><struct><member><name>faultCode</name>")
	writeInt(&b, int64(f.Code))
	b.WriteString("</member><member><name>faultString</name>")
	writeString(&b, f.String)
	b.WriteString("</member></struct></value></fault></methodResponse>\n")
	return b.Bytes()
}

// EncodeCall returns the methodCall document calling method with params.
// Unlike github.com/kolo/xmlrpc it can send nil (as <nil/>, which Python
// servers accept with allow_none=True). It fails, writing nothing, on a
// param XML-RPC cannot carry or an empty method name.
func EncodeCall(method string, params ...any) ([]byte, error) {
	if method == "" {
		return nil, fmt.Errorf("xmlrpc: empty method name")
	}
	var b bytes.Buffer
	b.WriteString(xmlHeader)
	b.WriteString("<methodCall><methodName>")
	writeText(&b, method)
	b.WriteString("</methodName><params>")
	for i, p := range params {
		b.WriteString("<param>")
		if err := encodeValue(&b, reflect.ValueOf(p), 0); err != nil {
			return nil, fmt.Errorf("param %d: %w", i+1, err)
		}
		b.WriteString("</param>")
	}
	b.WriteString("</params></methodCall>\n")
	return b.Bytes(), nil
}

var timeType = reflect.TypeFor[time.Time]()

const errCannotEncode = "xmlrpc: cannot encode"

// encodeValue writes v as a <value> element. depth counts the arrays and
// structs around it; beyond MaxDepth (a cycle, or a value a decoder would
// refuse) it fails.
func encodeValue(b *bytes.Buffer, v reflect.Value, depth int) error {
	// Interfaces and pointers: nil is <nil/>, anything else what it holds.
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			b.WriteString("<value><nil/></value>")
			return nil
		}
		v = v.Elem()
	}
	if !v.IsValid() { // reflect.ValueOf(nil)
		b.WriteString("<value><nil/></value>")
		return nil
	}
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			b.WriteString("<value><boolean>1</boolean></value>")
		} else {
			b.WriteString("<value><boolean>0</boolean></value>")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		writeInt(b, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := v.Uint()
		if u > math.MaxInt64 {
			return fmt.Errorf("%s: %d does not fit a 64-bit signed int", errCannotEncode, u)
		}
		writeInt(b, int64(u))
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%s: %v (XML-RPC has no NaN or infinity)", errCannotEncode, f)
		}
		b.WriteString("<value><double>")
		b.WriteString(strconv.FormatFloat(f, 'f', -1, v.Type().Bits()))
		b.WriteString("</double></value>")
	case reflect.String:
		writeString(b, v.String())
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			b.WriteString("<value><base64>")
			b.WriteString(base64.StdEncoding.EncodeToString(v.Bytes()))
			b.WriteString("</base64></value>")
			return nil
		}
		if depth++; depth > MaxDepth {
			return fmt.Errorf("%s: arrays and structs nest deeper than %d", errCannotEncode, MaxDepth)
		}
		b.WriteString("<value><array><data>")
		for i := 0; i < v.Len(); i++ {
			if err := encodeValue(b, v.Index(i), depth); err != nil {
				return err
			}
		}
		b.WriteString("</data></array></value>")
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("%s: %s (struct keys must be strings)", errCannotEncode, v.Type())
		}
		if depth++; depth > MaxDepth {
			return fmt.Errorf("%s: arrays and structs nest deeper than %d", errCannotEncode, MaxDepth)
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		b.WriteString("<value><struct>")
		for _, k := range keys {
			if err := writeMember(b, k.String(), v.MapIndex(k), depth); err != nil {
				return err
			}
		}
		b.WriteString("</struct></value>")
	case reflect.Struct:
		if v.Type() == timeType {
			return writeTime(b, v.Interface().(time.Time))
		}
		if depth++; depth > MaxDepth {
			return fmt.Errorf("%s: arrays and structs nest deeper than %d", errCannotEncode, MaxDepth)
		}
		b.WriteString("<value><struct>")
		if err := structMembers(v, func(name string, fv reflect.Value) error {
			return writeMember(b, name, fv, depth)
		}); err != nil {
			return err
		}
		b.WriteString("</struct></value>")
	default:
		return fmt.Errorf("%s: %s", errCannotEncode, v.Type())
	}
	return nil
}

// structMembers calls f for each field of struct v that is sent as a
// member, with its member name: exported fields, named by their `xmlrpc`
// tag or else the field name; `xmlrpc:"-"` skips a field and
// `xmlrpc:",omitempty"` a zero one.
func structMembers(v reflect.Value, f func(name string, fv reflect.Value) error) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		field := t.Field(i)
		if !field.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(field.Tag.Get("xmlrpc"), ",")
		if name == "-" && opts == "" {
			continue
		}
		if name == "" {
			name = field.Name
		}
		if opts == "omitempty" && v.Field(i).IsZero() {
			continue
		}
		if err := f(name, v.Field(i)); err != nil {
			return err
		}
	}
	return nil
}

func writeMember(b *bytes.Buffer, name string, v reflect.Value, depth int) error {
	b.WriteString("<member><name>")
	writeText(b, name)
	b.WriteString("</name>")
	if err := encodeValue(b, v, depth); err != nil {
		return err
	}
	b.WriteString("</member>")
	return nil
}

// writeInt writes n as <int> when it fits 32 bits, as the spec defines int,
// and as <i8> beyond (Python, kolo/xmlrpc and this decoder read both).
func writeInt(b *bytes.Buffer, n int64) {
	if n >= math.MinInt32 && n <= math.MaxInt32 {
		b.WriteString("<value><int>")
		b.WriteString(strconv.FormatInt(n, 10))
		b.WriteString("</int></value>")
		return
	}
	b.WriteString("<value><i8>")
	b.WriteString(strconv.FormatInt(n, 10))
	b.WriteString("</i8></value>")
}

func writeString(b *bytes.Buffer, s string) {
	b.WriteString("<value><string>")
	writeText(b, s)
	b.WriteString("</string></value>")
}

// dateTimeFormat is the only form Python's xmlrpc.client parses back into a
// datetime: no zone, no fraction.
const dateTimeFormat = "20060102T15:04:05"

func writeTime(b *bytes.Buffer, t time.Time) error {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return fmt.Errorf("%s: year %d of %v (dateTime.iso8601 has four digits)", errCannotEncode, y, t)
	}
	b.WriteString("<value><dateTime.iso8601>")
	b.WriteString(t.Format(dateTimeFormat))
	b.WriteString("</dateTime.iso8601></value>")
	return nil
}

// writeText writes s as XML character data: &, < and > as entities, CR as
// &#xD; so that it survives XML's line-end normalisation, and every
// character XML 1.0 cannot carry (and every byte that is not UTF-8) as
// U+FFFD.
func writeText(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '\r':
			b.WriteString("&#xD;")
		case !isXMLChar(r):
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
}

// isXMLChar reports whether r is a Char of XML 1.0 (production [2]).
func isXMLChar(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' ||
		(r >= 0x20 && r <= 0xD7FF) ||
		(r >= 0xE000 && r <= 0xFFFD) ||
		(r >= 0x10000 && r <= 0x10FFFF)
}
