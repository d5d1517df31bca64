package runner

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"backupsync/internal/config"
	"backupsync/internal/ftptest"
	"backupsync/internal/linkemu"
	"backupsync/internal/sshtest"
	"backupsync/internal/tunnel"
)

// The far-end tests use 127.0.2.41 (source vsftpd), 127.0.2.42
// (destination vsftpd and its node's SSH server) and 127.0.2.43 (the link
// emulator in front of the SSH server: the address the client dials is not
// the destination node's own).
const (
	feSrcIP  = "127.0.2.41"
	feDstIP  = "127.0.2.42"
	feLinkIP = "127.0.2.43"
)

type lockedLog struct {
	mu gosync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// farEnv is env with an SSH = client connection through our tunnel server,
// behind an emulated link.
type farEnv struct {
	*env
	serverLog *lockedLog
	clientLog *lockedLog
	keys      *tunnel.KeyStore
	sshPort   int
	remote    string // REMOTE_NODES
	parallel  int
}

// newFarEnv starts both archive FTPs, the destination node's tunnel server
// (mod tunes it) and a link of rtt in front of it, and pairs the nodes.
func newFarEnv(t *testing.T, rtt time.Duration, mod func(*tunnel.ServerConfig)) *farEnv {
	return newFarEnvLink(t, linkemu.Config{RTT: rtt}, mod)
}

// newFarEnvLink is newFarEnv with a link of any kind.
func newFarEnvLink(t *testing.T, link linkemu.Config, mod func(*tunnel.ServerConfig)) *farEnv {
	t.Helper()
	e := &env{t: t, stateDir: t.TempDir()}
	e.src = ftptest.Start(t, "vsftpd", feSrcIP)
	e.dst = ftptest.Start(t, "vsftpd", feDstIP)
	fe := &farEnv{env: e, serverLog: &lockedLog{}, clientLog: &lockedLog{}}

	ck, err := tunnel.NewKeyStore(e.stateDir, "n0011")
	if err != nil {
		t.Fatal(err)
	}
	sk, err := tunnel.NewKeyStore(t.TempDir(), "n0021")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := ck.ClientKeyLine("Conn1", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sk.Upload([]byte(cl)); err != nil {
		t.Fatal(err)
	}
	if _, err := sk.Activate("Conn1"); err != nil {
		t.Fatal(err)
	}
	hl, err := sk.HostKeyLine("Conn1", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ck.Upload([]byte(hl)); err != nil {
		t.Fatal(err)
	}
	fe.keys = ck

	cfg := tunnel.ServerConfig{Keys: sk, ArchiveFTP: e.dst.Addr(),
		Logger: slog.New(slog.NewTextHandler(fe.serverLog, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := tunnel.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", feDstIP+":0")
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
	_, linkAddr := linkemu.Start(t, link, feLinkIP, ln.Addr().String())
	host, port, _ := net.SplitHostPort(linkAddr)
	fe.sshPort, _ = strconv.Atoi(port)
	fe.remote = host
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s\nclient log:\n%s", fe.serverLog.String(), fe.clientLog.String())
		}
	})
	return fe
}

func (fe *farEnv) runner() *Runner {
	t := fe.t
	e := fe.env
	cfg := fmt.Sprintf("Conn1\n{\nDATABASE_NAME = DB\nSTART_CYCLE = @hourly\nLOCAL_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_NODES = %s\nSSH = client\nSETTLE_TIME = 30s\nPARALLEL = %d\n}\n",
		e.src.User, e.src.Password, e.src.Port, e.src.Volume, e.dst.User, e.dst.Password, e.dst.Port, e.dst.Volume, fe.remote, max(fe.parallel, 4))
	conns, err := config.ParseConnections("t.cfg", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	s := &config.Settings{Node: config.Node{Name: "n0011", IP: feSrcIP}, StateDir: e.stateDir, FTPDefaultPort: 2021,
		SSHClient: &config.SSHClient{Port: fe.sshPort}}
	return &Runner{Settings: s, Conn: conns[0], Keys: fe.keys, ConnectTimeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(fe.clientLog, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

func (fe *farEnv) cycle() error {
	fe.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, _, err := fe.runner().Once(ctx, false)
	if err == nil && !rep.OK() {
		err = fmt.Errorf("%s: %+v", rep.Summary(), rep.Failed)
	}
	return err
}

// farEndLogins counts the far end's logins to its archive FTP.
func (fe *farEnv) farEndLogins() int {
	return strings.Count(fe.serverLog.String(), "far end: logged in to the archive FTP")
}

// TestFarEndSyncThroughLink: a cycle through a 20 ms link on the far-end
// path (small files, and one large enough to be striped) leaves an
// md5-identical copy; the far end logged in with REMOTE_URL's user, never
// showing the password; a second cycle copies nothing. The client dials
// the link's address, not the destination node's own (a relay, NAT): the
// address case.
func TestFarEndSyncThroughLink(t *testing.T) {
	fe := newFarEnv(t, 20*time.Millisecond, nil)
	fe.set(1, 0, 40, 16<<10)
	fe.set(2, 0, 2, 3<<20)
	fe.write("DB/id_2/level_0/node_0/large", 20<<20, time.Hour)
	if err := fe.cycle(); err != nil {
		t.Fatal(err)
	}
	fe.identical()
	if fe.farEndLogins() == 0 {
		t.Fatal("the cycle did not use the far end")
	}
	if strings.Contains(fe.serverLog.String()+fe.clientLog.String(), fe.dst.Password) {
		t.Fatal("the REMOTE_URL password reached a log")
	}
	if err := fe.cycle(); err != nil {
		t.Fatal(err)
	}
	fe.identical()
}

// TestFarEndNotOffered: a server that does not offer the far end (as an
// older backupsyncd) gets FTP through the tunnel, md5-identical.
func TestFarEndNotOffered(t *testing.T) {
	fe := newFarEnv(t, 20*time.Millisecond, func(c *tunnel.ServerConfig) { c.NoFarEnd = true })
	fe.set(1, 0, 6, 16<<10)
	fe.set(2, 0, 1, 3<<20)
	if err := fe.cycle(); err != nil {
		t.Fatal(err)
	}
	fe.identical()
	if n := fe.farEndLogins(); n != 0 {
		t.Fatalf("%d far-end logins on a server that does not offer it", n)
	}
}

// TestOpenSSHThroughLink: the same cycle as TestFarEndSyncThroughLink, with
// OpenSSH's sshd behind the 20 ms link: no hello, no far end, FTP through
// the tunnel, md5-identical.
func TestOpenSSHThroughLink(t *testing.T) {
	e := &env{t: t, stateDir: t.TempDir()}
	e.src = ftptest.Start(t, "vsftpd", feSrcIP)
	e.dst = ftptest.Start(t, "vsftpd", feDstIP)
	fe := &farEnv{env: e, serverLog: &lockedLog{}, clientLog: &lockedLog{}}
	keys, err := tunnel.NewKeyStore(e.stateDir, "n0011")
	if err != nil {
		t.Fatal(err)
	}
	line, err := keys.ClientKeyLine("Conn1", "")
	if err != nil {
		t.Fatal(err)
	}
	sshd := sshtest.Start(t, feDstIP, fmt.Sprintf("restrict,port-forwarding,permitopen=%q %s\n", feDstIP+":*", line), fe.serverLog)
	// The link listens on the destination node's address: OpenSSH is
	// asked for the archive FTP on the host the client dialled.
	_, linkAddr := linkemu.Start(t, linkemu.Config{RTT: 20 * time.Millisecond}, feDstIP, sshd.Addr)
	host, port, _ := net.SplitHostPort(linkAddr)
	hostKey := strings.Fields(sshd.HostPub)
	if _, err := keys.Upload([]byte(hostKey[0] + " " + hostKey[1] + " backupsync-host:Conn1@n0021\n")); err != nil {
		t.Fatal(err)
	}
	fe.keys, fe.remote = keys, host
	fe.sshPort, _ = strconv.Atoi(port)
	e.set(1, 0, 6, 16<<10)
	e.set(2, 0, 1, 3<<20)
	r := fe.runner()
	r.Settings.SSHClient.User = "root"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, _, err := r.Once(ctx, false)
	if err != nil || !rep.OK() {
		t.Fatalf("cycle: %v %s %+v\nclient log:\n%s", err, rep.Summary(), rep.Failed, fe.clientLog.String())
	}
	e.identical()
	if strings.Contains(fe.clientLog.String(), "far-end path unusable") {
		t.Fatal("the client tried the far end on OpenSSH")
	}
}
