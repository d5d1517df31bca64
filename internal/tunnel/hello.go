package tunnel

import (
	"errors"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// helloRequest is the global request a client sends right after login:
// its payload names the connection the client dials for (helloMsg); a
// backupsync server answers true with the connection this client's key is
// authorized for and its node name (helloReply). OpenSSH, and servers
// before the hello, answer false: the client then goes on as before.
const helloRequest = "backupsync-hello"

type helloMsg struct {
	Connection string
}

type helloReply struct {
	Connection string
	Node       string
}

// hello answers a client's hello on the server: conn is the connection the
// client's key matched. A name that differs is logged here too; the client
// refuses to go on.
func (s *Server) hello(req *ssh.Request, conn string, log *slog.Logger) {
	var m helloMsg
	if err := ssh.Unmarshal(req.Payload, &m); err != nil {
		log.Warn("tunnel: malformed hello request")
		if req.WantReply {
			req.Reply(false, nil)
		}
		return
	}
	if !strings.EqualFold(m.Connection, conn) {
		log.Warn("tunnel: the client dials for another connection name than the one its key is authorized for: "+
			"connection names must be the same on both clusters", "client_connection", clean(m.Connection, 64))
	}
	if req.WantReply {
		req.Reply(true, ssh.Marshal(helloReply{Connection: conn, Node: s.cfg.Keys.Node()}))
	}
}

// sayHello sends the hello on a new connection and checks the answer: a
// backupsync server that authorized this node's key for another connection
// name gives a *RefusedError (RefusedNameMismatch). No answer within
// timeout closes the connection. It returns the remote's node name ("" from
// a server that does not know the hello).
func sayHello(c *ssh.Client, conn, addr string, timeout time.Duration) (string, error) {
	t := time.AfterFunc(timeout, func() { c.Close() })
	ok, payload, err := c.SendRequest(helloRequest, true, ssh.Marshal(helloMsg{Connection: conn}))
	stopped := t.Stop()
	if err != nil {
		if !stopped {
			return "", errors.New("hello: no answer within " + timeout.String())
		}
		return "", err
	}
	if !ok {
		return "", nil // OpenSSH or an older backupsync: plain forwarding
	}
	var r helloReply
	if err := ssh.Unmarshal(payload, &r); err != nil {
		return "", errors.New("hello: malformed answer")
	}
	if !strings.EqualFold(r.Connection, conn) {
		return "", &RefusedError{Connection: conn, Node: addr, Reason: RefusedNameMismatch, Remote: clean(r.Connection, 64)}
	}
	return clean(r.Node, 64), nil
}
