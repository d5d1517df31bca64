package runner

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"backupsync/internal/config"
	"backupsync/internal/ftptest"
	"backupsync/internal/sshtest"
	"backupsync/internal/tunnel"
)

// TestFullSyncThroughOpenSSH: an SSH = client connection syncs through
// OpenSSH's sshd (the client key authorized with
// restrict,port-forwarding,permitopen to the archive FTP host only, its host
// key pinned) to a real vsftpd; the copy is md5-identical.
func TestFullSyncThroughOpenSSH(t *testing.T) {
	const srcIP, dstIP = "127.0.2.21", "127.0.2.22"
	src := ftptest.Start(t, "vsftpd", srcIP)
	dst := ftptest.Start(t, "vsftpd", dstIP)
	e := &env{t: t, src: src, dst: dst, stateDir: t.TempDir()}
	e.set(1, 0, 4, 3<<20)
	e.set(2, 1, 2, 100<<10)

	keys, err := tunnel.NewKeyStore(e.stateDir, "n0011")
	if err != nil {
		t.Fatal(err)
	}
	line, err := keys.ClientKeyLine("Conn1", "")
	if err != nil {
		t.Fatal(err)
	}
	sshd := sshtest.Start(t, dstIP, fmt.Sprintf("restrict,port-forwarding,permitopen=%q %s\n", dstIP+":*", line), &strings.Builder{})
	hostKey := strings.Fields(sshd.HostPub)
	if _, err := keys.Upload([]byte(hostKey[0] + " " + hostKey[1] + " backupsync-host:Conn1@n0021\n")); err != nil {
		t.Fatal(err)
	}
	_, sshPort, _ := net.SplitHostPort(sshd.Addr)
	port, _ := strconv.Atoi(sshPort)

	cfg := fmt.Sprintf("Conn1\n{\nDATABASE_NAME = DB\nSTART_CYCLE = @hourly\nLOCAL_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_NODES = %s\nSSH = client\nSETTLE_TIME = 30s\n}\n",
		src.User, src.Password, src.Port, src.Volume, dst.User, dst.Password, dst.Port, dst.Volume, dstIP)
	conns, err := config.ParseConnections("t.cfg", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	s := &config.Settings{Node: config.Node{Name: "n0011", IP: srcIP}, StateDir: e.stateDir, FTPDefaultPort: 2021,
		SSHClient: &config.SSHClient{Port: port, User: "root"}}
	r := &Runner{Settings: s, Conn: conns[0], Keys: keys, ConnectTimeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, _, err := r.Once(ctx, false)
	if err != nil || !rep.OK() || rep.Copied != 8 {
		t.Fatalf("cycle: %v %s %+v", err, rep.Summary(), rep.Failed)
	}
	e.identical()
	t.Logf("through OpenSSH: %s", rep.Summary())
}
