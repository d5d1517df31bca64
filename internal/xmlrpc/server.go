package xmlrpc

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// HandlerFunc implements one XML-RPC method. ctx is the HTTP request's
// context, so values an outer handler (the daemon's Basic auth) stored with
// r.WithContext reach the method. params are the decoded arguments (see the
// package documentation for their Go types; Arg checks and converts one).
//
// The result is encoded as the one param of the response. An error answers
// a fault instead: a *Fault anywhere in the error's chain (errors.As) is
// sent as it is, any other error as Fault{CodeApplication, err.Error()} (or
// what Server.ErrorFault makes of it) — so an error must never carry a
// secret.
type HandlerFunc func(ctx context.Context, params []any) (any, error)

// Server is an http.Handler that answers XML-RPC calls by dispatching them
// to registered methods. The zero Server is ready to use; set its fields
// before it serves. It authenticates nobody: wrap it.
//
// A request that is not a POST is answered 405, a body over MaxBodyBytes
// 413 (without decoding it), a Content-Encoding other than gzip 415.
// Everything else is answered 200 with Content-Type text/xml: the result,
// or a fault for a body that does not decode (CodeParseError for XML that
// is not well-formed, CodeInvalidRequest for XML that is not a methodCall),
// for an unknown method, for a failed or panicking method, and for a result
// that cannot be encoded (CodeInternalError).
type Server struct {
	// MaxBodyBytes limits the request body; 0 means the package's
	// MaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// UnknownMethod makes the fault for a call of a method that is not
	// registered; nil means Fault{CodeMethodNotFound, `unknown method "NAME"`}.
	UnknownMethod func(method string) *Fault
	// ErrorFault makes the fault for a handler error that holds no *Fault;
	// nil, or a nil result, means Fault{CodeApplication, err.Error()}.
	ErrorFault func(method string, err error) *Fault
	// Logger receives handler panics and results that cannot be encoded;
	// nil means slog.Default().
	Logger *slog.Logger

	mu      sync.RWMutex
	methods map[string]HandlerFunc
}

// Register makes h answer calls of method. Method names are case-sensitive,
// as in XML-RPC. It panics on an empty name, a nil h or a name registered
// before, which are programming errors.
func (s *Server) Register(method string, h HandlerFunc) {
	if method == "" || h == nil {
		panic("xmlrpc: Register needs a method name and a handler")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.methods[method]; dup {
		panic("xmlrpc: method " + strconv.Quote(method) + " registered twice")
	}
	if s.methods == nil {
		s.methods = map[string]HandlerFunc{}
	}
	s.methods[method] = h
}

// Methods returns the registered method names, sorted.
func (s *Server) Methods() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.methods))
	for name := range s.methods {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// ServeHTTP answers one XML-RPC call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "XML-RPC answers POST only", http.StatusMethodNotAllowed)
		return
	}
	limit := s.MaxBodyBytes
	if limit <= 0 {
		limit = MaxBodyBytes
	}
	body, status, err := readBody(w, r, limit)
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	writeXML(w, s.answer(r.Context(), body))
}

// drainBytes is how much of a refused body the Server reads and discards
// before it answers: clients that send the whole body before they read the
// answer (Python's http.client does) then read the 413 instead of a reset
// connection. Beyond it, the connection is just closed.
const drainBytes = 16 << 20

// readBody reads the request body, at most limit bytes of it (after gzip
// decoding), and says which status refuses it.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) (body []byte, status int, err error) {
	tooLarge := fmt.Errorf("request body larger than %d bytes", limit)
	defer func() {
		if status == http.StatusRequestEntityTooLarge && r.ContentLength <= drainBytes {
			io.Copy(io.Discard, io.LimitReader(r.Body, drainBytes))
		}
	}()
	if r.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge, tooLarge
	}
	var in io.Reader = http.MaxBytesReader(w, r.Body, limit)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		gz, err := gzip.NewReader(in)
		if err != nil {
			return nil, statusOf(err), fmt.Errorf("gzip body: %v", err)
		}
		defer gz.Close()
		in = io.LimitReader(gz, limit+1)
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Encoding %q", enc)
	}
	body, err = io.ReadAll(in)
	if err != nil {
		return nil, statusOf(err), fmt.Errorf("read body: %v", err)
	}
	if int64(len(body)) > limit {
		return nil, http.StatusRequestEntityTooLarge, tooLarge
	}
	return body, 0, nil
}

func statusOf(err error) int {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

func writeXML(w http.ResponseWriter, doc []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/xml")
	h.Set("Content-Length", strconv.Itoa(len(doc)))
	w.WriteHeader(http.StatusOK)
	w.Write(doc)
}

// answer decodes the call in body, runs it and returns the response
// document.
func (s *Server) answer(ctx context.Context, body []byte) []byte {
	call, err := DecodeCall(bytes.NewReader(body))
	if err != nil {
		code := CodeInvalidRequest
		if de, ok := err.(*DecodeError); ok && de.Syntax {
			code = CodeParseError
		}
		return EncodeFault(&Fault{Code: code, String: err.Error()})
	}
	s.mu.RLock()
	h := s.methods[call.Method]
	s.mu.RUnlock()
	if h == nil {
		var f *Fault
		if s.UnknownMethod != nil {
			f = s.UnknownMethod(call.Method)
		}
		if f == nil {
			f = NewFault(CodeMethodNotFound, "unknown method %q", call.Method)
		}
		return EncodeFault(f)
	}
	result, err := s.run(ctx, call, h)
	if err != nil {
		return EncodeFault(s.faultOf(call.Method, err))
	}
	doc, err := EncodeResponse(result)
	if err != nil {
		s.logger().Error("xmlrpc: result cannot be encoded", "method", call.Method, "err", err)
		return EncodeFault(NewFault(CodeInternalError, "%s: result cannot be encoded: %v", call.Method, err))
	}
	return doc
}

// run calls h, turning a panic into a fault.
func (s *Server) run(ctx context.Context, call *Call, h HandlerFunc) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.logger().Error("xmlrpc: method panicked", "method", call.Method, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			result, err = nil, NewFault(CodeInternalError, "%s: internal error", call.Method)
		}
	}()
	return h(ctx, call.Params)
}

func (s *Server) faultOf(method string, err error) *Fault {
	var f *Fault
	if errors.As(err, &f) && f != nil {
		return f
	}
	if s.ErrorFault != nil {
		if f := s.ErrorFault(method, err); f != nil {
			return f
		}
	}
	return &Fault{Code: CodeApplication, String: err.Error()}
}
