package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Defaults of the daemon settings.
const (
	DefaultConnectionsFile = "/etc/backupsync/connections.cfg"
	DefaultStateDir        = "/var/lib/backupsync"
	DefaultFTPPort         = 2021 // Exasol's archive FTP port
)

// Settings is the daemon's own configuration, backupsyncd.hcl:
//
//	node {
//	  name  = "n0011"        # as getNodeList shows it
//	  ip    = "127.0.0.11"   # replaces %s in LOCAL_URL
//	  index = 0              # database node index: this node syncs node_<index>
//	}
//	connections_file = "/etc/backupsync/connections.cfg"
//	state_dir        = "/var/lib/backupsync"
//	ftp_default_port = 2021
//
// Relative paths are taken relative to the settings file's directory.
type Settings struct {
	Node            Node       `hcl:"node,block"`
	ConnectionsFile string     `hcl:"connections_file,optional"`
	StateDir        string     `hcl:"state_dir,optional"`
	FTPDefaultPort  int        `hcl:"ftp_default_port,optional"`
	XMLRPC          *XMLRPC    `hcl:"xmlrpc,block"`
	SSHServer       *SSHServer `hcl:"ssh_server,block"`
	SSHClient       *SSHClient `hcl:"ssh_client,block"`
	Metrics         *Metrics   `hcl:"metrics,block"`
	Cluster         *Cluster   `hcl:"cluster,block"`

	// File is where the settings were read.
	File string
}

// Node says who this daemon is within its cluster.
type Node struct {
	Name  string `hcl:"name"`
	IP    string `hcl:"ip"`
	Index int    `hcl:"index"`
}

// XMLRPC is the control plane's HTTPS endpoint.
type XMLRPC struct {
	Listen  string `hcl:"listen,optional"`
	TLSCert string `hcl:"tls_cert,optional"`
	TLSKey  string `hcl:"tls_key,optional"`
	Users   []User `hcl:"user,block"`
}

// User is one login of the control plane, with a bcrypt password hash.
type User struct {
	Name         string `hcl:"name,label"`
	PasswordHash string `hcl:"password_hash"`
}

// SSHServer is the tunnel endpoint of a node with server-role connections.
type SSHServer struct {
	Listen     string `hcl:"listen,optional"`
	ArchiveFTP string `hcl:"archive_ftp,optional"`
	// PassivePorts is the archive FTP's passive port range, "LOW-HIGH"
	// (e.g. "30000-30099"): the data ports a tunnel may reach when its FTP
	// control connection is encrypted (FTPS) and the ports the FTP server
	// announces cannot be read. Empty: none, and FTPS through the tunnel
	// fails. It must exclude every port the node serves.
	PassivePorts string `hcl:"passive_ports,optional"`
}

// Ports the node serves besides those its settings name.
const (
	// DefaultSSHPort is the tunnel server's port when ssh_server.listen
	// names none.
	DefaultSSHPort = 2022
	// DefaultControlPort is the control plane's port when xmlrpc.listen
	// names none.
	DefaultControlPort = 4443
	// DatabasePort is Exasol's database port.
	DatabasePort = 8563
)

// PassiveRange parses PassivePorts: "LOW-HIGH" or one port; 0, 0 when
// empty.
func (s *SSHServer) PassiveRange() (lo, hi int, err error) {
	if s == nil || s.PassivePorts == "" {
		return 0, 0, nil
	}
	a, b, found := strings.Cut(s.PassivePorts, "-")
	if !found {
		b = a
	}
	lo, err1 := strconv.Atoi(strings.TrimSpace(a))
	hi, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || lo < 1024 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("passive_ports %q is not a port range LOW-HIGH within 1024-65535, e.g. \"30000-30099\"", s.PassivePorts)
	}
	return lo, hi, nil
}

// ServedPorts lists the ports this node serves, which no tunnel may reach
// through the passive range: the SSH server's, the control plane's, the
// metrics' (if any), Exasol's database port and the archive FTP's; each
// with what it is.
func (s *Settings) ServedPorts() []NamedPort {
	ports := []NamedPort{
		{portOf(s.SSHServer.listen(), DefaultSSHPort), "the SSH server (ssh_server.listen)"},
		{DatabasePort, "Exasol's database"},
		{portOf(s.SSHServer.archiveFTP(), s.FTPDefaultPort), "the archive FTP (ssh_server.archive_ftp)"},
	}
	listen := ""
	if s.XMLRPC != nil {
		listen = s.XMLRPC.Listen
	}
	ports = append(ports, NamedPort{portOf(listen, DefaultControlPort), "the control plane (xmlrpc.listen)"})
	if s.Metrics != nil {
		if p := portOf(s.Metrics.Listen, 0); p != 0 {
			ports = append(ports, NamedPort{p, "the metrics (metrics.listen)"})
		}
	}
	return ports
}

