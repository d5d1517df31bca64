package ctl

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"backupsync/internal/xmlrpc"
)

// Explain's answers to refusals of the HTTP layer say what to do next.
func TestExplainHTTP(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"429 with Retry-After", &xmlrpc.HTTPError{StatusCode: 429, Status: "429 Too Many Requests", RetryAfter: 8 * time.Second},
			"too many failed logins from this address: try again in 8 s (the daemon slows down an address after failed logins; check the user and password before you retry)"},
		{"429 without", &xmlrpc.HTTPError{StatusCode: 429, Status: "429 Too Many Requests"},
			"too many failed logins from this address: try again in a few seconds"},
		{"404", &xmlrpc.HTTPError{StatusCode: 404, Status: "404 Not Found"}, "HTTP 404 Not Found: check the URL's path"},
		{"405", &xmlrpc.HTTPError{StatusCode: 405, Status: "405 Method Not Allowed"}, "the URL does not lead to an XML-RPC endpoint"},
	} {
		if got := Explain(tc.err); !strings.HasPrefix(got, tc.want) && !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}

	// A real 429 with its Retry-After, as the control plane's login
	// back-off answers.
	ln, err := net.Listen("tcp", "127.0.10.32:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "17")
		http.Error(w, "429 Too Many Requests: too many failed logins from this address; try again in 17 s", http.StatusTooManyRequests)
	}))
	hs.Listener = ln
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	hs.StartTLS()
	defer hs.Close()
	c, err := Dial(Options{URL: "https://u:pw@" + ln.Addr().String() + "/", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Nodes(context.Background())
	if msg := Explain(err); !strings.HasPrefix(msg, "too many failed logins from this address: try again in 17 s") {
		t.Errorf("429: %q", msg)
	}
}
