package daemon

import (
	"context"
	"net"
	"strconv"
	"strings"

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
	srv, err := tunnel.NewServer(tunnel.ServerConfig{
		Keys: d.keys, ArchiveFTP: archiveFTP, Logger: d.Logger,
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
		if err := srv.Serve(ctx, ln); err != nil {
			d.Logger.Error("SSH server stopped", "error", err)
		}
	}()
	d.sshServer, d.sshCancel, d.sshDone = srv, cancel, done
	d.Logger.Info("SSH server started", "listen", ln.Addr().String(), "archive_ftp", archiveFTP)
}

// serves reports whether a tunnel of connection name may be opened now:
// it is configured here with SSH = server and activated.
func (d *Daemon) serves(name string) bool {
	d.mu.Lock()
	conns := d.conns
	d.mu.Unlock()
	active, _ := d.plugin.ActiveConnections()
	for _, c := range conns {
		if strings.EqualFold(c.Name, name) && c.Role == config.RoleServer {
			return isActive(active, c.Name)
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
