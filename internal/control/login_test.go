package control

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Login's servers listen on 127.0.12.1; clients dial from 127.0.12.7 (a
// guesser), 127.0.12.8 (another address) and 127.0.12.20 (the measurement).

// lockedBuffer is a log destination safe for concurrent handlers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// loginServer serves h on 127.0.12.1 (TLS when tlsOn).
func loginServer(t *testing.T, h http.Handler, tlsOn bool) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	ln, err := net.Listen("tcp", "127.0.12.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	if tlsOn {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv.URL + "/cluster1/"
}

// clientFrom returns a client whose connections come from the loopback
// address src, so that the server sees src as the request's RemoteAddr.
func clientFrom(t *testing.T, src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// answer is what one login attempt got.
type answer struct {
	code       int
	retryAfter string
}

func attempt(t *testing.T, c *http.Client, url, user, password string) answer {
	req, _ := http.NewRequest("POST", url, strings.NewReader("<methodCall/>"))
	if user != "" || password != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("POST as %s: %v", user, err)
		return answer{}
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return answer{resp.StatusCode, resp.Header.Get("Retry-After")}
}

func newTestLogin(t *testing.T) (*Login, *fakeClock, *lockedBuffer, string) {
	t.Helper()
	var log lockedBuffer
	l := NewLogin(slog.New(slog.NewTextHandler(&log, nil)))
	clock := &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	l.t.now = clock.now
	// The lowest cost: bcrypt at the default cost takes a second under
	// the race detector, and these tests check many passwords at once.
	hash, _ := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	url := loginServer(t, l.Require(Users{"admin": string(hash)}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("in"))
	})), false)
	return l, clock, &log, url
}

// Parallel wrong passwords from one address are throttled (429 with
// Retry-After, the password unchecked) while a client from another address
// logs in; the right password works again after the back-off; the log has
// the user and the address and never a password.
func TestLoginThrottlesParallelGuesses(t *testing.T) {
	_, clock, log, url := newTestLogin(t)
	guesser, other := clientFrom(t, "127.0.12.7"), clientFrom(t, "127.0.12.8")

	const parallel = 20
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for g := range parallel {
		wg.Go(func() {
			// Guess until refused (bounded: the throttle must refuse well before).
			for i := range 30 {
				a := attempt(t, guesser, url, "admin", fmt.Sprintf("guess-%d-%d", g, i))
				mu.Lock()
				counts[a.code]++
				mu.Unlock()
				if a.code == http.StatusTooManyRequests {
					if n, err := strconv.Atoi(a.retryAfter); err != nil || n < 1 || n > int(throttleMax/time.Second) {
						t.Errorf("429 with Retry-After %q", a.retryAfter)
					}
					return
				}
				if a.code != http.StatusUnauthorized {
					t.Errorf("guess answered %d", a.code)
					return
				}
			}
			t.Errorf("guesser %d was never throttled", g)
		})
	}
	wg.Wait()
	// The clock stands still: the back-off lasts until the test moves it.
	// At most throttleParallel checks run at once: the burst gets no more
	// than that beyond the free failures checked.
	if bound := throttleFree - 1 + throttleParallel; counts[http.StatusTooManyRequests] != parallel || counts[http.StatusUnauthorized] > bound {
		t.Fatalf("answers %v: want every guesser refused, after at most %d checked guesses", counts, bound)
	}
	if a := attempt(t, guesser, url, "admin", "right"); a.code != http.StatusTooManyRequests {
		t.Errorf("the right password during the back-off: %d, want 429 unchecked", a.code)
	}
	if a := attempt(t, other, url, "admin", "right"); a.code != http.StatusOK {
		t.Errorf("another address with the right password: %d", a.code)
	}
	if a := attempt(t, other, url, "admin", "wrong"); a.code != http.StatusUnauthorized {
		t.Errorf("another address with a wrong password: %d, want 401", a.code)
	}

	clock.add(throttleMax)
	if a := attempt(t, guesser, url, "admin", "right"); a.code != http.StatusOK {
		t.Errorf("the right password after the back-off: %d", a.code)
	}
	// The success forgot the address: a wrong password is a plain failure.
	if a := attempt(t, guesser, url, "admin", "wrong-after"); a.code != http.StatusUnauthorized {
		t.Errorf("a wrong password after a success: %d, want 401", a.code)
	}

	got := log.String()
	for _, want := range []string{
		`msg="control-plane login failed" user=admin address=127.0.12.7`,
		`address=127.0.12.8`,
		"throttled for",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "throttled for"); n != 1 {
		t.Errorf("%d throttle lines for one burst, want 1:\n%s", n, got)
	}
	for _, secret := range []string{"guess-", "right", "wrong"} {
		if strings.Contains(got, secret) {
			t.Errorf("the log holds a password (%q):\n%s", secret, got)
		}
	}
}