// NamedPort is a port and what serves it.
type NamedPort struct {
	Port int
	What string
}

func (s *SSHServer) listen() string {
	if s == nil {
		return ""
	}
	return s.Listen
}

func (s *SSHServer) archiveFTP() string {
	if s == nil {
		return ""
	}
	return s.ArchiveFTP
}

// portOf returns the port of "host:port", or def when there is none.
func portOf(hostPort string, def int) int {
	if _, p, err := net.SplitHostPort(hostPort); err == nil {
		if n, err := strconv.Atoi(p); err == nil {
			return n
		}
	}
	return def
}

// SSHClient says how client-role connections reach the remote SSH servers.
type SSHClient struct {
	Port int    `hcl:"port,optional"`
	User string `hcl:"user,optional"`
	// HostKeys is which remote host keys a tunnel accepts: "accept-new"
	// (the default, as OpenSSH's) pins the key each remote address
	// presents at the first successful login and accepts only it there
	// afterwards, unless host keys were uploaded for the connection;
	// "pinned" accepts only host keys uploaded with UPLOAD_KEY.
	HostKeys string `hcl:"host_keys,optional"`
}

// Host key policies of SSHClient.HostKeys.
const (
	HostKeysAcceptNew = "accept-new"
	HostKeysPinned    = "pinned"
)

// HostKeyPolicy returns the host key policy in force: HostKeys, or
// HostKeysAcceptNew when it is empty or c is nil.
func (c *SSHClient) HostKeyPolicy() string {
	if c == nil || c.HostKeys == "" {
		return HostKeysAcceptNew
	}
	return c.HostKeys
}

// validateSSHClient checks ssh_client.host_keys.
func (s *Settings) validateSSHClient(body hcl.Body) hcl.Diagnostics {
	if c := s.SSHClient; c == nil || c.HostKeys == "" || c.HostKeys == HostKeysAcceptNew || c.HostKeys == HostKeysPinned {
		return nil
	}
	subject := &hcl.Range{Filename: s.File, Start: hcl.InitialPos, End: hcl.InitialPos}
	content, _, _ := body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "ssh_client"}}})
	for _, b := range content.Blocks {
		subject = &b.DefRange
		if attrs, _ := b.Body.JustAttributes(); attrs["host_keys"] != nil {
			subject = &attrs["host_keys"].Range
		}
	}
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid host key policy",
		Detail: fmt.Sprintf("ssh_client.host_keys %q: use %q (pin each remote node's host key at first contact) or %q (accept only host keys uploaded with UPLOAD_KEY).",
			s.SSHClient.HostKeys, HostKeysAcceptNew, HostKeysPinned), Subject: subject}}
}

// Metrics is the Prometheus endpoint.
type Metrics struct {
	Listen string `hcl:"listen"`
}

// Cluster names the daemons of this cluster (this one included), in the
// order getNodeList shows them, and the login daemons use to forward a
// callPlugin to the node it names.
type Cluster struct {
	User     string        `hcl:"user,optional"`
	Password string        `hcl:"password,optional"`
	Nodes    []ClusterNode `hcl:"node,block"`
}

// ClusterNode is one daemon of the cluster and its control URL.
type ClusterNode struct {
	Name string `hcl:"name,label"`
	URL  string `hcl:"url"`
	// Fingerprint pins the node's certificate ("SHA256:…"); empty accepts
	// any certificate on that URL.
	Fingerprint string `hcl:"fingerprint,optional"`
}

// ReadSettings reads and validates a settings file. Errors are HCL
// diagnostics, FILE:LINE,COL: summary; detail, one per line.
func ReadSettings(path string) (*Settings, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	return ParseSettings(path, src)
}

