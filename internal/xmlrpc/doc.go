// Package xmlrpc speaks XML-RPC for backupsync's control plane: that is its
// one job. It holds the codec (methodCall, methodResponse and fault documents
// on encoding/xml), an http.Handler that dispatches calls to registered Go
// functions, and a thin client over github.com/kolo/xmlrpc for the CLI.
//
// The wire format is the one Python's xmlrpc.client speaks, because admins
// drive backupsync with the same ServerProxy scripts they wrote for
// EXAoperation and ConfD.
//
// # Values
//
// Decoded values map to Go as follows:
//
//	<int>, <i4>, <i8>, <i1>, <i2>, <biginteger>   int64
//	<boolean>                                     bool ("0"/"1"; "true"/"false" tolerated)
//	<string>, or text with no type element        string (kept exactly, never trimmed)
//	<double>, <float>                             float64
//	<dateTime.iso8601>                            time.Time (naive times in time.UTC)
//	<base64>                                      []byte (whitespace inside is ignored)
//	<struct>                                      map[string]any (a repeated name: the last wins)
//	<array>                                       []any
//	<nil/>                                        nil
//
// Type elements are matched by local name, so <ex:nil/> and <ex:i8> (Apache's
// extensions namespace) are understood as Python understands them.
//
// Encoding accepts every Go integer type (int32 range as <int>, beyond it as
// <i8>), bool, string, float32/float64 (finite only: XML-RPC has no NaN or
// infinity), time.Time (sent in UTC as 20060102T15:04:05 without a zone,
// the only form Python's xmlrpc.client parses; sub-second precision is
// dropped), []byte as <base64>, slices and arrays as <array>, maps with
// string keys as <struct> (keys sorted), Go structs as <struct> (exported
// fields; a tag `xmlrpc:"name"` or `xmlrpc:"name,omitempty"` renames or
// omits, `xmlrpc:"-"` skips, as github.com/kolo/xmlrpc reads them), pointers
// to any of these, and nil: nil, a nil interface and a nil pointer are
// <nil/> (Python's client always understands it), while a nil slice or map
// is an empty array or struct. Anything else (channels, functions, maps
// with other keys, unsigned values above MaxInt64) is an error.
//
// # Text
//
// Text is escaped so that every document is well-formed XML 1.0: &, < and >
// become entities and a carriage return becomes &#xD; (a raw CR would be
// normalised to LF by every XML parser). Characters XML 1.0 cannot carry at
// all, i.e. C0 controls other than tab, LF and CR, U+FFFE, U+FFFF and bytes
// that are not UTF-8, are replaced by U+FFFD rather than rejected: a log
// line with a stray control byte must not turn a whole GETLOG answer into a
// fault. This is the same policy as encoding/xml's EscapeText.
//
// # Server and Client
//
// Server answers calls as Python's xmlrpc.client expects them: lists,
// dicts, ints, strings, None, Binary and DateTime come back naturally, and
// an error raises xmlrpc.client.Fault(faultCode, faultString). ZopeFault
// makes the Fault(-1, "Unexpected Zope exception: …") shape of
// EXAoperation. Authentication is the caller's: wrap the Server, and pass
// what it learns to the methods through the request's context.
//
// Client encodes calls with github.com/kolo/xmlrpc but sends them and reads
// the answers itself, with this package's decoder: kolo's own net/rpc client
// has no context or timeout, holds one call's lock for the whole HTTP
// exchange, reports faults and HTTP statuses only as rpc.ServerError text
// ("Fault(-1): …", "bad status code - 401") and has no depth limit. Client
// returns faults as *Fault and refusals as *HTTPError instead.
//
// # Limits
//
// The decoder never panics; malformed or hostile input is an error. Values
// nest at most MaxDepth arrays/structs deep and a document holds at most
// MaxValues values. The Server refuses bodies over MaxBodyBytes (HTTP 413)
// before decoding them. Callers of DecodeCall and DecodeResponse bound the
// reader themselves.
package xmlrpc
