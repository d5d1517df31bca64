// Package runner turns one configured connection into sync cycles on this
// node: it opens the local archive volume and the remote one (over plain FTP,
// or through the connection's SSH tunnel, failing over along REMOTE_NODES),
// runs a cycle, and closes what it opened.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"backupsync/internal/archive"
	"backupsync/internal/config"
	"backupsync/internal/farend"
	"backupsync/internal/sync"
	"backupsync/internal/tunnel"
)

// Runner runs the cycles of one connection on this node.
type Runner struct {
	Settings *config.Settings
	Conn     config.Connection
	// Keys is this node's key store; needed for SSH = client.
	Keys *tunnel.KeyStore
	// Logger receives endpoint failovers; nil discards.
	Logger *slog.Logger
	// Event receives each finished file; nil is fine.
	Event func(sync.Event)
	// ConnectTimeout bounds reaching one endpoint; default 15s.
	ConnectTimeout time.Duration
	// Drain, when closed, lets the files in flight finish and starts no more.
	Drain <-chan struct{}
	// Probes remembers what destinations can do; nil probes every cycle.
	Probes *Probes
	// WaitForLock makes Once wait while another cycle of the connection
	// holds its lock on this node (see AcquireLock), instead of returning
	// a *BusyError (ErrBusy).
	WaitForLock bool
	// Program names this process in the lock file, for the message of a
	// cycle that finds the lock held; "" is the executable's name.
	Program string
	// Progress, if set, counts the cycle's copies as they move.
	Progress *sync.Progress
}

// ErrUnreachable marks a cycle that could not reach an endpoint.
var ErrUnreachable = sync.ErrUnreachable

// Once runs one cycle now. The report says what happened to every file; the
// error is non-nil when the cycle could not run (ErrUnreachable when an
// endpoint could not be reached) or its state could not be saved.
func (r *Runner) Once(ctx context.Context, dryRun bool) (sync.Report, sync.Plan, error) {
	c := r.Conn
	if !c.Role.Copies() {
		return sync.Report{}, sync.Plan{}, fmt.Errorf("connection %s has SSH = %s: it accepts tunnels and copies nothing on this cluster", c.Name, c.Role)
	}
	remote := c.RemoteNodes
	if len(remote) == 0 {
		return sync.Report{}, sync.Plan{}, fmt.Errorf("connection %s lists no REMOTE_NODES", c.Name)
	}
	// One cycle of a connection at a time on this node, whichever process
	// runs it; a dry run changes nothing and needs no lock.
	if !dryRun {
		lock, err := AcquireLock(ctx, r.Settings.StateDir, c.Name, r.program(), r.WaitForLock)
		if err != nil {
			return sync.Report{}, sync.Plan{}, err
		}
		defer lock.Release()
	}
	opt := archive.Options{MaxConns: c.Parallel, ConnectTimeout: r.ConnectTimeout}

	var tc *tunnel.Client
	if c.Role == config.RoleClient {
		if r.Keys == nil {
			return sync.Report{}, sync.Plan{}, errors.New("SSH = client needs this node's key store")
		}
		cc := tunnel.ClientConfig{Connection: c.Name, Nodes: failoverOrder(remote, r.Settings.Node.Index), Keys: r.Keys, Logger: r.Logger}
		if s := r.Settings.SSHClient; s != nil {
			cc.Port, cc.User = s.Port, s.User
			cc.HostKeys = tunnel.HostKeyPolicy(s.HostKeys)
		}
		var err error
		if tc, err = tunnel.NewClient(cc); err != nil {
			return sync.Report{}, sync.Plan{}, err
		}
		defer tc.Close()
	}

	// The source is only read: its probe writes nothing into the volume.
	// It is opened while the destination is: each costs a login.
	ropt := opt
	ropt.ReadOnly = true
	type opened struct {
		v   *archive.Volume
		err error
	}
	localc := make(chan opened, 1)
	// Without the source there is no cycle: its failure stops the remote's
	// failover at once.
	remoteCtx, stopRemote := context.WithCancel(ctx)
	defer stopRemote()
	go func() {
		v, err := archive.Open(ctx, r.endpoint(c.LocalURL, r.Settings.Node.IP), ropt)
		if err != nil {
			stopRemote()
		}
		localc <- opened{v, err}
	}()
	dst, derr := r.openRemote(remoteCtx, opt, tc)
	lo := <-localc
	if lo.err == nil {
		defer lo.v.Close()
	}
	if derr == nil {
		defer dst.Close()
	}
	switch {
	case lo.err != nil:
		return r.unreachable(&EndpointError{URL: "LOCAL_URL", Err: lo.err})
	case derr != nil:
		return r.unreachable(&EndpointError{URL: "REMOTE_URL", Err: derr})
	}
	local := lo.v

	caps := dst.Capabilities()
	if fe, ok := dst.(*farend.Client); ok {
		r.log().Debug("destination through the far end", "connection", c.Name, "far_end", fe.String())
	}
	cycle := &sync.Cycle{
		Connection: c.Name, Database: c.Database, Node: r.Settings.Node.Index,
		SettleTime: c.SettleTime, Delete: c.Delete, MaxDeleteSets: c.MaxDeleteSets,
		StateDir: r.Settings.StateDir, DryRun: dryRun,
		// Resuming needs an append at the destination and a read from an
		// offset at the source.
		IsTemp: archive.IsTemp, CanResume: caps.CanResume() && local.Capabilities().Rest,
		Exec: sync.Options{Parallel: c.Parallel, BandwidthLimit: c.BandwidthLimit,
			Transient: archive.IsTransient, TempName: archive.TempName, Event: r.Event, Drain: r.Drain, Progress: r.Progress},
	}
	if !caps.Rename {
		cycle.Journal = sync.NewJournal(filepath.Join(r.Settings.StateDir, "sync", c.Name,
			fmt.Sprintf("node_%d.journal.json", r.Settings.Node.Index)))
	}
	return cycle.Run(ctx, sync.Volume{Volume: local}, dst)
}

