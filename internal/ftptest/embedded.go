package ftptest

import (
	"errors"
	"time"

	"backupsync/internal/ftpserver"
)

// embedded is the in-process server of internal/ftpserver on Dir. Stop
// cuts every session, so a Restart looks like a server crash to clients.
type embedded struct {
	srv *ftpserver.Server
}

func startEmbedded(s *Server) (*embedded, error) {
	srv, err := ftpserver.Start(ftpserver.Options{Dir: s.Dir, Host: s.Host, Port: s.Port, User: s.User, Password: s.Password})
	if err != nil {
		return nil, err
	}
	e := &embedded{srv: srv}
	alive := func() error {
		if !srv.Serving() {
			return errors.New("embedded server stopped serving")
		}
		return nil
	}
	if err := waitLogin(s.Addr(), s.User, s.Password, alive, 10*time.Second); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

func (e *embedded) stop() { e.srv.Stop() }
