package archive

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	ftpserver "goftp.io/server/v2"
	"goftp.io/server/v2/driver/file"
)

// selfSigned makes a certificate for ip and a pool that trusts it.
func selfSigned(t *testing.T, ip string) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "backupsync test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP(ip)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestExplicitTLS runs the volume over explicit FTPS against the embedded
// server: control and data connections are encrypted and verified.
func TestExplicitTLS(t *testing.T) {
	checkGoroutines(t)
	const host = "127.0.1.50"
	cert, pool := selfSigned(t, host)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "v0003"), 0o755)
	drv, _ := file.NewDriver(dir)
	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv, err := ftpserver.NewServer(&ftpserver.Options{
		Driver: drv, Auth: &ftpserver.SimpleAuth{Name: "u", Password: "p"},
		Perm: ftpserver.NewSimplePerm("root", "root"), Hostname: host, PublicIP: host, Port: port,
		TLS: true, ExplicitFTPS: true, ForceTLS: true,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Logger:    &ftpserver.DiscardLogger{},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.ListenAndServe() }()
	t.Cleanup(func() { srv.Shutdown(); <-done })
	ep := Endpoint{Host: host, Port: port, User: "u", Password: "p", TLS: true, Root: "/v0003"}
	opt := testOptions()
	opt.TLSConfig = &tls.Config{RootCAs: pool, ServerName: host}
	var v *Volume
	for i := 0; ; i++ { // the server starts asynchronously
		if v, err = Open(ctxT(t), ep, opt); err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Open over FTPS: %v", err)
	}
	defer v.Close()
	t.Logf("FTPS probe: %v", v.Capabilities())
	data := randBytes(9, 300000)
	if err := v.Publish(ctxT(t), "DB/id_1/level_0/node_0/f", bytes.NewReader(data), int64(len(data)), 0); err != nil {
		t.Fatalf("publish over FTPS: %v", err)
	}
	if err := v.Publish(ctxT(t), "DB/id_1/level_0/node_0/empty", bytes.NewReader(nil), 0, 0); err != nil {
		t.Fatalf("empty publish over FTPS: %v", err)
	}
	l2, err := v.ListNode(ctxT(t), "DB", 0)
	if err != nil || len(l2.Files) != 2 {
		t.Fatalf("list over FTPS: %v %v", l2, err)
	}
	r, err := v.Open(ctxT(t), "DB/id_1/level_0/node_0/f", 1000)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data[1000:]) {
		t.Fatalf("read over FTPS: %v", err)
	}
	// Through a dial function (a tunnel) without deadlines, data stays
	// encrypted too.
	topt := opt
	var dials atomic.Int32
	topt.Dial = tunnelDial(&dials, nil)
	tv, err := Open(ctxT(t), ep, topt)
	if err != nil {
		t.Fatalf("Open over FTPS through a dial func: %v", err)
	}
	defer tv.Close()
	r, err = tv.Open(ctxT(t), "DB/id_1/level_0/node_0/f", 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) || dials.Load() < 2 {
		t.Fatalf("read over FTPS through a dial func: %v (%d dials)", err, dials.Load())
	}
	// Copies between FTPS data connections, and from a tunnelled one, pass
	// through Read and Write: encrypted bytes cannot move socket to socket.
	for name, from := range map[string]*Volume{"FTPS": v, "tunnelled FTPS": tv} {
		if spy := copyFile(t, from, v, "DB/id_1/level_0/node_0/f", "DB/copy", data); spy.direct != 0 || spy.refused == 0 {
			t.Errorf("%s copy: %d bytes moved directly, %d refusals", name, spy.direct, spy.refused)
		}
	}
	// An untrusted certificate is refused.
	opt.TLSConfig = &tls.Config{ServerName: host}
	if _, err := Open(ctxT(t), ep, opt); err == nil {
		t.Errorf("untrusted certificate accepted")
	}
}
