package xmlrpc

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Call is a decoded methodCall.
type Call struct {
	Method string
	Params []any // never nil; empty when the call has no params
}

// DecodeError is the error of a document that is not well-formed XML
// (Syntax true) or not a valid XML-RPC document. Line is the input line
// the decoder had reached.
type DecodeError struct {
	Line   int
	Syntax bool
	Err    error
}

// Error returns "xmlrpc: line N: reason".
func (e *DecodeError) Error() string {
	return fmt.Sprintf("xmlrpc: line %d: %v", e.Line, e.Err)
}

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

// DecodeCall reads one methodCall document from r (all of it: bound r
// yourself). The method name must be non-empty; <params> may be absent or
// empty. Any problem is a *DecodeError; DecodeCall never panics.
func DecodeCall(r io.Reader) (*Call, error) {
	d := newDecoder(r)
	call, err := d.call()
	if err != nil {
		return nil, d.wrap(err)
	}
	return call, nil
}

// DecodeResponse reads one methodResponse document from r (all of it: bound
// r yourself) and returns its one value, or a *Fault when the response is a
// fault. Any problem with the document is a *DecodeError.
func DecodeResponse(r io.Reader) (any, error) {
	d := newDecoder(r)
	v, fault, err := d.response()
	if err != nil {
		return nil, d.wrap(err)
	}
	if fault != nil {
		return nil, fault
	}
	return v, nil
}

type decoder struct {
	x      *xml.Decoder
	values int
}

func newDecoder(r io.Reader) *decoder {
	x := xml.NewDecoder(r)
	x.Strict = true
	x.CharsetReader = charsetReader
	return &decoder{x: x}
}

// charsetReader accepts the encodings an XML-RPC client may declare besides
// UTF-8: US-ASCII (a subset) and ISO-8859-1 (each byte is its code point).
func charsetReader(charset string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return r, nil
	case "iso-8859-1", "iso8859-1", "latin-1", "latin1":
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		var out bytes.Buffer
		out.Grow(len(b))
		for _, c := range b {
			out.WriteRune(rune(c))
		}
		return &out, nil
	}
	return nil, fmt.Errorf("unsupported encoding %q", charset)
}

