// Package ftpserver runs an embedded FTP server (goftp.io/server/v2) that
// serves a local directory as an archive volume: the demo's clusters and
// the fast tests use it where a real server is not needed.
//
// Its quirks (DESIGN §4): APPE without REST truncates, REST+STOR appends,
// FEAT lacks MDTM/MFMT, RMD removes non-empty directories. The archive
// package's probe finds them; nothing above it needs to know.
package ftpserver

import (
	"fmt"
	"net"
	"strconv"
	gosync "sync"

	goftp "goftp.io/server/v2"
	"goftp.io/server/v2/driver/file"
)

// Options say what to serve, where, to whom.
type Options struct {
	Dir            string // the login root
	Host           string // a loopback or node address; passive data uses it too
	Port           int    // 0 picks a free port
	User, Password string
}

// Server is a running embedded FTP server.
type Server struct {
	// Addr is "host:port" of the control connection.
	Addr string

	srv   *goftp.Server
	ln    *trackingListener
	serve chan struct{}
}

// Start serves opt.Dir until Stop.
func Start(opt Options) (*Server, error) {
	drv, err := file.NewDriver(opt.Dir)
	if err != nil {
		return nil, fmt.Errorf("ftp server: %w", err)
	}
	l, err := net.Listen("tcp4", net.JoinHostPort(opt.Host, strconv.Itoa(opt.Port)))
	if err != nil {
		return nil, fmt.Errorf("ftp server: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	srv, err := goftp.NewServer(&goftp.Options{
		Name:     "backupsync embedded FTP server",
		Driver:   drv,
		Auth:     &goftp.SimpleAuth{Name: opt.User, Password: opt.Password},
		Perm:     goftp.NewSimplePerm("root", "root"),
		Hostname: opt.Host,
		PublicIP: opt.Host,
		Port:     port,
		Logger:   &goftp.DiscardLogger{},
	})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("ftp server: %w", err)
	}
	s := &Server{Addr: l.Addr().String(), srv: srv, ln: &trackingListener{Listener: l, conns: map[net.Conn]struct{}{}}, serve: make(chan struct{})}
	go func() {
		defer close(s.serve)
		_ = srv.Serve(s.ln)
	}()
	return s, nil
}

// Serving reports whether the server still accepts connections.
func (s *Server) Serving() bool {
	select {
	case <-s.serve:
		return false
	default:
		return true
	}
}

// Stop closes the listener and every session's control connection, so that
// to clients it looks like a server crash. It is idempotent.
func (s *Server) Stop() {
	_ = s.srv.Shutdown()
	<-s.serve
	s.ln.closeAll()
}

// trackingListener remembers accepted connections so that Stop can cut them.
type trackingListener struct {
	net.Listener
	mu     gosync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns[c] = struct{}{}
	return &trackedConn{Conn: c, l: l}, nil
}

func (l *trackingListener) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once gosync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.conns != nil {
			delete(c.l.conns, c.Conn)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
