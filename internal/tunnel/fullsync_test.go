package tunnel_test

// Whole cycles through our tunnel server with the forwarding rule in force:
// every data connection is one the FTP server announced, or, under FTPS,
// one in the passive range. Addresses 127.0.3.21-23.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"backupsync/internal/archive"
	"backupsync/internal/config"
	"backupsync/internal/freeport"
	"backupsync/internal/ftptest"
	"backupsync/internal/runner"
	"backupsync/internal/tunnel"
)

const (
	syncSrcIP = "127.0.3.21"
	syncDstIP = "127.0.3.22"
	ftpsDstIP = "127.0.3.23"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pairedKeys returns a client node's key store (in stateDir) and a server
// node's, with the client key of conn authorized and the host key pinned.
func pairedKeys(t *testing.T, stateDir, conn string) (client, server *tunnel.KeyStore) {
	t.Helper()
	client, err := tunnel.NewKeyStore(stateDir, "n0011")
	if err != nil {
		t.Fatal(err)
	}
	if server, err = tunnel.NewKeyStore(t.TempDir(), "n0021"); err != nil {
		t.Fatal(err)
	}
	cl, err := client.ClientKeyLine(conn, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.Upload([]byte(cl)); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Activate(conn); err != nil {
		t.Fatal(err)
	}
	hl, err := server.HostKeyLine(conn, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Upload([]byte(hl)); err != nil {
		t.Fatal(err)
	}
	return client, server
}

// serveTunnel runs our server on host with cfg until the test ends and
// returns its port and log.
func serveTunnel(t *testing.T, host string, cfg tunnel.ServerConfig) (int, *lockedBuf) {
	t.Helper()
	lb := &lockedBuf{}
	cfg.Logger = slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := tunnel.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().(*net.TCPAddr).Port, lb
}

func writeTree(t *testing.T, root string, files map[string]int) {
	t.Helper()
	old := time.Now().Add(-time.Hour)
	for rel, size := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, size)
		rand.Read(data)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, old, old)
	}
}

func treeSums(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(filepath.Join(root, "DB"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s := md5.Sum(b)
		rel, _ := filepath.Rel(root, p)
		out[rel] = hex.EncodeToString(s[:])
		return nil
	})
	return out
}

// TestFullSyncThroughOurTunnel: an SSH = client cycle through our server
// to each real FTP server; every data connection is announced by the
// destination's FTP server and allowed; the copy is md5-identical and the
// server refused nothing.
func TestFullSyncThroughOurTunnel(t *testing.T) {
	if os.Geteuid() != 0 && os.Getenv("CI") != "true" {
		t.Skip("real FTP servers need root")
	}
	for _, kind := range ftptest.RealKinds() {
		t.Run(kind, func(t *testing.T) {
			src := ftptest.Start(t, ftptest.KindVsftpd, syncSrcIP)
			dst := ftptest.Start(t, kind, syncDstIP)
			files := map[string]int{"DB/id_2/level_1/node_0/metadata": 100}
			for i := range 6 {
				files[fmt.Sprintf("DB/id_1/level_0/node_0/data_%02d", i)] = 512<<10 + i
			}
			files["DB/id_1/level_0/node_0/metadata"] = 100
			writeTree(t, filepath.Join(src.Dir, src.Volume), files)

			stateDir := t.TempDir()
			clientKeys, serverKeys := pairedKeys(t, stateDir, "Conn1")
			port, log := serveTunnel(t, syncDstIP, tunnel.ServerConfig{Keys: serverKeys, ArchiveFTP: dst.Addr()})
			cfg := fmt.Sprintf("Conn1\n{\nDATABASE_NAME = DB\nSTART_CYCLE = @hourly\nLOCAL_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_NODES = %s\nSSH = client\nSETTLE_TIME = 30s\nPARALLEL = 4\n}\n",
				src.User, src.Password, src.Port, src.Volume, dst.User, dst.Password, dst.Port, dst.Volume, syncDstIP)
			conns, err := config.ParseConnections("t.cfg", []byte(cfg))
			if err != nil {
				t.Fatal(err)
			}
			s := &config.Settings{Node: config.Node{Name: "n0011", IP: syncSrcIP}, StateDir: stateDir, FTPDefaultPort: 2021,
				SSHClient: &config.SSHClient{Port: port}}
			r := &runner.Runner{Settings: s, Conn: conns[0], Keys: clientKeys, ConnectTimeout: 10 * time.Second}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			rep, _, err := r.Once(ctx, false)
			if err != nil || !rep.OK() || rep.Copied != len(files) {
				t.Fatalf("cycle: %v %s %+v\nserver log:\n%s", err, rep.Summary(), rep.Failed, log)
			}
			want, got := treeSums(t, filepath.Join(src.Dir, src.Volume)), treeSums(t, filepath.Join(dst.Dir, dst.Volume))
			for p, sum := range want {
				if got[p] != sum {
					t.Errorf("%s: destination md5 %q, source %q", p, got[p], sum)
				}
			}
			if strings.Contains(log.String(), "refused") {
				t.Errorf("the server refused something in a legitimate cycle:\n%s", log)
			}
		})
	}
}

