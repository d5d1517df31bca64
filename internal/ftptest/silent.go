package ftptest

import (
	"net"
	"sync"
	"testing"
)

// Silent is a server that accepts connections and neither reads nor writes:
// a node whose FTP server hangs before its greeting, or a stalled server
// behind a live peer.
type Silent struct {
	net.Listener

	mu       sync.Mutex
	held     []net.Conn
	accepted int
	closed   bool
}

// StartSilent starts a Silent on host (a loopback address), on a free port.
// It is closed when the test ends.
func StartSilent(t testing.TB, host string) *Silent {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Silent{Listener: ln}
	go s.accept()
	t.Cleanup(func() { s.Close() })
	return s
}

func (s *Silent) accept() {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.accepted++
		if s.closed {
			c.Close()
		} else {
			s.held = append(s.held, c)
		}
		s.mu.Unlock()
	}
}

// Port is the port it listens on.
func (s *Silent) Port() int { return s.Addr().(*net.TCPAddr).Port }

// Accepted reports how many connections it has accepted.
func (s *Silent) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Close stops listening and closes every connection it accepted, so that
// the clients waiting on them fail at once.
func (s *Silent) Close() error {
	err := s.Listener.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, c := range s.held {
		c.Close()
	}
	s.held = nil
	return err
}
