package confd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"backupsync/internal/archive"
	"backupsync/internal/config"
	"backupsync/internal/control"
	"backupsync/internal/tunnel"
)

// Remote volume states, as ConfD's remote_volume_state names them.
const (
	StateOnline    = "Online"
	StateUnmounted = "Unmounted"
	StateProblem   = "Connection problem"
)

// connections reads this node's connections file; none uploaded is none.
func (s *Service) connections() ([]config.Connection, error) {
	conns, err := config.ReadConnections(s.Surface.Local.Settings.ConnectionsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return conns, err
}

// copying are the connections that copy (client and direct roles): the
// ones with a remote archive volume.
func copying(conns []config.Connection) []config.Connection {
	var out []config.Connection
	for _, c := range conns {
		if c.Role.Copies() {
			out = append(out, c)
		}
	}
	return out
}

func (s *Service) remoteVolumeList(ctx context.Context, _ map[string]any) outcome {
	conns, err := s.connections()
	if err != nil {
		return failed(CodeFailed, "the connections file of %s does not load: %v", s.Surface.Self, err)
	}
	names := []string{}
	for _, c := range copying(conns) {
		names = append(names, c.Name)
	}
	return outcome{output: names}
}

// remoteVolume resolves remote_volume_name (a connection's name, or
// "r0001" for the first copying connection) or remote_volume_id (10001 for
// the first) to a connection name.
func (s *Service) remoteVolume(args map[string]any) (string, outcome, bool) {
	conns, err := s.connections()
	if err != nil {
		return "", failed(CodeFailed, "the connections file of %s does not load: %v", s.Surface.Self, err), true
	}
	vols := copying(conns)
	names := make([]string, len(vols))
	for i, c := range vols {
		names[i] = c.Name
	}
	list := "none: no copying connection is configured"
	if len(names) > 0 {
		list = strings.Join(names, ", ")
	}
	pos := -1
	if v, ok := args["remote_volume_name"]; ok {
		name, isStr := v.(string)
		if !isStr {
			return "", failed(CodeInvalidParam, "parameter 'remote_volume_name' must be a string"), true
		}
		for i, c := range vols {
			if strings.EqualFold(c.Name, strings.TrimSpace(name)) {
				pos = i
			}
		}
		if n, ok := strings.CutPrefix(strings.ToLower(name), "r"); pos < 0 && ok {
			if i, err := strconv.Atoi(n); err == nil && len(n) == 4 && i >= 1 && i <= len(vols) {
				pos = i - 1
			}
		}
		if pos < 0 {
			return "", failed(CodeFailed, "no remote volume %q: the remote volumes are %s", name, list), true
		}
		return vols[pos].Name, outcome{}, false
	}
	var id int64
	switch v := args["remote_volume_id"].(type) {
	case int64:
		id = v
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return "", failed(CodeInvalidParam, "parameter 'remote_volume_id' must be a number like 10001"), true
		}
		id = n
	default:
		return "", failed(CodeInvalidParam, "parameter 'remote_volume_id' must be a number like 10001"), true
	}
	if id < 10001 || id > 10000+int64(len(vols)) {
		return "", failed(CodeFailed, "no remote volume with id %d: the remote volumes are %s (ids from 10001 in that order)", id, list), true
	}
	return vols[id-10001].Name, outcome{}, false
}

func (s *Service) remoteVolumeState(ctx context.Context, args map[string]any) outcome {
	name, o, bad := s.remoteVolume(args)
	if bad {
		return o
	}
	states := fanOut(ctx, s.Surface.Nodes, func(ctx context.Context, p control.Peer) string {
		m, err := s.askNode(ctx, p, "probe", map[string]any{"connection": name}, s.ProbeTimeout+2*time.Second)
		if err != nil {
			s.log().Warn("remote volume state unknown: node unreachable", "volume", name, "node", p.Name, "error", err)
			return StateProblem
		}
		st, _ := m["state"].(string)
		if st == "" {
			return StateProblem
		}
		return st
	})
	return outcome{output: states}
}