func (d *decoder) wrap(err error) error {
	line, _ := d.x.InputPos()
	var se *xml.SyntaxError
	syntax := errors.As(err, &se)
	if syntax {
		err = errors.New(se.Msg)
		if se.Line > 0 {
			line = se.Line
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		syntax = true
		err = errors.New("unexpected end of document")
	}
	return &DecodeError{Line: line, Syntax: syntax, Err: err}
}

// next returns the next token that is not a comment, processing instruction
// or directive.
func (d *decoder) next() (xml.Token, error) {
	for {
		t, err := d.x.Token()
		if err != nil {
			return nil, err
		}
		switch t.(type) {
		case xml.Comment, xml.ProcInst, xml.Directive:
			continue
		}
		return t, nil
	}
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// element returns the next start or end element, skipping whitespace.
// Text that is not whitespace is an error.
func (d *decoder) element(in string) (start *xml.StartElement, end bool, err error) {
	for {
		t, err := d.next()
		if err != nil {
			return nil, false, err
		}
		switch t := t.(type) {
		case xml.StartElement:
			return &t, false, nil
		case xml.EndElement:
			return nil, true, nil
		case xml.CharData:
			if !isSpace(t) {
				return nil, false, fmt.Errorf("unexpected text %s in <%s>", quoteText(t), in)
			}
		}
	}
}

// open expects the start element <name>.
func (d *decoder) open(name, in string) error {
	s, end, err := d.element(in)
	if err != nil {
		return err
	}
	if end {
		return fmt.Errorf("<%s> ends where <%s> was expected", in, name)
	}
	if s.Name.Local != name {
		return fmt.Errorf("unexpected <%s> in <%s>, want <%s>", s.Name.Local, in, name)
	}
	return nil
}

// close expects the end of the element <name>.
func (d *decoder) close(name string) error {
	s, end, err := d.element(name)
	if err != nil {
		return err
	}
	if !end {
		return fmt.Errorf("unexpected <%s> in <%s>", s.Name.Local, name)
	}
	return nil
}

// text returns the character data up to the end of the element <name>.
func (d *decoder) text(name string) (string, error) {
	var b []byte
	for {
		t, err := d.next()
		if err != nil {
			return "", err
		}
		switch t := t.(type) {
		case xml.CharData:
			b = append(b, t...)
		case xml.EndElement:
			return string(b), nil
		case xml.StartElement:
			return "", fmt.Errorf("unexpected <%s> in <%s>", t.Name.Local, name)
		}
	}
}

// trailer checks that nothing but whitespace, comments and processing
// instructions follow the root element.
func (d *decoder) trailer() error {
	for {
		t, err := d.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if c, ok := t.(xml.CharData); ok && isSpace(c) {
			continue
		}
		return errors.New("content after the root element")
	}
}

func (d *decoder) root(name string) error {
	s, end, err := d.element("document")
	if err == io.EOF {
		return io.ErrUnexpectedEOF // no root element: not well-formed
	}
	if err != nil {
		return err
	}
	if end || s.Name.Local != name {
		got := "an end tag"
		if s != nil {
			got = "<" + s.Name.Local + ">"
		}
		return fmt.Errorf("document is %s, want <%s>", got, name)
	}
	return nil
}

func (d *decoder) call() (*Call, error) {
	if err := d.root("methodCall"); err != nil {
		return nil, err
	}
	if err := d.open("methodName", "methodCall"); err != nil {
		return nil, err
	}
	name, err := d.text("methodName")
	if err != nil {
		return nil, err
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, errors.New("empty <methodName>")
	}
	call := &Call{Method: name, Params: []any{}}
	s, end, err := d.element("methodCall")
	if err != nil {
		return nil, err
	}
	if !end {
		if s.Name.Local != "params" {
			return nil, fmt.Errorf("unexpected <%s> in <methodCall>", s.Name.Local)
		}
		if call.Params, err = d.params(-1); err != nil {
			return nil, err
		}
		if err := d.close("methodCall"); err != nil {
			return nil, err
		}
	}
	return call, d.trailer()
}

// params reads <param> elements up to </params>; want >= 0 requires that
// many.
func (d *decoder) params(want int) ([]any, error) {
	params := []any{}
	for {
		s, end, err := d.element("params")
		if err != nil {
			return nil, err
		}
		if end {
			break
		}
		if s.Name.Local != "param" {
			return nil, fmt.Errorf("unexpected <%s> in <params>", s.Name.Local)
		}
		if err := d.open("value", "param"); err != nil {
			return nil, err
		}
		v, err := d.value(0)
		if err != nil {
			return nil, err
		}
		if err := d.close("param"); err != nil {
			return nil, err
		}
		params = append(params, v)
	}
	if want >= 0 && len(params) != want {
		return nil, fmt.Errorf("<params> holds %d values, want %d", len(params), want)
	}
	return params, nil
}

func (d *decoder) response() (any, *Fault, error) {
	if err := d.root("methodResponse"); err != nil {
		return nil, nil, err
	}
	s, end, err := d.element("methodResponse")
	if err != nil {
		return nil, nil, err
	}
	if end {
		return nil, nil, errors.New("empty <methodResponse>")
	}
	var (
		result any
		fault  *Fault
	)
	switch s.Name.Local {
	case "params":
		params, err := d.params(1)
		if err != nil {
			return nil, nil, err
		}
		result = params[0]
	case "fault":
		if err := d.open("value", "fault"); err != nil {
			return nil, nil, err
		}
		v, err := d.value(0)
		if err != nil {
			return nil, nil, err
		}
		if err := d.close("fault"); err != nil {
			return nil, nil, err
		}
		if fault, err = faultOf(v); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, fmt.Errorf("unexpected <%s> in <methodResponse>", s.Name.Local)
	}
	if err := d.close("methodResponse"); err != nil {
		return nil, nil, err
	}
	return result, fault, d.trailer()
}

func faultOf(v any) (*Fault, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("<fault> holds %s, want struct", TypeName(v))
	}
	code, ok := m["faultCode"].(int64)
	if !ok || code != int64(int(code)) {
		return nil, errors.New("<fault> has no int faultCode")
	}
	str, ok := m["faultString"].(string)
	if !ok {
		return nil, errors.New("<fault> has no string faultString")
	}
	return &Fault{Code: int(code), String: str}, nil
}

// value decodes the content of a <value> element whose start tag has been
// read, up to and including its end tag. depth counts the arrays and
// structs around it.
func (d *decoder) value(depth int) (any, error) {
	d.values++
	if d.values > MaxValues {
		return nil, fmt.Errorf("more than %d values", MaxValues)
	}
	var text []byte
	for {
		t, err := d.next()
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.CharData:
			text = append(text, t...)
		case xml.EndElement:
			// A value with no type element is a string, kept as sent.
			return string(text), nil
		case xml.StartElement:
			if !isSpace(text) {
				return nil, fmt.Errorf("text %s beside <%s> in <value>", quoteText(text), t.Name.Local)
			}
			v, err := d.typed(t.Name.Local, depth)
			if err != nil {
				return nil, err
			}
			return v, d.close("value")
		}
	}
}