// selfSignedPEM makes a certificate for ip, in PEM, and a pool trusting it.
func selfSignedPEM(t *testing.T, ip string) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "backupsync test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP(ip)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), pool
}

// TestFTPSThroughOurTunnelWithPassiveRange: over FTPS the announcements
// cannot be read; with the FTP server's passive range configured the
// volume publishes, lists and reads through the tunnel; without it every
// data connection is refused with a log line saying what to set.
func TestFTPSThroughOurTunnelWithPassiveRange(t *testing.T) {
	if os.Geteuid() != 0 && os.Getenv("CI") != "true" {
		t.Skip("vsftpd needs root")
	}
	certPEM, keyPEM, pool := selfSignedPEM(t, ftpsDstIP)
	lo, err := freeport.On(ftpsDstIP)
	if err != nil {
		t.Fatal(err)
	}
	lo = min(lo, 65535-50)
	hi := lo + 49
	dst := ftptest.StartTLS(t, ftpsDstIP, certPEM, keyPEM, lo, hi)
	stateDir := t.TempDir()
	clientKeys, serverKeys := pairedKeys(t, stateDir, "Conn1")
	ep := archive.Endpoint{Host: ftpsDstIP, Port: dst.Port, User: dst.User, Password: dst.Password, TLS: true, Root: "/" + dst.Volume}
	open := func(port int) (*archive.Volume, error) {
		c, err := tunnel.NewClient(tunnel.ClientConfig{Connection: "Conn1", Nodes: []string{fmt.Sprintf("%s:%d", ftpsDstIP, port)}, Keys: clientKeys})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return archive.Open(ctx, ep, archive.Options{Dial: c.DialContext, MaxConns: 2, ConnectTimeout: 10 * time.Second, OpTimeout: 10 * time.Second,
			TLSConfig: &tls.Config{RootCAs: pool, ServerName: ftpsDstIP, MinVersion: tls.VersionTLS12, ClientSessionCache: tls.NewLRUClientSessionCache(8)}})
	}

	t.Run("without a range", func(t *testing.T) {
		port, log := serveTunnel(t, ftpsDstIP, tunnel.ServerConfig{Keys: serverKeys, ArchiveFTP: dst.Addr()})
		v, err := open(port)
		if err == nil {
			err = v.Publish(context.Background(), "DB/id_1/level_0/node_0/data_00", strings.NewReader("x"), 1, 0)
			v.Close()
		}
		if err == nil {
			t.Fatal("FTPS data connection through the tunnel without a passive range")
		}
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(log.String(), "set ssh_server.passive_ports") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.Contains(log.String(), "set ssh_server.passive_ports") {
			t.Fatalf("no log line saying what to set:\n%s", log)
		}
	})
	t.Run("with the range", func(t *testing.T) {
		port, log := serveTunnel(t, ftpsDstIP, tunnel.ServerConfig{Keys: serverKeys, ArchiveFTP: dst.Addr(), PassivePortMin: lo, PassivePortMax: hi})
		v, err := open(port)
		if err != nil {
			t.Fatalf("open over FTPS through the tunnel: %v\nserver log:\n%s", err, log)
		}
		defer v.Close()
		ctx := context.Background()
		want := map[string][]byte{}
		for i := range 4 {
			p := fmt.Sprintf("DB/id_1/level_0/node_0/data_%02d", i)
			data := make([]byte, 256<<10+i)
			rand.Read(data)
			want[p] = data
			if err := v.Publish(ctx, p, bytes.NewReader(data), int64(len(data)), 0); err != nil {
				t.Fatalf("publish %s: %v\nserver log:\n%s", p, err, log)
			}
		}
		l, err := v.ListNode(ctx, "DB", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Files) != len(want) {
			t.Fatalf("listing: %+v", l.Files)
		}
		for p, data := range want {
			rc, err := v.Open(ctx, p, 0)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %s: %d bytes, %v", p, len(got), err)
			}
			onDisk, err := os.ReadFile(filepath.Join(dst.Dir, dst.Volume, p))
			if err != nil || !bytes.Equal(onDisk, data) {
				t.Fatalf("%s on the FTP server: %v", p, err)
			}
		}
		if strings.Contains(log.String(), "refused") {
			t.Errorf("refusals over FTPS with the range:\n%s", log)
		}
	})
}
