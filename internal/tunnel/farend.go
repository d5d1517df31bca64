package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"backupsync/internal/farend"
)

// farEndChannel serves a far-end channel (see farend): counted against the
// forward caps like a forwarded connection, and against the far end's own
// cap per SSH connection.
func (s *Server) farEndChannel(nch ssh.NewChannel, p *peer, log *slog.Logger, wg *sync.WaitGroup) {
	if p.farEnd == nil {
		s.refusals.warn("channel:"+p.remote, "tunnel: refused channel", "type", nch.ChannelType(), "remote", p.remote, "connection", p.name)
		nch.Reject(ssh.UnknownChannelType, "only port forwarding to the archive FTP is permitted")
		return
	}
	if reason := s.openChannel(p); reason != "" {
		s.refusals.warn("limit:"+p.name+":"+reason, "tunnel: refused far-end channel: "+reason, "remote", p.remote, "connection", p.name)
		nch.Reject(ssh.ResourceShortage, reason)
		return
	}
	if !p.farEnd.Admit() {
		s.closeChannel(p)
		reason := fmt.Sprintf("too many far-end channels on this SSH connection (%d)", p.farEnd.MaxChannels())
		s.refusals.warn("farend-limit:"+p.name, "tunnel: refused far-end channel: "+reason, "remote", p.remote, "connection", p.name)
		nch.Reject(ssh.ResourceShortage, reason)
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		p.farEnd.Leave()
		s.closeChannel(p)
		return
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		ssh.DiscardRequests(reqs)
	}()
	go func() {
		defer wg.Done()
		defer s.closeChannel(p)
		defer p.farEnd.Leave()
		p.farEnd.Serve(p.farCtx, ch)
	}()
}

// ErrFarEndNotOffered is farend.ErrNotOffered: the server of the current
// SSH connection does not offer the far-end channel.
var ErrFarEndNotOffered = farend.ErrNotOffered

// FarEnd reports whether the server of the SSH connection (connecting
// first if there is none) offers the far-end path (FeatureFarEnd).
func (c *Client) FarEnd(ctx context.Context) (bool, error) {
	l, err := c.link(ctx)
	if err != nil {
		return false, err
	}
	return slices.Contains(l.features, FeatureFarEnd), nil
}

// OpenFarEnd opens a far-end channel on the current SSH connection
// (connecting first if there is none): a farend.OpenFunc. It fails with
// ErrFarEndNotOffered when the server does not offer it. The channel has
// the idle watchdog (ClientConfig.IdleTimeout) of a tunnelled connection,
// reports a lost SSH connection as ErrConnectionLost and is closed with
// the client.
func (c *Client) OpenFarEnd(ctx context.Context) (io.ReadWriteCloser, error) {
	l, err := c.link(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(l.features, FeatureFarEnd) {
		return nil, fmt.Errorf("tunnel %q: node %s: %w", c.cfg.Connection, l.node.addr, ErrFarEndNotOffered)
	}
	type result struct {
		ch   ssh.Channel
		reqs <-chan *ssh.Request
		err  error
	}
	rc := make(chan result, 1)
	go func() {
		ch, reqs, err := l.client.OpenChannel(farend.ChannelType, nil)
		rc <- result{ch, reqs, err}
	}()
	octx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	var r result
	select {
	case r = <-rc:
	case <-octx.Done():
		go func() {
			if r := <-rc; r.ch != nil {
				r.ch.Close()
			}
		}()
		return nil, fmt.Errorf("tunnel %q: open a far-end channel via %s: %w", c.cfg.Connection, l.node.addr, octx.Err())
	}
	if r.err != nil {
		var oce *ssh.OpenChannelError
		if errors.As(r.err, &oce) {
			return nil, fmt.Errorf("tunnel %q: far-end channel via %s refused by peer: %s", c.cfg.Connection, l.node.addr, oce.Message)
		}
		return nil, fmt.Errorf("tunnel %q: open a far-end channel via %s: %w", c.cfg.Connection, l.node.addr, r.err)
	}
	go ssh.DiscardRequests(r.reqs)
	cc := c.wrap(l, channelConn{r.ch}, net.JoinHostPort(l.node.host, "0"))
	if cc == nil {
		return nil, fmt.Errorf("tunnel %q: far-end channel via %s: %w", c.cfg.Connection, l.node.addr, ErrConnectionLost)
	}
	return cc, nil
}

// channelConn is an SSH channel as the net.Conn chanConn wraps.
type channelConn struct{ ssh.Channel }

func (channelConn) LocalAddr() net.Addr                { return &net.TCPAddr{IP: net.IPv4zero} }
func (channelConn) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: net.IPv4zero} }
func (channelConn) SetDeadline(t time.Time) error      { return deadline(t) }
func (channelConn) SetReadDeadline(t time.Time) error  { return deadline(t) }
func (channelConn) SetWriteDeadline(t time.Time) error { return deadline(t) }
