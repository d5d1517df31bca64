package faultproxy

import (
	"bufio"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// transferCommands open a data connection; the last one forwarded names the
// data connection that carries its bytes.
var transferCommands = map[string]bool{
	"RETR": true, "STOR": true, "APPE": true, "STOU": true,
	"LIST": true, "NLST": true, "MLSD": true,
}

var (
	pasvRe = regexp.MustCompile(`(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)`)
	epsvRe = regexp.MustCompile(`\(\|\|\|(\d+)\|\)`)
)

// ftpSession is the proxy's view of one FTP control connection.
type ftpSession struct {
	pr *pair

	mu       sync.Mutex
	transfer string       // last transfer command forwarded
	dataLn   net.Listener // pending passive listener, if any
}

func (s *ftpSession) command() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.transfer
}

func (p *Proxy) serveFTP(client, server net.Conn) {
	s := &ftpSession{}
	pr, ok := p.newPair(Control, client, server, nil)
	if !ok {
		return
	}
	defer p.untrack(pr)
	s.pr = pr
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.ftpUpstream(s) }()
	go func() { defer wg.Done(); p.ftpDownstream(s) }()
	wg.Wait()
	pr.Close()
	s.mu.Lock()
	if s.dataLn != nil {
		s.dataLn.Close()
	}
	s.mu.Unlock()
}

// ftpUpstream forwards the client's commands, applying command faults.
func (p *Proxy) ftpUpstream(s *ftpSession) {
	pr := s.pr
	m := &meter{pr: pr, dir: Upstream, dst: pr.server, src: pr.client}
	if !m.decide() {
		return
	}
	r := bufio.NewReader(pr.client)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			verb := strings.ToUpper(strings.Fields(line + " x")[0])
			f, hit := p.claim(func(f *Fault) bool {
				if f.Command != verb {
					return false
				}
				return f.Action == Reply || (f.Conn == Control && f.Action != Replace)
			})
			forward := true
			if hit {
				switch f.Action {
				case Reply:
					pr.clientMu.Lock()
					_, werr := fmt.Fprintf(pr.client, "%d %s\r\n", f.Code, f.Text)
					pr.clientMu.Unlock()
					if werr != nil {
						pr.Close()
						return
					}
					forward = false
				default:
					if !pr.act(f) {
						return
					}
				}
			}
			if forward {
				if transferCommands[verb] {
					s.mu.Lock()
					s.transfer = verb
					s.mu.Unlock()
				}
				if !m.write([]byte(line)) {
					return
				}
			}
		}
		if err != nil {
			pr.eof(pr.server, err)
			return
		}
	}
}

// ftpDownstream forwards the server's replies, rewriting PASV and EPSV.
func (p *Proxy) ftpDownstream(s *ftpSession) {
	pr := s.pr
	m := &meter{pr: pr, dir: Downstream, dst: pr.client, src: pr.server}
	if !m.decide() {
		return
	}
	r := bufio.NewReader(pr.server)
	multi := "" // code of the multi-line reply in progress
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			final := false
			switch {
			case multi != "":
				if len(line) >= 4 && line[:3] == multi && line[3] == ' ' {
					multi, final = "", true
				}
			case len(line) >= 4 && line[3] == '-':
				multi = line[:3]
			default:
				final = true
			}
			if final && strings.HasPrefix(line, "227 ") {
				line = s.rewritePASV(line)
			} else if final && strings.HasPrefix(line, "229 ") {
				line = s.rewriteEPSV(line)
			}
			pr.clientMu.Lock()
			ok := m.write([]byte(line))
			pr.clientMu.Unlock()
			if !ok {
				return
			}
		}
		if err != nil {
			pr.eof(pr.client, err)
			return
		}
	}
}

func (s *ftpSession) rewritePASV(line string) string {
	g := pasvRe.FindStringSubmatch(line)
	if g == nil {
		return line
	}
	hi, _ := strconv.Atoi(g[5])
	lo, _ := strconv.Atoi(g[6])
	port, err := s.listenData(hi*256 + lo)
	if err != nil {
		return "425 faultproxy: " + err.Error() + "\r\n"
	}
	ip := net.ParseIP(s.pr.p.Host()).To4()
	return fmt.Sprintf("227 Entering Passive Mode (%d,%d,%d,%d,%d,%d).\r\n", ip[0], ip[1], ip[2], ip[3], port/256, port%256)
}

func (s *ftpSession) rewriteEPSV(line string) string {
	g := epsvRe.FindStringSubmatch(line)
	if g == nil {
		return line
	}
	sp, _ := strconv.Atoi(g[1])
	port, err := s.listenData(sp)
	if err != nil {
		return "425 faultproxy: " + err.Error() + "\r\n"
	}
	return fmt.Sprintf("229 Entering Extended Passive Mode (|||%d|)\r\n", port)
}

// listenData opens the proxy side of a passive data connection whose server
// side is the target's host at serverPort, and returns the proxy's port.
func (s *ftpSession) listenData(serverPort int) (int, error) {
	p := s.pr.p
	ln, err := net.Listen("tcp", net.JoinHostPort(p.Host(), "0"))
	if err != nil {
		return 0, err
	}
	if !p.track(ln) {
		return 0, net.ErrClosed
	}
	s.mu.Lock()
	if s.dataLn != nil {
		s.dataLn.Close() // a newer PASV replaces an unused one
	}
	s.dataLn = ln
	s.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.untrack(ln)
		defer ln.Close()
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
		client, err := ln.Accept()
		ln.Close()
		serverAddr := net.JoinHostPort(p.host, strconv.Itoa(serverPort))
		if err != nil {
			// Nobody came (or the proxy closed): connect and hang up
			// so the server does not wait for a data connection.
			if c, err := net.DialTimeout("tcp", serverAddr, time.Second); err == nil {
				c.Close()
			}
			return
		}
		server, err := net.DialTimeout("tcp", serverAddr, 5*time.Second)
		if err != nil {
			client.Close()
			return
		}
		pr, ok := p.newPair(Data, client, server, s.command)
		if !ok {
			return
		}
		defer p.untrack(pr)
		pr.pipe()
	}()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
