package control

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Login is the control plane's HTTP Basic auth with a memory of failed
// logins per source address (the request's RemoteAddr: an IPv4 address or
// an IPv6 /64; X-Forwarded-For is not trusted). One Login lives as long as
// the daemon and guards every handler that needs a login (the XML-RPC
// endpoint of both dialects, the status page), so that they share one
// throttle:
//
//   - a request without credentials is answered 401 after a short delay
//     and counts nothing (browsers ask first without);
//   - a wrong user or password is logged (user and address, never the
//     password) and answered 401 after the same delay; a repeat of one of
//     the address's last four failed logins (backupsyncctl's parallel calls
//     after a typo) is neither counted nor logged again;
//   - from the fifth distinct failure of an address on, that address is
//     backed off for 1 s, doubling per further failure up to 5 min: while
//     backed off each of its requests is answered 429 with Retry-After at
//     once, its password not checked, and the start of each back-off is
//     logged once, with the requests refused during the previous one;
//   - after a back-off one check at a time goes through: a failure backs
//     off again, a success forgets the address;
//   - a right login is never counted (the cluster's own daemons forward
//     calls with the cluster user all the time); another address is never
//     affected.
//
// At most four password checks of one address run at once; its other
// requests wait their turn (at most 128 of them, each at most 10 s, else
// 429), so that a burst of parallel guesses gets at most eight checked
// before the back-off while backupsyncctl's 32 parallel calls pass in
// turns. Memory: at most 10,000 addresses remembered (under 3 MiB), the
// least recently failed forgotten first, any after an hour without a
// failure.
type Login struct {
	logger *slog.Logger
	t      *throttle
}

// NewLogin returns a Login that logs to logger (nil: nowhere).
func NewLogin(logger *slog.Logger) *Login {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Login{logger: logger, t: newThrottle()}
}

// maxLoggedUser bounds the user name a failure logs: it comes from the
// client.
const maxLoggedUser = 64

// Require wraps next with HTTP Basic auth against users and the throttle.
// It is cheap: a daemon whose users change (SIGHUP) may call it per
// request with the current users.
func (l *Login) Require(users Users, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := addressKey(r.RemoteAddr)
		if wait, ok := l.t.admit(r.Context(), addr); !ok {
			tooManyFailures(w, wait)
			return
		}
		user, password, ok := r.BasicAuth()
		if !ok {
			l.t.release(addr)
			time.Sleep(failureDelay)
			unauthorized(w)
			return
		}
		if users.check(user, password) {
			l.t.succeeded(addr)
			next.ServeHTTP(w, r)
			return
		}
		f := l.t.failed(addr, l.t.digest(user, password), l.t.now())
		source := r.RemoteAddr
		if host, _, err := net.SplitHostPort(source); err == nil {
			source = host
		}
		if len(user) > maxLoggedUser {
			user = user[:maxLoggedUser] + "…"
		}
		if f.counted {
			l.logger.Warn("control-plane login failed", "user", user, "address", source, "failures", f.failures)
		}
		if f.backoff > 0 {
			l.logger.Warn(fmt.Sprintf("control-plane logins from %s throttled for %s after %d failed logins: answered 429 until then", addr, f.backoff, f.failures),
				"address", addr, "failures", f.failures, "backoff", f.backoff.String(), "refused_before", f.refused)
		}
		time.Sleep(failureDelay)
		unauthorized(w)
	})
}

// tooManyFailures answers a request from a backed-off address.
func tooManyFailures(w http.ResponseWriter, wait time.Duration) {
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	http.Error(w, fmt.Sprintf("429 Too Many Requests: too many failed logins from this address; try again in %d s", secs), http.StatusTooManyRequests)
}
