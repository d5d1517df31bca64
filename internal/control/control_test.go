package control

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"backupsync/internal/config"
	"backupsync/internal/plugin"
	"backupsync/internal/tunnel"
	"backupsync/internal/xmlrpc"

	"golang.org/x/crypto/bcrypt"
)

// This package's tests use 127.0.12.x.

func TestCertificateIsMadeOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	_, fp1, err := Certificate("", "", dir, []string{"127.0.12.1"})
	if err != nil {
		t.Fatal(err)
	}
	_, fp2, err := Certificate("", "", dir, []string{"127.0.12.1"})
	if err != nil || fp1 != fp2 || !strings.HasPrefix(fp1, "SHA256:") {
		t.Errorf("fingerprints %q %q, %v", fp1, fp2, err)
	}
	if _, _, err := Certificate(filepath.Join(dir, "nope.pem"), filepath.Join(dir, "nope.key"), dir, nil); err == nil {
		t.Error("a missing configured certificate was accepted")
	}
}

func TestRequireLogin(t *testing.T) {
	hash, _ := HashPassword("right")
	h := RequireLogin(Users{"admin": hash}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("in")) }))
	for _, tc := range []struct {
		user, pw string
		set      bool
		want     int
	}{{"", "", false, 401}, {"admin", "wrong", true, 401}, {"nobody", "right", true, 401}, {"admin", "right", true, 200}} {
		r := httptest.NewRequest("POST", "/cluster1/", nil)
		if tc.set {
			r.SetBasicAuth(tc.user, tc.pw)
		}
		w := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s/%s: %d, want %d", tc.user, tc.pw, w.Code, tc.want)
		}
		if tc.want == 401 && (time.Since(start) < failureDelay || w.Header().Get("WWW-Authenticate") == "") {
			t.Errorf("%s/%s: a failure must be slow and ask for Basic auth", tc.user, tc.pw)
		}
	}
}

// An unknown user must cost what a wrong password costs: the literal dummy
// hash is a valid bcrypt hash at the cost real ones are made with.
func TestDummyHashCostsWhatARealOneDoes(t *testing.T) {
	cost, err := bcrypt.Cost(dummyHash)
	if err != nil || cost != bcrypt.DefaultCost {
		t.Fatalf("dummy hash cost %d, %v; want %d", cost, err, bcrypt.DefaultCost)
	}
	real, _ := HashPassword("x")
	if len(real) != len(dummyHash) {
		t.Fatalf("dummy hash %d bytes, a real one %d", len(dummyHash), len(real))
	}
}

func newSurface(t *testing.T, peers ...Peer) (*Surface, *httptest.Server) {
	t.Helper()
	dir := t.TempDir()
	s := &config.Settings{Node: config.Node{Name: "n0011", IP: "127.0.12.1"}, StateDir: dir, ConnectionsFile: filepath.Join(dir, "c.cfg")}
	keys, err := tunnel.NewKeyStore(dir, "n0011")
	if err != nil {
		t.Fatal(err)
	}
	surface := &Surface{Self: "n0011", Local: &plugin.Node{Settings: s, Keys: keys}, Version: "9.9", ForwardTimeout: 2 * time.Second,
		Nodes: append([]Peer{{Name: "n0011"}}, peers...)}
	srv := httptest.NewUnstartedServer(surface.Handler())
	srv.Listener, _ = net.Listen("tcp", "127.0.12.1:0")
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return surface, srv
}

