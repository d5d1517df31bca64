// Package clustertest starts loopback clusters of backupsyncd processes for
// tests: one daemon per node, each on its own 127.0.x.y address with its own
// settings and state directory, listing the others as its cluster.
package clustertest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"backupsync/internal/config"
	"backupsync/internal/freeport"
)

// User and Password log in to every test cluster's control plane.
const (
	User     = "admin"
	Password = "s3cret-admin"
)

var (
	buildOnce gosync.Once
	binDir    string
	buildErr  error
)

// Binaries builds backupsyncd and backupsyncctl once per test process and
// returns the directory holding them.
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "backupsync-bin-")
		if buildErr != nil {
			return
		}
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/backupsyncd", "./cmd/backupsyncctl")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// Node is one daemon of a test cluster.
type Node struct {
	Name        string
	IP          string
	Index       int
	ControlPort int
	SSHPort     int
	MetricsPort int    // /metrics on IP:MetricsPort
	Dir         string // holds backupsyncd.hcl, connections.cfg and state/
	// FTPPort is the node's archive FTP port (ftp_default_port); set it
	// with Options.FTPPorts.
	FTPPort int

	bin string
	cmd *exec.Cmd
	out *lockedBuffer
	mu  gosync.Mutex
}

// lockedBuffer collects a process's output while tests read it.
type lockedBuffer struct {
	mu gosync.Mutex
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

// Cluster is a set of daemons that know each other.
type Cluster struct {
	Nodes []*Node
}

// Options shape a cluster.
type Options struct {
	// FTPPorts gives each node's archive FTP port, by index.
	FTPPorts []int
	// SSHPort is the port of every node's SSH server; 0 picks a free one.
	SSHPort int
	// RemoteSSHPort is the port the nodes' tunnels dial on the remote
	// cluster (ssh_client.port): the remote cluster's SSHPort.
	RemoteSSHPort int
}

// Start starts one daemon per ip, named prefix+"1", prefix+"2", … (e.g.
// "n001" gives n0011, n0012), and waits until each answers on its port.
// They are stopped with t.Cleanup.
func Start(t testing.TB, prefix string, ips []string, opt Options) *Cluster {
	t.Helper()
	bin := filepath.Join(Binaries(t), "backupsyncd")
	hash, err := bcrypt.GenerateFromPassword([]byte(Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{}
	sshPort := opt.SSHPort
	if sshPort == 0 {
		sshPort = FreePort(t, ips[0])
	}
	for i, ip := range ips {
		n := &Node{Name: prefix + strconv.Itoa(i+1), IP: ip, Index: i, Dir: t.TempDir(), bin: bin,
			ControlPort: FreePort(t, ip), SSHPort: sshPort, FTPPort: 2021, MetricsPort: FreePort(t, ip)}
		if i < len(opt.FTPPorts) {
			n.FTPPort = opt.FTPPorts[i]
		}
		c.Nodes = append(c.Nodes, n)
	}
	cluster := &config.Cluster{User: User, Password: Password}
	for _, n := range c.Nodes {
		cluster.Nodes = append(cluster.Nodes, config.ClusterNode{Name: n.Name, URL: n.URL()})
	}
	for _, n := range c.Nodes {
		s := config.Settings{
			Node:            config.Node{Name: n.Name, IP: n.IP, Index: n.Index},
			ConnectionsFile: "connections.cfg", StateDir: "state", FTPDefaultPort: n.FTPPort,
			XMLRPC: &config.XMLRPC{Listen: net.JoinHostPort(n.IP, strconv.Itoa(n.ControlPort)),
				Users: []config.User{{Name: User, PasswordHash: string(hash)}}},
			SSHServer: &config.SSHServer{Listen: net.JoinHostPort(n.IP, strconv.Itoa(n.SSHPort))},
			SSHClient: &config.SSHClient{Port: opt.RemoteSSHPort},
			Metrics:   &config.Metrics{Listen: net.JoinHostPort(n.IP, strconv.Itoa(n.MetricsPort))},
			Cluster:   cluster,
		}
		if err := os.WriteFile(filepath.Join(n.Dir, "backupsyncd.hcl"), s.Marshal(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Nodes {
		n.Start(t)
		t.Cleanup(n.Stop)
	}
	return c
}

// URL is the cluster's control URL, as admins' scripts write it
// (https://user:password@host:port/cluster1/), through its first node.
func (c *Cluster) URL() string { return c.Nodes[0].AdminURL() }

// URL is the node's control URL without credentials.
func (n *Node) URL() string { return fmt.Sprintf("https://%s:%d/", n.IP, n.ControlPort) }

// AdminURL is the node's control URL with the admin's credentials.
func (n *Node) AdminURL() string {
	return fmt.Sprintf("https://%s:%s@%s:%d/cluster1/", User, Password, n.IP, n.ControlPort)
}

// Settings is the path of the node's settings file.
func (n *Node) Settings() string { return filepath.Join(n.Dir, "backupsyncd.hcl") }

// Start starts the node's daemon and waits until it accepts connections.
func (n *Node) Start(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.out = &lockedBuffer{}
	n.cmd = exec.Command(n.bin, "run", "--settings", n.Settings(), "--stop-grace", "5s")
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(n.IP, strconv.Itoa(n.ControlPort))
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) || n.cmd.ProcessState != nil {
			t.Fatalf("%s did not start: %v\n%s", n.Name, err, n.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the node's daemon (SIGTERM, then SIGKILL after 10s).
func (n *Node) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	n.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-done
	}
	n.cmd = nil
}

// Kill stops the node's daemon with SIGKILL, as a crash would.
func (n *Node) Kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Kill()
	n.cmd.Wait()
	n.cmd = nil
}

// Output is what the daemon printed so far.
func (n *Node) Output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.out == nil {
		return ""
	}
	return n.out.String()
}

// FreePort returns a TCP port free on ip right now.
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	p, err := freeport.On(ip)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// CommonFreePort returns a TCP port free on every ip right now: a cluster's
// services listen on one port on all of its nodes.
func CommonFreePort(t testing.TB, ips ...string) int {
	t.Helper()
	p, err := freeport.Common(ips...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// CheckNoSecrets fails t when the node's output or plugin log holds one of
// secrets, a line of one of its private keys (under state/ssh and
// state/tls), or a PEM private key header.
func (n *Node) CheckNoSecrets(t testing.TB, secrets ...string) {
	t.Helper()
	logs := n.Output()
	if b, err := os.ReadFile(filepath.Join(n.Dir, "state", "log", "plugin.log")); err == nil {
		logs += string(b)
	}
	for _, s := range append(secrets, Password, "PRIVATE KEY") {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("%s logged a secret (%.6s…)", n.Name, s)
		}
	}
	filepath.WalkDir(filepath.Join(n.Dir, "state"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("PRIVATE KEY")) {
			return nil
		}
		for _, line := range strings.Split(string(b), "\n") {
			if len(line) >= 32 && !strings.HasPrefix(line, "-----") && strings.Contains(logs, line) {
				t.Errorf("%s logged key material of %s", n.Name, p)
				break
			}
		}
		return nil
	})
}