// typed decodes the content of the type element <name>, whose start tag
// has been read, up to and including its end tag.
func (d *decoder) typed(name string, depth int) (any, error) {
	switch name {
	case "struct":
		return d.structure(depth + 1)
	case "array":
		return d.array(depth + 1)
	case "nil":
		return nil, d.close("nil")
	}
	s, err := d.text(name)
	if err != nil {
		return nil, err
	}
	switch name {
	case "string":
		return s, nil
	case "int", "i4", "i8", "i1", "i2", "biginteger":
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad <%s> %s", name, quoteText([]byte(s)))
		}
		return n, nil
	case "boolean":
		switch t := strings.TrimSpace(s); {
		case t == "1" || strings.EqualFold(t, "true"):
			return true, nil
		case t == "0" || strings.EqualFold(t, "false"):
			return false, nil
		}
		return nil, fmt.Errorf("bad <boolean> %s", quoteText([]byte(s)))
	case "double", "float":
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, fmt.Errorf("bad <%s> %s", name, quoteText([]byte(s)))
		}
		return f, nil
	case "dateTime.iso8601":
		t, err := parseDateTime(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("bad <dateTime.iso8601> %s", quoteText([]byte(s)))
		}
		return t, nil
	case "base64":
		b, err := decodeBase64(s)
		if err != nil {
			return nil, fmt.Errorf("bad <base64>: %v", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("unknown value type <%s>", name)
}

func (d *decoder) checkDepth(depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("arrays and structs nest deeper than %d", MaxDepth)
	}
	return nil
}

func (d *decoder) structure(depth int) (any, error) {
	if err := d.checkDepth(depth); err != nil {
		return nil, err
	}
	m := map[string]any{}
	for {
		s, end, err := d.element("struct")
		if err != nil {
			return nil, err
		}
		if end {
			return m, nil
		}
		if s.Name.Local != "member" {
			return nil, fmt.Errorf("unexpected <%s> in <struct>", s.Name.Local)
		}
		if err := d.open("name", "member"); err != nil {
			return nil, err
		}
		name, err := d.text("name")
		if err != nil {
			return nil, err
		}
		if err := d.open("value", "member"); err != nil {
			return nil, err
		}
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		if err := d.close("member"); err != nil {
			return nil, err
		}
		m[name] = v
	}
}

func (d *decoder) array(depth int) (any, error) {
	if err := d.checkDepth(depth); err != nil {
		return nil, err
	}
	a := []any{}
	s, end, err := d.element("array")
	if err != nil {
		return nil, err
	}
	if end { // <array/>: tolerated as an empty array
		return a, nil
	}
	if s.Name.Local != "data" {
		return nil, fmt.Errorf("unexpected <%s> in <array>", s.Name.Local)
	}
	for {
		s, end, err := d.element("data")
		if err != nil {
			return nil, err
		}
		if end {
			break
		}
		if s.Name.Local != "value" {
			return nil, fmt.Errorf("unexpected <%s> in <data>", s.Name.Local)
		}
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
	}
	return a, d.close("array")
}

// dateTimeLayouts are the forms of dateTime.iso8601 accepted: Python's
// 20060102T15:04:05, with or without '-' and ':' separators, an optional
// fraction (time.Parse takes it after the seconds) and an optional zone.
var dateTimeLayouts = func() []string {
	var l []string
	for _, date := range []string{"20060102", "2006-01-02"} {
		for _, clock := range []string{"15:04:05", "150405"} {
			for _, zone := range []string{"", "Z07:00", "Z0700", "Z07"} {
				l = append(l, date+"T"+clock+zone)
			}
		}
	}
	return l
}()

// parseDateTime parses a dateTime.iso8601 text; a time without a zone is
// returned in time.UTC.
func parseDateTime(s string) (time.Time, error) {
	for _, layout := range dateTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not an ISO 8601 date and time")
}

// decodeBase64 decodes standard base64, ignoring whitespace (Python sends
// lines of 76 characters) and tolerating missing padding.
func decodeBase64(s string) ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
	enc := base64.StdEncoding
	if len(clean)%4 != 0 {
		enc = base64.RawStdEncoding
		clean = strings.TrimRight(clean, "=")
	}
	return enc.DecodeString(clean)
}

// quoteText quotes the start of b for an error message.
func quoteText(b []byte) string {
	const max = 40
	if len(b) > max {
		n := max
		for n > 0 && !utf8.RuneStart(b[n]) {
			n--
		}
		return strconv.Quote(string(b[:n])) + "…"
	}
	return strconv.Quote(string(b))
}
