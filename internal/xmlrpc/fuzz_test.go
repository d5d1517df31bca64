package xmlrpc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeCall feeds arbitrary bodies to the decoder and the Server's
// answer path. The decoder must never panic and fail only with a
// *DecodeError; what it accepts must survive encode → decode unchanged (up
// to what the encoder documents: times in UTC to the second; NaN, infinity
// and years beyond 0..9999 are refused); and the Server must answer every
// body with a well-formed response: a result or a fault.
func FuzzDecodeCall(f *testing.F) {
	f.Add([]byte(`<?xml version='1.0'?><methodCall><methodName>echo</methodName><params><param><value><int>1</int></value></param></params></methodCall>`))
	f.Add([]byte(`<methodCall><methodName>echo</methodName><params><param><value><nil/></value></param></params></methodCall>`))
	srv := &Server{Logger: discardLogger()}
	srv.Register("echo", func(_ context.Context, params []any) (any, error) { return params, nil })
	f.Fuzz(func(t *testing.T, data []byte) {
		call, err := DecodeCall(bytes.NewReader(data))
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Err == nil {
				t.Fatalf("error %T %v is not a *DecodeError", err, err)
			}
		} else {
			if call.Method == "" || call.Params == nil {
				t.Fatalf("accepted call %#v", call)
			}
			doc, err := EncodeCall(call.Method, call.Params...)
			if err != nil {
				if msg := err.Error(); !strings.Contains(msg, "NaN") && !strings.Contains(msg, "Inf") && !strings.Contains(msg, "year") {
					t.Fatalf("decoded params do not encode: %v", err)
				}
			} else {
				again, err := DecodeCall(bytes.NewReader(doc))
				if err != nil {
					t.Fatalf("encoded call does not decode: %v\n%s", err, doc)
				}
				if again.Method != call.Method || !sameValue(again.Params, call.Params) {
					t.Fatalf("round trip changed the call:\n%#v\n%#v", call, again)
				}
			}
		}
		answer := srv.answer(context.Background(), data)
		if _, err := DecodeResponse(bytes.NewReader(answer)); err != nil {
			var fault *Fault
			if !errors.As(err, &fault) {
				t.Fatalf("Server answered a document that does not decode: %v\n%s", err, answer)
			}
		}
	})
}

// FuzzDecodeResponse feeds arbitrary answers to what the Client runs on
// them: the decoder, then kolo/xmlrpc's reflection. Neither may crash.
func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`<methodResponse><params><param><value><array><data><value><int>0</int></value><value>activated</value></data></array></value></param></params></methodResponse>`))
	f.Add(EncodeFault(ZopeFault("NotFound")))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeResponse(bytes.NewReader(data))
		if err != nil {
			var de *DecodeError
			var fault *Fault
			if !errors.As(err, &de) && !errors.As(err, &fault) {
				t.Fatalf("error %T %v is neither a *DecodeError nor a *Fault", err, err)
			}
			return
		}
		if doc, err := EncodeResponse(v); err == nil {
			again, err := DecodeResponse(bytes.NewReader(doc))
			if err != nil || !sameValue(again, v) {
				t.Fatalf("round trip: %#v → %#v, %v", v, again, err)
			}
		}
		var (
			anyV   any
			list   []any
			m      map[string]any
			str    string
			record struct {
				Code   int       `xmlrpc:"result_code"`
				Name   string    `xmlrpc:"result_name"`
				Output []any     `xmlrpc:"result_output"`
				When   time.Time `xmlrpc:"when"`
			}
		)
		for _, reply := range []any{&anyV, &list, &m, &str, &record} {
			unmarshalKolo(data, reply) // errors are fine; panics are recovered
		}
	})
}

// sameValue compares decoded values as a round trip must keep them: times
// as instants to the second, everything else exactly.
func sameValue(a, b any) bool {
	switch a := a.(type) {
	case time.Time:
		b, ok := b.(time.Time)
		return ok && a.Truncate(time.Second).Equal(b.Truncate(time.Second))
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameValue(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			w, ok := b[k]
			if !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []byte:
		b, ok := b.([]byte)
		return ok && bytes.Equal(a, b)
	case float64:
		b, ok := b.(float64)
		return ok && (a == b)
	}
	return a == b
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