// Right logins are never counted, however many arrive at once from one
// address (the cluster's daemons forward with the cluster user, and
// backupsyncctl sends 32 calls at once); requests without credentials
// (a browser's first) are answered 401 and count nothing.
func TestLoginNeverThrottlesRightLogins(t *testing.T) {
	l, _, log, url := newTestLogin(t)
	c := clientFrom(t, "127.0.12.7")
	for range throttleFree + 1 {
		if a := attempt(t, c, url, "", ""); a.code != http.StatusUnauthorized {
			t.Fatalf("no credentials: %d", a.code)
		}
	}
	if n := l.t.tracked(); n != 0 || strings.Contains(log.String(), "login failed") {
		t.Fatalf("requests without credentials were counted: %d tracked\n%s", n, log.String())
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for g := range 32 {
		wg.Go(func() {
			for i := range 4 {
				pw := "right"
				if g == 0 && i < throttleFree-2 {
					pw = fmt.Sprint("typo", i) // below the threshold
				}
				a := attempt(t, c, url, "admin", pw)
				mu.Lock()
				codes[a.code]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if codes[http.StatusOK] != 32*4-(throttleFree-2) || codes[http.StatusTooManyRequests] != 0 {
		t.Errorf("answers %v", codes)
	}
}

// The old stateless wrapper still asks for Basic auth and is slow to fail.
func TestLoginFailureIsSlowAndAsksForBasicAuth(t *testing.T) {
	_, _, _, url := newTestLogin(t)
	c := clientFrom(t, "127.0.12.8")
	start := time.Now()
	req, _ := http.NewRequest("POST", url, nil)
	req.SetBasicAuth("nobody", "x")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" || time.Since(start) < failureDelay {
		t.Errorf("unknown user: %d, WWW-Authenticate %q after %v", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), time.Since(start))
	}
}

// TestMeasureGuessRate measures what 50 parallel wrong logins from one
// address get in 5 s, without and with the throttle (LOGIN_MEASURE=1; the
// numbers go to docs/RELIABILITY.md).
func TestMeasureGuessRate(t *testing.T) {
	if os.Getenv("LOGIN_MEASURE") == "" {
		t.Skip("set LOGIN_MEASURE=1 to measure")
	}
	hash, _ := HashPassword("right")
	users := Users{"admin": hash}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("in")) })
	const parallel, window = 50, 5 * time.Second
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"RequireLogin (no throttle)", RequireLogin(users, ok)},
		{"Login.Require", NewLogin(nil).Require(users, ok)},
	} {
		url := loginServer(t, tc.h, true)
		c := clientFrom(t, "127.0.12.20")
		var mu sync.Mutex
		codes := map[int]int{}
		var firstRefusal time.Duration
		start := time.Now()
		var wg sync.WaitGroup
		for g := range parallel {
			wg.Go(func() {
				for i := 0; time.Since(start) < window; i++ {
					a := attempt(t, c, url, "admin", fmt.Sprintf("g%d-%d", g, i))
					mu.Lock()
					codes[a.code]++
					if a.code == http.StatusTooManyRequests && firstRefusal == 0 {
						firstRefusal = time.Since(start)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		t.Logf("%s: %d parallel wrong logins from one address for %v: %d answered 401 (%.1f checked guesses/s), %d answered 429 (first after %v), other %v",
			tc.name, parallel, elapsed.Round(time.Millisecond), codes[401], float64(codes[401])/elapsed.Seconds(), codes[429], firstRefusal.Round(time.Millisecond), otherCodes(codes))
	}
}

func otherCodes(codes map[int]int) map[int]int {
	out := map[int]int{}
	for c, n := range codes {
		if c != 401 && c != 429 {
			out[c] = n
		}
	}
	return out
}
