package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

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
}

// SSHClient says how client-role connections reach the remote SSH servers.
type SSHClient struct {
	Port int    `hcl:"port,optional"`
	User string `hcl:"user,optional"`
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
	dir := filepath.Dir(s.File)
	s.ConnectionsFile = pathOr(dir, s.ConnectionsFile, DefaultConnectionsFile)
	s.StateDir = pathOr(dir, s.StateDir, DefaultStateDir)
	return diags
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
