package xmlrpc

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A 429 carries its Retry-After header (delay-seconds) in the HTTPError.
func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"7", 7 * time.Second}, {" 30 ", 30 * time.Second}, {"", 0}, {"-3", 0}, {"soon", 0},
		{"Wed, 21 Oct 2026 07:28:00 GMT", 0}, {"99999999999", 24 * time.Hour},
	} {
		if got := retryAfter(tc.header); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "12")
		http.Error(w, "too many failed logins", http.StatusTooManyRequests)
	}))
	defer ts.Close()
	c, err := NewClient(ts.URL+"/", ClientOptions{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Call(context.Background(), "getNodeList", nil)
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 429 || he.RetryAfter != 12*time.Second || !strings.Contains(err.Error(), "retry after 12 s") {
		t.Errorf("429: %v (%+v)", err, he)
	}
}