// ParseSettings is ReadSettings on src, reporting positions in file.
func ParseSettings(file string, src []byte) (*Settings, error) {
	f, diags := hclparse.NewParser().ParseHCL(src, file)
	if diags.HasErrors() {
		return nil, hclError(diags)
	}
	var s Settings
	if diags := gohcl.DecodeBody(f.Body, nil, &s); diags.HasErrors() {
		return nil, hclError(diags)
	}
	s.File = file
	if diags := s.validate(f.Body); diags.HasErrors() {
		return nil, hclError(diags)
	}
	return &s, nil
}

func (s *Settings) validate(body hcl.Body) hcl.Diagnostics {
	var diags hcl.Diagnostics
	// Positions for attribute errors come from a partial re-read of the body.
	content, _, _ := body.PartialContent(&hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "ftp_default_port"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "node"}},
	})
	where := func(attr string) *hcl.Range {
		if a, ok := content.Attributes[attr]; ok {
			return &a.Range
		}
		for _, b := range content.Blocks {
			if b.Type == "node" {
				if attrs, _ := b.Body.JustAttributes(); attrs[attr] != nil {
					return &attrs[attr].Range
				}
				return &b.DefRange
			}
		}
		return &hcl.Range{Filename: s.File, Start: hcl.InitialPos, End: hcl.InitialPos}
	}
	bad := func(attr, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: where(attr)})
	}
	if s.Node.Name == "" {
		bad("name", "Empty node name", `Set node.name to this node's name as getNodeList shows it, e.g. "n0011".`)
	}
	if net.ParseIP(s.Node.IP) == nil {
		bad("ip", "Invalid node IP", fmt.Sprintf("node.ip %q is not an IP address; it replaces %%s in LOCAL_URL.", s.Node.IP))
	}
	if s.Node.Index < 0 {
		bad("index", "Invalid node index", "node.index is the database node index (0 for node_0) and cannot be negative.")
	}
	if s.FTPDefaultPort == 0 {
		s.FTPDefaultPort = DefaultFTPPort
	} else if s.FTPDefaultPort < 1 || s.FTPDefaultPort > 65535 {
		bad("ftp_default_port", "Invalid port", "ftp_default_port must be from 1 to 65535 (Exasol's archive FTP uses 2021).")
	}
	diags = append(diags, s.validateXMLRPC(body)...)
	diags = append(diags, s.validatePassivePorts(body)...)
	diags = append(diags, s.validateSSHClient(body)...)
	dir := filepath.Dir(s.File)
	s.ConnectionsFile = pathOr(dir, s.ConnectionsFile, DefaultConnectionsFile)
	s.StateDir = pathOr(dir, s.StateDir, DefaultStateDir)
	return diags
}

// validatePassivePorts checks ssh_server.passive_ports: a range that
// leaves out every port the node serves, or a tunnel's FTPS data
// connection could reach them.
func (s *Settings) validatePassivePorts(body hcl.Body) hcl.Diagnostics {
	lo, hi, err := s.SSHServer.PassiveRange()
	if lo == 0 && err == nil {
		return nil
	}
	subject := &hcl.Range{Filename: s.File, Start: hcl.InitialPos, End: hcl.InitialPos}
	content, _, _ := body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "ssh_server"}}})
	for _, b := range content.Blocks {
		subject = &b.DefRange
		if attrs, _ := b.Body.JustAttributes(); attrs["passive_ports"] != nil {
			subject = &attrs["passive_ports"].Range
		}
	}
	diag := func(detail string) hcl.Diagnostics {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid passive port range", Detail: detail, Subject: subject}}
	}
	if err != nil {
		return diag(err.Error() + "; set it to the archive FTP server's passive port range.")
	}
	for _, p := range s.ServedPorts() {
		if p.Port >= lo && p.Port <= hi {
			return diag(fmt.Sprintf("passive_ports %d-%d include port %d of %s: tunnels could reach it. Move the archive FTP's passive port range (and this setting) clear of every port the node serves.", lo, hi, p.Port, p.What))
		}
	}
	return nil
}

func pathOr(dir, p, def string) string {
	if p == "" {
		return def
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// hclError turns HCL diagnostics into one error, a line per diagnostic.
func hclError(diags hcl.Diagnostics) error {
	var errs []error
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += "; " + d.Detail
		}
		if d.Subject != nil {
			msg = fmt.Sprintf("%s:%d,%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, msg)
		}
		errs = append(errs, errors.New(msg))
	}
	return errors.Join(errs...)
}
