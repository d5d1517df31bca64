package xmlrpc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	kolo "github.com/kolo/xmlrpc"
)

// Client defaults.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultMaxResponseBytes = 16 << 20
)

// ErrUnauthorized is matched (errors.Is) by the error of a call the server
// refused with HTTP 401.
var ErrUnauthorized = errors.New("wrong user or password")

// HTTPError is the error of a call answered with an HTTP status other than
// 2xx. Redirects are not followed (a POST must not silently become a GET):
// Location names where a 3xx pointed.
type HTTPError struct {
	StatusCode int
	Status     string // "401 Unauthorized"
	Location   string
	// RetryAfter is the Retry-After header given in seconds (as the
	// control plane's login back-off answers 429), 0 when absent or an
	// HTTP date.
	RetryAfter time.Duration
}

// Error says what the status means for the caller.
func (e *HTTPError) Error() string {
	switch {
	case e.StatusCode == http.StatusUnauthorized:
		return "HTTP " + e.Status + ": " + ErrUnauthorized.Error()
	case e.Location != "":
		return "HTTP " + e.Status + " (redirected to " + e.Location + ")"
	case e.RetryAfter > 0:
		return fmt.Sprintf("HTTP %s (retry after %d s)", e.Status, int64(e.RetryAfter/time.Second))
	}
	return "HTTP " + e.Status
}

