package daemon

import (
	"fmt"
	"reflect"

	"backupsync/internal/config"
	"backupsync/internal/control"
)

// current is the settings in force: the ones read at start, or the last
// ones SIGHUP loaded.
func (d *Daemon) current() *config.Settings { return d.settings.Load() }

// ReloadSettings rereads the settings file. A file with an error is
// reported and the settings in force stay. Otherwise the control plane's
// users, the SSH client's port and user and the default FTP port take
// effect at once (the next cycle uses them); a change to what the running
// servers were built from — the node, the directories, the listen addresses,
// the certificate, the cluster, the SSH server, the metrics — is reported
// as needing a restart and not applied.
func (d *Daemon) ReloadSettings() error {
	old := d.current()
	s, err := config.ReadSettings(old.File)
	if err != nil {
		d.Logger.Error("settings not reloaded: the previous ones stay in force", "error", err)
		return err
	}
	var restart []string
	for name, same := range map[string]bool{
		"node":             reflect.DeepEqual(s.Node, old.Node),
		"state_dir":        s.StateDir == old.StateDir,
		"connections_file": s.ConnectionsFile == old.ConnectionsFile,
		"xmlrpc listen or certificate": s.XMLRPC == nil && old.XMLRPC == nil ||
			s.XMLRPC != nil && old.XMLRPC != nil && s.XMLRPC.Listen == old.XMLRPC.Listen && s.XMLRPC.TLSCert == old.XMLRPC.TLSCert && s.XMLRPC.TLSKey == old.XMLRPC.TLSKey,
		"cluster":    reflect.DeepEqual(s.Cluster, old.Cluster),
		"ssh_server": reflect.DeepEqual(s.SSHServer, old.SSHServer),
		"metrics":    reflect.DeepEqual(s.Metrics, old.Metrics),
	} {
		if !same {
			restart = append(restart, name)
		}
	}
	// Keep what needs a restart as it is; take the rest.
	next := *old
	next.FTPDefaultPort, next.SSHClient = s.FTPDefaultPort, s.SSHClient
	if s.XMLRPC != nil && next.XMLRPC != nil {
		x := *next.XMLRPC
		x.Users = s.XMLRPC.Users
		next.XMLRPC = &x
	}
	users := control.Users{}
	if next.XMLRPC != nil {
		for _, u := range next.XMLRPC.Users {
			users[u.Name] = u.PasswordHash
		}
	}
	d.settings.Store(&next)
	d.users.Store(&users)
	if len(restart) > 0 {
		d.Logger.Warn(fmt.Sprintf("settings reloaded; changes to %v take effect after a restart", restart))
	} else {
		d.Logger.Info("settings reloaded")
	}
	return nil
}
