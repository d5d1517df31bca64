package ftptest

import (
	"errors"
	"net"
	"sync"
	"time"

	ftpserver "goftp.io/server/v2"
	"goftp.io/server/v2/driver/file"
)

// embedded is an in-process goftp.io server with a file driver on Dir.
// Stop closes the listener and every session's control connection, so a
// Restart looks like a server crash to clients.
type embedded struct {
	srv   *ftpserver.Server
	ln    *trackingListener
	serve chan struct{}
}

func startEmbedded(s *Server) (*embedded, error) {
	drv, err := file.NewDriver(s.Dir)
	if err != nil {
		return nil, err
	}
	srv, err := ftpserver.NewServer(&ftpserver.Options{
		Name:     "backupsync embedded test server",
		Driver:   drv,
		Auth:     &ftpserver.SimpleAuth{Name: s.User, Password: s.Password},
		Perm:     ftpserver.NewSimplePerm("root", "root"),
		Hostname: s.Host,
		PublicIP: s.Host,
		Port:     s.Port,
		Logger:   &ftpserver.DiscardLogger{},
	})
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp4", s.Addr())
	if err != nil {
		return nil, err
	}
	e := &embedded{srv: srv, ln: &trackingListener{Listener: l, conns: map[net.Conn]struct{}{}}, serve: make(chan struct{})}
	go func() {
		defer close(e.serve)
		_ = srv.Serve(e.ln)
	}()
	alive := func() error {
		select {
		case <-e.serve:
			return errors.New("embedded server stopped serving")
		default:
			return nil
		}
	}
	if err := waitLogin(s.Addr(), s.User, s.Password, alive, 10*time.Second); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

func (e *embedded) stop() {
	_ = e.srv.Shutdown()
	<-e.serve
	e.ln.closeAll()
}

// trackingListener remembers accepted connections so that stop can cut them.
type trackingListener struct {
	net.Listener
	mu     sync.Mutex
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
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c.Conn)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
