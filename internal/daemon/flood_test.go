package daemon

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"backupsync/internal/config"
	"backupsync/internal/freeport"
	"backupsync/internal/tunnel"
)

// TestControlPlaneAnswersDuringAChannelFlood: a paired peer opens 5,000
// channels over one SSH connection. The tunnel server refuses what is over
// its caps, the control plane keeps answering during the flood, and a
// second paired connection still gets a forward to the archive FTP. (Before
// the caps, the same flood took 20,000 open files and the control plane
// stopped answering.) It serves on 127.0.13.9.
func TestControlPlaneAnswersDuringAChannelFlood(t *testing.T) {
	const ip = "127.0.13.9"
	// The archive FTP stand-in: accepts and holds every connection.
	ftp, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ftp.Close()
	var held sync.WaitGroup
	defer held.Wait() // after the daemon stopped and closed its forwards
	go func() {
		for {
			c, err := ftp.Accept()
			if err != nil {
				return
			}
			held.Add(1)
			go func() { defer held.Done(); defer c.Close(); c.Read(make([]byte, 1)) }()
		}
	}()
	hash, _ := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	sshPort, err := freeport.On(ip)
	if err != nil {
		t.Fatal(err)
	}
	sshAddr := net.JoinHostPort(ip, strconv.Itoa(sshPort))
	dir := t.TempDir()
	s, err := config.ParseSettings(filepath.Join(dir, "backupsyncd.hcl"), []byte(fmt.Sprintf(`node {
  name = "n0021"
  ip = %q
  index = 0
}
connections_file = "c.cfg"
state_dir = "state"
xmlrpc {
  listen = "%s:0"
  user "admin" {
    password_hash = %q
  }
}
ssh_server {
  listen = %q
  archive_ftp = %q
}
`, ip, ip, hash, sshAddr, ftp.Addr().String())))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "c.cfg"), []byte("Connection1\n{\nSSH = server\n}\n"), 0o600)
	d, err := New(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	runDaemon(t, d)

	// Pair one client node, as the guide does.
	client, _ := tunnel.NewKeyStore(t.TempDir(), "n0011")
	line, _ := client.ClientKeyLine("Connection1", "")
	for _, v := range [][2]string{{"INSTALL", ""}, {"UPLOAD_KEY", base64.StdEncoding.EncodeToString([]byte(line))}, {"SSHKEY", "Connection1"}} {
		if r, err := d.Plugin().Call(context.Background(), v[0], v[1]); err != nil || r.Code != 0 {
			t.Fatalf("%s: %v %+v", v[0], err, r)
		}
	}
	waitFor(t, "the SSH server", func() bool { h, ok := d.SSHHealth(); return ok && h.Listening })
	signer, err := client.ClientKey("Connection1", "")
	if err != nil {
		t.Fatal(err)
	}
	dial := func() *ssh.Client {
		t.Helper()
		c, err := ssh.Dial("tcp", sshAddr, &ssh.ClientConfig{User: tunnel.DefaultUser, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
		if err != nil {
			t.Fatalf("paired client: %v", err)
		}
		return c
	}
	flooder := dial()
	defer flooder.Close()

	// The flood: 5,000 channel opens, 50 at a time; the refused ones fail
	// at once, the accepted ones stay open.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var opened []net.Conn
	sem := make(chan struct{}, 50)
	for range 5000 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if c, err := flooder.Dial("tcp", ftp.Addr().String()); err == nil {
				mu.Lock()
				opened = append(opened, c)
				mu.Unlock()
			}
		}()
	}
	// The control plane answers while the flood runs.
	resp := getNodeList(t, d.ControlAddr, ip, "admin", "right")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("control plane during the flood: %d", resp.StatusCode)
	}
	wg.Wait()
	t.Logf("flood: %d of 5000 channels opened", len(opened))
	if len(opened) == 0 || len(opened) >= 5000 {
		t.Errorf("%d channels opened: the cap did not hold", len(opened))
	}
	if resp := getNodeList(t, d.ControlAddr, ip, "admin", "right"); resp.StatusCode != http.StatusOK {
		t.Errorf("control plane after the flood: %d", resp.StatusCode)
	}
	// A second paired connection still reaches the archive FTP.
	other := dial()
	defer other.Close()
	c, err := other.Dial("tcp", ftp.Addr().String())
	if err != nil {
		t.Fatalf("a new paired client after the flood: %v", err)
	}
	c.Close()
	for _, c := range opened {
		c.Close()
	}
	if r, _ := d.Plugin().Call(context.Background(), "STATUS", "Connection1"); r.Code != 0 {
		t.Errorf("STATUS after the flood: %+v", r)
	}
}
