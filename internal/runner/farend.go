package runner

import (
	"context"
	"errors"

	"backupsync/internal/archive"
	"backupsync/internal/farend"
	"backupsync/internal/tunnel"
)

// farEndStripes overrides farend.DefaultStripes (0: the default); the
// measurements set it.
var farEndStripes int

// openFarEnd opens the destination on the far-end path when the server of
// tc offers it: the remote backupsyncd logs in to its own archive FTP with
// REMOTE_URL's user, password and volume and publishes what this node
// sends. It returns nil (and no error) where FTP through the tunnel is the
// way: an OpenSSH server or an older backupsyncd (no offer), an ftps://
// REMOTE_URL (the far end speaks plain FTP on its node), a far end whose
// archive FTP cannot rename (a direct upload needs the journal, which
// lives on this node), or a far-end channel that cannot be opened (the
// tunnel's forwarding may still work; logged). A refused login or a
// missing volume is the cycle's error, as it would be over FTP.
func (r *Runner) openFarEnd(ctx context.Context, tc *tunnel.Client) (*farend.Client, error) {
	c := r.Conn
	if c.RemoteURL.Scheme == "ftps" {
		return nil, nil
	}
	offered, err := tc.FarEnd(ctx)
	if err != nil {
		return nil, err
	}
	if !offered {
		r.log().Debug("the remote does not offer the far-end path: FTP through the tunnel", "connection", c.Name, "node", tc.Node())
		return nil, nil
	}
	fe, err := farend.Dial(ctx, tc.OpenFarEnd, farend.Login{User: c.RemoteURL.User, Password: c.RemoteURL.Password, Root: c.RemoteURL.Path},
		farend.Options{Channels: max(c.Parallel, farend.DefaultStripes), Stripes: farEndStripes, Logger: r.Logger})
	switch {
	case err == nil:
	case errors.Is(err, archive.ErrLoginRefused), errors.Is(err, archive.ErrRootUnavailable), ctx.Err() != nil:
		return nil, err
	default:
		r.log().Warn("far-end path unusable: FTP through the tunnel", "connection", c.Name, "node", tc.Node(), "error", err)
		return nil, nil
	}
	if !fe.Capabilities().Rename {
		fe.Close()
		r.log().Info("the remote archive FTP cannot rename: FTP through the tunnel, with this node's journal", "connection", c.Name, "node", tc.Node())
		return nil, nil
	}
	return fe, nil
}
