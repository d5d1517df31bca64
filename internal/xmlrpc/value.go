package xmlrpc

import (
	"fmt"
	"math"
	"time"
)

// Limits of what one document may hold. They bound the memory and stack a
// hostile body can make the decoder use; legitimate backupsync traffic is far
// below them.
const (
	// MaxDepth is how deeply arrays and structs may nest, counted from the
	// param (a param that is a scalar has depth 0).
	MaxDepth = 64
	// MaxValues is how many <value> elements one document may hold in all.
	MaxValues = 100000
	// MaxBodyBytes is the default size limit of a request body the Server
	// accepts (after gzip decoding, when the client compressed it).
	MaxBodyBytes = 1 << 20
)

// Fault codes this package produces. They follow the "Specification for
// Fault Code Interoperability" (xmlrpc-epi) that Python and most servers
// know; CodeZope is what EXAoperation's Zope answers for every error.
const (
	CodeParseError     = -32700 // the body is not well-formed XML
	CodeInvalidRequest = -32600 // well-formed XML, but not an XML-RPC methodCall
	CodeMethodNotFound = -32601 // no method of that name is registered
	CodeInvalidParams  = -32602 // wrong number or type of arguments (see Arg)
	CodeInternalError  = -32603 // the handler panicked or its result cannot be encoded
	CodeApplication    = -32500 // a handler failed with an error that is not a *Fault
	CodeZope           = -1     // see ZopeFault
)

// Fault is an XML-RPC fault: the error a method call answers instead of a
// result. A handler that returns a *Fault (or an error wrapping one) makes
// the Server answer exactly that code and string; Python's xmlrpc.client
// raises it as xmlrpc.client.Fault(faultCode, faultString). The Client
// returns a call's fault as a *Fault.
type Fault struct {
	Code   int
	String string
}

// Error returns "fault CODE: STRING".
func (f *Fault) Error() string {
	if f == nil {
		return "fault <nil>"
	}
	return fmt.Sprintf("fault %d: %s", f.Code, f.String)
}

// NewFault returns a Fault with the code and the formatted string.
func NewFault(code int, format string, args ...any) *Fault {
	return &Fault{Code: code, String: fmt.Sprintf(format, args...)}
}

// ZopeFault returns the fault EXAoperation's Zope server answers for an
// error, Fault(-1, "Unexpected Zope exception: " + the formatted text), for
// the dialect where scripts expect that shape.
func ZopeFault(format string, args ...any) *Fault {
	return &Fault{Code: CodeZope, String: "Unexpected Zope exception: " + fmt.Sprintf(format, args...)}
}

// Arg returns params[i] as a T, or a *Fault with CodeInvalidParams that
// names the argument (counted from 1, as a Python caller counts them) when
// it is missing or of another type. T is one of the decoded types: int64,
// bool, string, float64, time.Time, []byte, map[string]any, []any, or any;
// T = int is accepted too and converts an int64 that fits. A nil (<nil/>)
// argument is a type mismatch unless T is any.
func Arg[T any](params []any, i int) (T, error) {
	var zero T
	if i < 0 || i >= len(params) {
		return zero, NewFault(CodeInvalidParams, "argument %d is missing (got %d)", i+1, len(params))
	}
	v := params[i]
	if p, isAny := any(&zero).(*any); isAny {
		*p = v
		return zero, nil
	}
	if t, ok := v.(T); ok {
		return t, nil
	}
	if _, wantInt := any(zero).(int); wantInt {
		if n, ok := v.(int64); ok && n >= math.MinInt && n <= math.MaxInt {
			return any(int(n)).(T), nil
		}
	}
	return zero, NewFault(CodeInvalidParams, "argument %d is %s, want %s", i+1, TypeName(v), TypeName(zero))
}

// TypeName returns the XML-RPC name of a decoded value's type (int,
// boolean, string, double, dateTime.iso8601, base64, struct, array, nil),
// or the Go type for anything else.
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case int64, int:
		return "int"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		return "double"
	case time.Time:
		return "dateTime.iso8601"
	case []byte:
		return "base64"
	case map[string]any:
		return "struct"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}