// retryAfter reads a Retry-After header of delay-seconds, bounded to a
// day; anything else is 0.
func retryAfter(h string) time.Duration {
	n, err := strconv.ParseInt(strings.TrimSpace(h), 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(min(n, 86400)) * time.Second
}

// Is reports whether target is ErrUnauthorized and the status 401.
func (e *HTTPError) Is(target error) bool {
	return target == ErrUnauthorized && e.StatusCode == http.StatusUnauthorized
}

// ClientOptions configure a Client. The zero value verifies the server's
// certificate against the system roots and times calls out after
// DefaultTimeout.
type ClientOptions struct {
	// Username and Password are sent with HTTP Basic auth. When Username is
	// empty, the user and password of the URL are used, if it has them.
	Username, Password string
	// Timeout bounds every call from connecting to the last byte of the
	// answer; 0 means DefaultTimeout.
	Timeout time.Duration
	// Insecure accepts any server certificate, as Python scripts do with
	// ssl._create_unverified_context().
	Insecure bool
	// Fingerprint pins the server's certificate: the SHA-256 of its leaf
	// certificate (DER) in a form ParseFingerprint reads, preferably
	// "SHA256:<base64>" as Fingerprint writes it. A matching certificate
	// is accepted without any other verification (self-signed is the
	// point); any other is refused with ErrFingerprintMismatch, even when
	// Insecure is set.
	Fingerprint string
	// RootCAs verifies the server when neither Insecure nor Fingerprint is
	// set; nil means the system roots.
	RootCAs *x509.CertPool
	// MaxResponseBytes bounds an answer; 0 means DefaultMaxResponseBytes.
	MaxResponseBytes int64
}

// Client calls XML-RPC methods of one server, for backupsyncctl and for
// node-to-node forwarding. It encodes calls with github.com/kolo/xmlrpc,
// adds what that library lacks (contexts and timeouts, TLS pinning, typed
// faults and HTTP errors, bounded and checked answers) and is safe for
// concurrent use. It never puts the password into an error.
type Client struct {
	url     string // without user info
	user    string
	pass    string
	auth    bool
	timeout time.Duration
	max     int64
	http    *http.Client
}

// NewClient returns a Client of the server at rawURL, an http or https URL
// that may carry user:password ("https://admin:pw@10.0.0.11/cluster1/").
func NewClient(rawURL string, opts ClientOptions) (*Client, error) {
	u, err := url.Parse(rawURL)
	// The parser's reasons quote parts of the URL, which may be parts of
	// the password: say what is wrong without them. A password with an
	// unencoded '/' or '@' parses "well" with the password in the host or
	// path: refuse that too.
	if err != nil || strings.Contains(u.Path, "@") || strings.Contains(u.RawQuery, "@") {
		return nil, errors.New("xmlrpc: bad server URL: percent-encode special characters of the user and password (%40 for @, %2F for /, %3A for :)")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("xmlrpc: server URL must be http:// or https://, not %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("xmlrpc: server URL has no host")
	}
	c := &Client{timeout: opts.Timeout, max: opts.MaxResponseBytes}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.max <= 0 {
		c.max = DefaultMaxResponseBytes
	}
	switch {
	case opts.Username != "":
		c.user, c.pass, c.auth = opts.Username, opts.Password, true
	case u.User != nil:
		c.user = u.User.Username()
		c.pass, _ = u.User.Password()
		c.auth = true
	}
	u.User = nil
	c.url = u.String()

	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: opts.RootCAs}
	switch {
	case opts.Fingerprint != "":
		pin, err := ParseFingerprint(opts.Fingerprint)
		if err != nil {
			return nil, fmt.Errorf("xmlrpc: %v", err)
		}
		tlsConf.InsecureSkipVerify = true // the pin replaces chain verification
		tlsConf.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: no certificate presented", ErrFingerprintMismatch)
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(got[:], pin[:]) != 1 {
				return fmt.Errorf("%w: server presented %s", ErrFingerprintMismatch, Fingerprint(cs.PeerCertificates[0].Raw))
			}
			return nil
		}
	case opts.Insecure:
		tlsConf.InsecureSkipVerify = true
	}
	c.http = &http.Client{
		Transport: &http.Transport{
			Proxy:               nil, // control-plane traffic goes straight to the node
			DialContext:         (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     tlsConf,
			TLSHandshakeTimeout: 10 * time.Second,
			IdleConnTimeout:     90 * time.Second,
			MaxIdleConnsPerHost: 4,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// URL returns the server URL without user and password.
func (c *Client) URL() string { return c.url }

// Close releases idle connections. The Client stays usable.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Call calls method with args and stores the result in reply.
//
// args may be bool, any integer type, finite floats, string, time.Time
// (sent in UTC), []byte (sent as base64), and slices, arrays, string-keyed
// maps and structs of them (struct fields named as EncodeResponse names
// them). nil cannot be sent (kolo/xmlrpc has no <nil/>): it is an error, as
// is a struct member name holding &, < or > (kolo does not escape names).
//
// reply may be nil (the result is checked and dropped), a *any (it receives
// the result as DecodeResponse maps it: []any, map[string]any, int64,
// []byte for base64, nil for <nil/>), or any other pointer, which
// kolo/xmlrpc fills by reflection (struct fields by `xmlrpc:"name"` tag;
// note that kolo hands base64 over as its base64 text in a string).
//
// A fault is returned as a *Fault. A refused call is an *HTTPError (401
// matches ErrUnauthorized); a call not answered within the timeout or
// before ctx ends wraps context.DeadlineExceeded or context.Canceled.
func (c *Client) Call(ctx context.Context, method string, reply any, args ...any) error {
	if err := checkMethodName(method); err != nil {
		return err
	}
	norm := make([]any, len(args))
	for i, a := range args {
		v, err := normalize(reflect.ValueOf(a), 0)
		if err != nil {
			return fmt.Errorf("%s: argument %d: %w", method, i+1, err)
		}
		norm[i] = v
	}
	body, err := kolo.EncodeMethodCall(method, norm...)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	data, err := c.post(ctx, body)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s: no answer from %s within %v: %w", method, c.url, c.timeout, err)
		}
		return fmt.Errorf("%s: %w", method, err)
	}
	v, err := DecodeResponse(bytes.NewReader(data))
	if err != nil {
		var f *Fault
		if errors.As(err, &f) {
			return f
		}
		return fmt.Errorf("%s: invalid answer from %s: %w", method, c.url, err)
	}
	switch r := reply.(type) {
	case nil:
		return nil
	case *any:
		*r = v
		return nil
	}
	if err := unmarshalKolo(data, reply); err != nil {
		return fmt.Errorf("%s: answer does not fit %T: %w", method, reply, err)
	}
	return nil
}

// post sends one request body and returns the answer's body.
func (c *Client) post(ctx context.Context, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("User-Agent", "backupsync-xmlrpc")
	if c.auth {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
		return nil, &HTTPError{StatusCode: resp.StatusCode, Status: resp.Status, Location: resp.Header.Get("Location"),
			RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.max+1))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if int64(len(data)) > c.max {
		return nil, fmt.Errorf("answer larger than %d bytes", c.max)
	}
	return data, nil
}

// unmarshalKolo fills reply from a response DecodeResponse accepted (so its
// depth and size are bounded); a panic in kolo's reflection is an error.
func unmarshalKolo(data []byte, reply any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("kolo/xmlrpc: %v", p)
		}
	}()
	return kolo.Response(data).Unmarshal(reply)
}