func call(t *testing.T, url, method string, args ...any) ([]any, error) {
	c, err := xmlrpc.NewClient(url, xmlrpc.ClientOptions{Insecure: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var reply any
	err = c.Call(context.Background(), method, &reply, args...)
	out, _ := reply.([]any)
	return out, err
}

func TestSurface(t *testing.T) {
	// n0013's URL answers nothing: a closed port on this package's address.
	ln, _ := net.Listen("tcp", "127.0.12.1:0")
	dead := "https://" + ln.Addr().String() + "/"
	ln.Close()
	_, srv := newSurface(t, Peer{Name: "n0013", URL: dead})

	if got, _ := call(t, srv.URL, "showPluginList"); len(got) != 1 || got[0] != "Administration.BackupSync-9.9" {
		t.Errorf("showPluginList %v", got)
	}
	if got, _ := call(t, srv.URL, "getNodeList"); len(got) != 2 || got[1] != "n0013" {
		t.Errorf("getNodeList %v", got)
	}
	// Any version of our plugin is accepted; the argument may be omitted or bytes.
	for _, args := range [][]any{
		{"Administration.BackupSync-1.0.1", "n0011", "install"},
		{"Administration.BackupSync-0.1", "n0011", "STATUS", ""},
		{"Administration.BackupSync", "n0011", "GETLOG", []byte("5")},
	} {
		if got, err := call(t, srv.URL, "callPlugin", args...); err != nil || len(got) != 2 || got[0] != int64(0) {
			t.Errorf("callPlugin%v = %v, %v", args, got, err)
		}
	}
	start := time.Now()
	got, err := call(t, srv.URL, "callPlugin", "Administration.BackupSync-1.0.1", "n0013", "STATUS", "")
	if err != nil || got[0] != int64(256) || !strings.HasPrefix(got[1].(string), "n0013 unreachable: ") || time.Since(start) > 3*time.Second {
		t.Errorf("dead node: %v, %v after %v", got, err, time.Since(start))
	}
	for _, args := range [][]any{
		{"Administration.Other-1", "n0011", "STATUS", ""},
		{"Administration.BackupSync-1", "n0099", "STATUS", ""},
		{"Administration.BackupSync-1", "n0011", "REBOOT", ""},
	} {
		_, err := call(t, srv.URL, "callPlugin", args...)
		if f, ok := err.(*xmlrpc.Fault); !ok || f.Code != -1 || !strings.HasPrefix(f.String, "Unexpected Zope exception: ") {
			t.Errorf("callPlugin%v: %v, want a Zope fault", args, err)
		}
	}
	if _, err := call(t, srv.URL, "callPlugin", "Administration.BackupSync-1", "n0011"); err == nil || !strings.Contains(err.Error(), "argument 3 is missing") {
		t.Errorf("missing verb: %v", err)
	}
	if _, err := call(t, srv.URL, "rebootCluster"); err == nil || !strings.Contains(err.Error(), `unknown method "rebootCluster"`) {
		t.Errorf("unknown method: %v", err)
	}
}

func TestForwardingReachesThePeersOwnNode(t *testing.T) {
	_, peer := newSurface(t)
	// The peer's surface names itself n0011 too; forward to it as "n0011"
	// from a surface that is n0012.
	s, front := newSurface(t)
	s.Self = "n0012"
	s.Nodes = []Peer{{Name: "n0011", URL: peer.URL}, {Name: "n0012"}}
	got, err := call(t, front.URL, "callPlugin", "Administration.BackupSync-1", "n0011", "STATUS", "")
	if err != nil || got[0] != int64(0) || got[1] != "not installed" {
		t.Errorf("forwarded STATUS: %v, %v", got, err)
	}
	// An empty output comes back as "", not None.
	call(t, front.URL, "callPlugin", "Administration.BackupSync-1", "n0011", "INSTALL", "")
	got, err = call(t, front.URL, "callPlugin", "Administration.BackupSync-1", "n0011", "GETLOG", "")
	if err != nil || len(got) != 2 || got[0] != int64(0) || got[1] != "" {
		t.Errorf("forwarded GETLOG of an empty log: %#v, %v", got, err)
	}
	// A forwarded call is never forwarded again.
	if _, err := call(t, peer.URL, localMethod, "Administration.BackupSync-1", "n0099", "STATUS", ""); err == nil {
		t.Error("callLocal for another node was accepted")
	}
}
