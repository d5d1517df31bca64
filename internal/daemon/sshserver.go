package daemon

import (
	"context"
	"net"
	"strconv"
	"strings"
	"time"

	"backupsync/internal/config"
	"backupsync/internal/tunnel"
)

// startSSH starts the tunnel server if it is not running.
func (d *Daemon) startSSH() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sshServer != nil {
		return
	}
	s := d.Settings
	listen := net.JoinHostPort(s.Node.IP, strconv.Itoa(tunnel.DefaultPort))
	archiveFTP := net.JoinHostPort(s.Node.IP, strconv.Itoa(s.FTPDefaultPort))
	if ss := s.SSHServer; ss != nil {
		if ss.Listen != "" {
			listen = ss.Listen
		}
		if ss.ArchiveFTP != "" {
			archiveFTP = ss.ArchiveFTP
		}
	}
	lo, hi, err := s.SSHServer.PassiveRange()
	if err != nil { // validated when the settings were read
		d.Logger.Error("SSH server not started", "error", err)
		return
	}
	// The node's own services are never forwarded, whatever the archive
	// FTP announces (the server adds its own port and the database's).
	var reserved []int
	for _, p := range s.ServedPorts() {
		reserved = append(reserved, p.Port)
	}
	user := ""
	if sc := d.current().SSHClient; sc != nil {
		user = sc.User
	}
	srv, err := tunnel.NewServer(tunnel.ServerConfig{
		Keys: d.keys, ArchiveFTP: archiveFTP, Logger: d.Logger,
		User:           user,
		PassivePortMin: lo, PassivePortMax: hi,
		ReservedPorts:   reserved,
		AllowConnection: d.serves,
	})
	if err != nil {
		d.Logger.Error("SSH server not started", "error", err)
		return
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		d.Logger.Error("SSH server not started", "listen", listen, "error", err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.serveSSH(ctx, srv, listen, ln)
	}()
	d.sshServer, d.sshCancel, d.sshDone = srv, cancel, done
	d.Logger.Info("SSH server started", "listen", ln.Addr().String(), "archive_ftp", archiveFTP)
}

// serveSSH runs srv on ln until ctx ends. Serve survives accept errors
// (out of file descriptors included) and returns early only when its
// listener was closed under it: then the listener is opened again on
// listen, waiting 1 s, doubling to 30 s, between attempts, and the server
// serves on (its Health counts the restart).
func (d *Daemon) serveSSH(ctx context.Context, srv *tunnel.Server, listen string, ln net.Listener) {
	wait := time.Second
	for {
		err := srv.Serve(ctx, ln)
		if err == nil || ctx.Err() != nil {
			return
		}
		d.Logger.Error("SSH server stopped accepting; restarting it", "listen", listen, "error", err)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 30*time.Second)
			if ln, err = net.Listen("tcp", listen); err == nil {
				break
			}
			d.Logger.Error("SSH server not restarted; retrying", "listen", listen, "error", err, "retry_in", wait)
		}
		d.Logger.Info("SSH server restarted", "listen", ln.Addr().String())
		wait = time.Second
	}
}

// SSHHealth reports the tunnel server's health for STATUS; ok is false
// when no server runs (no SSH = server connection with authorized keys).
func (d *Daemon) SSHHealth() (h tunnel.ServerHealth, ok bool) {
	d.mu.Lock()
	srv := d.sshServer
	d.mu.Unlock()
	if srv == nil {
		return h, false
	}
	return srv.Health(), true
}

// serves reports whether a tunnel of connection name may be opened now:
// it is configured here with SSH = server (its key being authorized for
// it, activated or not; removing the connection from the configuration
// stops it).
func (d *Daemon) serves(name string) bool {
	d.mu.Lock()
	conns := d.conns
	d.mu.Unlock()
	for _, c := range conns {
		if strings.EqualFold(c.Name, name) && c.Role == config.RoleServer {
			return true
		}
	}
	return false
}

func (d *Daemon) stopSSH(ctx context.Context) {
	d.mu.Lock()
	srv, cancel, done := d.sshServer, d.sshCancel, d.sshDone
	d.sshServer = nil
	d.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Shutdown(ctx)
	cancel()
	<-done
	d.Logger.Info("SSH server stopped")
}
