package daemon

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"backupsync/internal/config"

	"golang.org/x/crypto/bcrypt"
)

// These tests serve on 127.0.13.6 and dial from 127.0.13.7 and 127.0.13.8.

// startDaemon runs a daemon on 127.0.13.6 with xmlrpc block body xmlrpc,
// logging to the returned buffer, until the test ends.
func startDaemon(t *testing.T, xmlrpc string) (*Daemon, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	s, err := config.ParseSettings(filepath.Join(dir, "backupsyncd.hcl"), []byte(
		"node {\n  name = \"n0011\"\n  ip = \"127.0.13.6\"\n  index = 0\n}\nconnections_file = \"c.cfg\"\nstate_dir = \"state\"\n"+
			"xmlrpc {\n  listen = \"127.0.13.6:0\"\n"+xmlrpc+"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	d, err := New(s, Options{Stderr: &log})
	if err != nil {
		t.Fatal(err)
	}
	runDaemon(t, d)
	return d, &log
}

// A daemon without an xmlrpc user says so at start, as an error with the
// next step.
func TestNoUserIsAnErrorAtStart(t *testing.T) {
	_, log := startDaemon(t, "")
	waitFor(t, "error about the missing user", func() bool {
		return strings.Contains(log.String(), `level=ERROR msg="no xmlrpc user is configured: every call will answer 401; add `)
	})
	if !strings.Contains(log.String(), "backupsyncctl hash-password") {
		t.Errorf("the error does not say how to make a hash:\n%s", log.String())
	}
}

// getNodeList posts one call from the loopback address src.
func getNodeList(t *testing.T, addr, src, user, password string) *http.Response {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("POST", "https://"+addr+"/cluster1/", strings.NewReader("<?xml version=\"1.0\"?><methodCall><methodName>getNodeList</methodName></methodCall>"))
	req.SetBasicAuth(user, password)
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("getNodeList from %s: %v", src, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// The daemon's control plane throttles guessing per source address for
// its whole life (not per request), and logs who failed from where.
func TestControlPlaneThrottlesGuesses(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	d, log := startDaemon(t, fmt.Sprintf("  user \"admin\" {\n    password_hash = %q\n  }\n", hash))
	refused := false
	for i := 0; i < 10 && !refused; i++ {
		resp := getNodeList(t, d.ControlAddr, "127.0.13.7", "admin", fmt.Sprint("guess-", i))
		switch resp.StatusCode {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			refused = resp.Header.Get("Retry-After") != ""
		default:
			t.Fatalf("guess %d answered %d", i, resp.StatusCode)
		}
	}
	if !refused {
		t.Fatal("ten wrong passwords from one address were never answered 429 with Retry-After")
	}
	if resp := getNodeList(t, d.ControlAddr, "127.0.13.8", "admin", "right"); resp.StatusCode != http.StatusOK {
		t.Errorf("another address with the right password: %d", resp.StatusCode)
	}
	got := log.String()
	if !strings.Contains(got, `msg="control-plane login failed" user=admin address=127.0.13.7`) || strings.Contains(got, "guess-") {
		t.Errorf("log:\n%s", got)
	}
}