// probe logs in to the remote archive volume of connection name as this
// node's cycles reach it (directly with failover along REMOTE_NODES, or
// through the connection's SSH tunnel), within ProbeTimeout.
func (s *Service) probe(ctx context.Context, name string) (state, reason string) {
	conns, err := s.connections()
	if err != nil {
		return StateProblem, fmt.Sprintf("the connections file does not load: %v", err)
	}
	for _, c := range copying(conns) {
		if !strings.EqualFold(c.Name, name) {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, s.ProbeTimeout)
		defer cancel()
		v, err := s.openRemote(ctx, c, false)
		if err != nil {
			state = StateProblem
			if errors.Is(err, archive.ErrRootUnavailable) {
				state = StateUnmounted
			}
			s.log().Warn("remote volume probe failed", "volume", c.Name, "state", state, "error", err)
			return state, err.Error()
		}
		v.Close()
		return StateOnline, ""
	}
	s.log().Warn("remote volume probe: connection not configured on this node", "volume", name)
	return StateProblem, fmt.Sprintf("connection %s is not configured on %s", name, s.Surface.Self)
}

// remote is an open remote archive volume and, for SSH = client, the
// tunnel it is reached through.
type remote struct {
	*archive.Volume
	tc *tunnel.Client
}

// Close closes the volume, then its tunnel.
func (r *remote) Close() {
	r.Volume.Close()
	if r.tc != nil {
		r.tc.Close()
	}
}

// openRemote opens connection c's remote archive volume as the runner does,
// read-only (its probe writing nothing) when only a listing is wanted. The
// caller closes it.
func (s *Service) openRemote(ctx context.Context, c config.Connection, readOnly bool) (*remote, error) {
	st := s.Surface.Local.Settings
	if len(c.RemoteNodes) == 0 {
		return nil, fmt.Errorf("connection %s lists no REMOTE_NODES", c.Name)
	}
	order := failoverOrder(c.RemoteNodes, st.Node.Index)
	opt := archive.Options{MaxConns: 2, ConnectTimeout: s.ProbeTimeout, ReadOnly: readOnly}
	if c.Role == config.RoleClient {
		cc := tunnel.ClientConfig{Connection: c.Name, Nodes: order, Keys: s.Surface.Local.Keys, Logger: s.Logger}
		if sc := st.SSHClient; sc != nil {
			cc.Port, cc.User = sc.Port, sc.User
		}
		tc, err := tunnel.NewClient(cc)
		if err != nil {
			return nil, err
		}
		opt.Dial = tc.DialContext
		v, err := archive.Open(ctx, endpoint(c.RemoteURL, order[0], st.FTPDefaultPort), opt)
		if err != nil {
			tc.Close()
			return nil, fmt.Errorf("through SSH: %w", err)
		}
		return &remote{v, tc}, nil
	}
	var errs []error
	for _, node := range order {
		v, err := archive.Open(ctx, endpoint(c.RemoteURL, node, st.FTPDefaultPort), opt)
		if err == nil {
			return &remote{Volume: v}, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func endpoint(u config.ArchiveURL, host string, defaultPort int) archive.Endpoint {
	port := u.Port
	if port == 0 {
		port = defaultPort
	}
	return archive.Endpoint{Host: host, Port: port, User: u.User, Password: u.Password, TLS: u.Scheme == "ftps", Root: u.Path}
}

// failoverOrder is REMOTE_NODES starting at this node's entry (the original
// gives database node i entry i), then the others in order, as the runner
// tries them.
func failoverOrder(nodes []string, index int) []string {
	if index < 0 {
		index = 0
	}
	index %= len(nodes)
	out := append([]string{}, nodes[index:]...)
	return append(out, nodes[:index]...)
}