// remoteVolume is the destination of a cycle: an archive volume over FTP
// (sync.Volume), or the far end (*farend.Client).
type remoteVolume interface {
	sync.DestinationSide
	Capabilities() archive.Capabilities
	Close() error
}

// openRemote opens the remote archive volume: through tc, the
// connection's SSH tunnel, when there is one — on the far-end path when
// the server offers it (openFarEnd), else FTP through the tunnel — or
// directly along REMOTE_NODES in failover order.
func (r *Runner) openRemote(ctx context.Context, opt archive.Options, tc *tunnel.Client) (remoteVolume, error) {
	c := r.Conn
	order := failoverOrder(c.RemoteNodes, r.Settings.Node.Index)
	if tc != nil {
		fe, err := r.openFarEnd(ctx, tc)
		if err != nil {
			return nil, fmt.Errorf("through SSH: %w", err)
		}
		if fe != nil {
			return fe, nil
		}
		opt.Dial = tc.DialContext
		// The tunnel rewrites the host to the node it reached.
		dst, err := r.openDestination(ctx, r.endpoint(c.RemoteURL, order[0]), opt)
		if err != nil {
			return nil, fmt.Errorf("through SSH: %w", err)
		}
		return sync.Volume{Volume: dst}, nil
	}
	var errs []error
	for _, node := range order {
		v, err := r.openDestination(ctx, r.endpoint(c.RemoteURL, node), opt)
		if err == nil {
			return sync.Volume{Volume: v}, nil
		}
		errs = append(errs, err)
		r.log().Warn("remote node unreachable, trying the next", "connection", c.Name, "node", node, "error", err)
	}
	return nil, errors.Join(errs...)
}

// openDestination opens a destination volume with what an earlier probe
// found, or probes it and remembers. A failure to open with remembered
// capabilities forgets them and probes again.
func (r *Runner) openDestination(ctx context.Context, ep archive.Endpoint, opt archive.Options) (*archive.Volume, error) {
	if known := r.Probes.Get(ep); known != nil {
		opt.Known = known
		v, err := archive.Open(ctx, ep, opt)
		if err == nil || ctx.Err() != nil {
			return v, err
		}
		r.Probes.Forget(ep)
		opt.Known = nil
	}
	v, err := archive.Open(ctx, ep, opt)
	if err == nil {
		r.Probes.Put(ep, v.Capabilities())
	}
	return v, err
}

func (r *Runner) unreachable(err error) (sync.Report, sync.Plan, error) {
	rep := sync.Report{Connection: r.Conn.Name, Node: r.Settings.Node.Index, Started: time.Now(), Finished: time.Now(), Error: err.Error()}
	return rep, sync.Plan{}, fmt.Errorf("%w: %w", ErrUnreachable, err)
}

func (r *Runner) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// endpoint is an archive URL with %s filled in by host.
func (r *Runner) endpoint(u config.ArchiveURL, host string) archive.Endpoint {
	port := u.Port
	if port == 0 {
		port = r.Settings.FTPDefaultPort
	}
	return archive.Endpoint{Host: host, Port: port, User: u.User, Password: u.Password, TLS: u.Scheme == "ftps", Root: u.Path}
}

// failoverOrder is REMOTE_NODES starting at this node's entry, then the
// others in order (the original gives database node i entry i; a cluster
// with more nodes than entries wraps around).
func failoverOrder(nodes []string, index int) []string {
	index = max(index, 0) % len(nodes)
	return append(append([]string{}, nodes[index:]...), nodes[:index]...)
}
