package xmlrpc

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// python3 returns the path of python3, or skips the test (fails it when
// CI=true: there the interop check must run).
func python3(t *testing.T) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 is needed for the interop test: %v", err)
		}
		t.Skipf("python3 not found: %v", err)
	}
	return py
}

// TestPythonClient runs testdata/pyclient.py, Python's own xmlrpc.client
// the way admins use it, against the Server over HTTP and HTTPS.
func TestPythonClient(t *testing.T) {
	t.Parallel()
	py := python3(t)
	s := testServer(io.Discard)
	mux := http.NewServeMux()
	mux.Handle("/", s)
	mux.Handle("/cluster1/", basicAuth(s))

	for _, tls := range []bool{false, true} {
		name := "http"
		if tls {
			name = "https"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var ts *httptest.Server
			if tls {
				ts = httptest.NewTLSServer(mux)
			} else {
				ts = httptest.NewServer(mux)
			}
			defer ts.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, py, "testdata/pyclient.py", ts.URL)
			cmd.Env = withoutProxies(os.Environ())
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("pyclient.py %s: %v\n%s", ts.URL, err, out)
			}
			if !strings.HasPrefix(string(out), "ok: ") {
				t.Fatalf("pyclient.py said:\n%s", out)
			}
			t.Logf("%s", strings.TrimSpace(string(out)))
		})
	}
}

// withoutProxies drops proxy settings, which would send loopback calls
// elsewhere.
func withoutProxies(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasSuffix(strings.ToLower(k), "_proxy") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
