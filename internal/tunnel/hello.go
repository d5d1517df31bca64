package tunnel

import (
	"errors"
	"log/slog"
	"slices"
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

// helloMsgV2 is the hello of a client that knows features: it lists the
// features it can use. A server that knows only helloMsg answers it with a
// failure (its ssh.Unmarshal refuses the longer payload); the client then
// sends helloMsg, so both sides of an upgrade keep working.
type helloMsgV2 struct {
	Connection string
	Features   []string
}

type helloReply struct {
	Connection string
	Node       string
}

// helloReplyV2 answers a helloMsgV2: helloReply with the features the
// server offers of those the client listed. A helloMsg is answered with
// helloReply only, so an older client's ssh.Unmarshal still fits.
type helloReplyV2 struct {
	Connection string
	Node       string
	Features   []string
}

// FeatureFarEnd is the hello feature of the far-end channel
// (farend.ChannelType): the server performs publishes itself.
const FeatureFarEnd = "farend"

// parseHelloReply decodes a hello answer of either length.
func parseHelloReply(payload []byte) (helloReplyV2, error) {
	var r2 helloReplyV2
	if err := ssh.Unmarshal(payload, &r2); err == nil {
		return r2, nil
	}
	var r helloReply
	if err := ssh.Unmarshal(payload, &r); err != nil {
		return helloReplyV2{}, err
	}
	return helloReplyV2{Connection: r.Connection, Node: r.Node}, nil
}

// hello answers a client's hello on the server: conn is the connection the
// client's key matched. A name that differs is logged here too; the client
// refuses to go on.
func (s *Server) hello(req *ssh.Request, conn string, log *slog.Logger) {
	var m helloMsg
	var m2 helloMsgV2
	v2 := ssh.Unmarshal(req.Payload, &m2) == nil
	if v2 {
		m.Connection = m2.Connection
	} else if err := ssh.Unmarshal(req.Payload, &m); err != nil {
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
	if !req.WantReply {
		return
	}
	if !v2 {
		req.Reply(true, ssh.Marshal(helloReply{Connection: conn, Node: s.cfg.Keys.Node()}))
		return
	}
	var offer []string
	for _, f := range m2.Features {
		if f == FeatureFarEnd && s.farEnd != nil && !slices.Contains(offer, f) {
			offer = append(offer, f)
		}
	}
	req.Reply(true, ssh.Marshal(helloReplyV2{Connection: conn, Node: s.cfg.Keys.Node(), Features: offer}))
}

// sayHello sends the hello on a new connection and checks the answer: a
// backupsync server that authorized this node's key for another connection
// name gives a *RefusedError (RefusedNameMismatch). No answer within
// timeout closes the connection. It returns the remote's node name ("" from
// a server that does not know the hello) and the features it offers. The
// hello listing features goes first; a failure is answered with the plain
// hello, which a backupsync server from before features answers.
func sayHello(c *ssh.Client, conn, addr string, timeout time.Duration) (string, []string, error) {
	t := time.AfterFunc(timeout, func() { c.Close() })
	defer t.Stop()
	ask := func(payload []byte) (bool, []byte, error) {
		ok, reply, err := c.SendRequest(helloRequest, true, payload)
		if err != nil && !t.Stop() {
			return false, nil, errors.New("hello: no answer within " + timeout.String())
		}
		t.Reset(timeout)
		return ok, reply, err
	}
	ok, payload, err := ask(ssh.Marshal(helloMsgV2{Connection: conn, Features: []string{FeatureFarEnd}}))
	if err == nil && !ok {
		ok, payload, err = ask(ssh.Marshal(helloMsg{Connection: conn}))
	}
	if err != nil {
		return "", nil, err
	}
	if !ok {
		return "", nil, nil // OpenSSH or an older backupsync: plain forwarding
	}
	r, err := parseHelloReply(payload)
	if err != nil {
		return "", nil, errors.New("hello: malformed answer")
	}
	if !strings.EqualFold(r.Connection, conn) {
		return "", nil, &RefusedError{Connection: conn, Node: addr, Reason: RefusedNameMismatch, Remote: clean(r.Connection, 64)}
	}
	return clean(r.Node, 64), r.Features, nil
}