// checkMethodName allows the characters the XML-RPC spec allows in a method
// name; kolo writes the name without escaping it.
func checkMethodName(m string) error {
	if m == "" {
		return errors.New("xmlrpc: empty method name")
	}
	for _, r := range m {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_.:/", r)) {
			return fmt.Errorf("xmlrpc: method name %q: only A-Z a-z 0-9 _ . : / are allowed", m)
		}
	}
	return nil
}

// normalize turns an argument into the few types kolo encodes correctly:
// bool, int64, float64, string, kolo.Base64, time.Time (UTC), []any and
// map[string]any.
func normalize(v reflect.Value, depth int) (any, error) {
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil, errors.New("nil cannot be sent (kolo/xmlrpc has no <nil/>)")
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		return nil, errors.New("nil cannot be sent (kolo/xmlrpc has no <nil/>)")
	}
	switch v.Kind() {
	case reflect.Bool:
		return v.Bool(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if v.Uint() > math.MaxInt64 {
			return nil, fmt.Errorf("%d does not fit a 64-bit signed int", v.Uint())
		}
		return int64(v.Uint()), nil
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%v cannot be sent (XML-RPC has no NaN or infinity)", f)
		}
		return f, nil
	case reflect.String:
		return v.String(), nil
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return kolo.Base64(base64.StdEncoding.EncodeToString(v.Bytes())), nil
		}
		if depth++; depth > MaxDepth {
			return nil, fmt.Errorf("arrays and structs nest deeper than %d", MaxDepth)
		}
		out := make([]any, v.Len())
		for i := range out {
			e, err := normalize(v.Index(i), depth)
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
		return out, nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("%s cannot be sent (struct keys must be strings)", v.Type())
		}
		if depth++; depth > MaxDepth {
			return nil, fmt.Errorf("arrays and structs nest deeper than %d", MaxDepth)
		}
		out := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			if err := addMember(out, it.Key().String(), it.Value(), depth); err != nil {
				return nil, err
			}
		}
		return out, nil
	case reflect.Struct:
		if v.Type() == timeType {
			t := v.Interface().(time.Time).UTC()
			if y := t.Year(); y < 0 || y > 9999 {
				return nil, fmt.Errorf("year %d cannot be sent (dateTime.iso8601 has four digits)", y)
			}
			return t, nil
		}
		if depth++; depth > MaxDepth {
			return nil, fmt.Errorf("arrays and structs nest deeper than %d", MaxDepth)
		}
		out := map[string]any{}
		err := structMembers(v, func(name string, fv reflect.Value) error {
			return addMember(out, name, fv, depth)
		})
		return out, err
	}
	return nil, fmt.Errorf("%s cannot be sent", v.Type())
}

func addMember(out map[string]any, name string, v reflect.Value, depth int) error {
	if !utf8.ValidString(name) || strings.ContainsAny(name, "&<>\r") || slices.ContainsFunc([]rune(name), func(r rune) bool { return !isXMLChar(r) }) {
		return fmt.Errorf("struct member name %q cannot be sent (kolo/xmlrpc does not escape names)", name)
	}
	e, err := normalize(v, depth)
	if err != nil {
		return fmt.Errorf("member %q: %w", name, err)
	}
	out[name] = e
	return nil
}
