package confd

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	gosync "sync"
	"time"

	"backupsync/internal/control"
	"backupsync/internal/xmlrpc"
)

// fanOut runs fn for every node concurrently and returns the answers in
// the order of nodes.
func fanOut[T any](ctx context.Context, nodes []control.Peer, fn func(context.Context, control.Peer) T) []T {
	out := make([]T, len(nodes))
	var wg gosync.WaitGroup
	for i, p := range nodes {
		wg.Go(func() { out[i] = fn(ctx, p) })
	}
	wg.Wait()
	return out
}

// askNode runs the node-local part job of a job on node p: on this daemon
// directly, on another through its daemon's localMethod, within timeout.
func (s *Service) askNode(ctx context.Context, p control.Peer, job string, args map[string]any, timeout time.Duration) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if p.Name == s.Surface.Self {
		m, err := s.localPart(ctx, job, args)
		if err != nil {
			return nil, err
		}
		// Through the codec, so that this node's answer has the types a
		// peer's has (int64 where Go built an int).
		doc, err := xmlrpc.EncodeResponse(m)
		if err != nil {
			return nil, err
		}
		v, err := xmlrpc.DecodeResponse(bytes.NewReader(doc))
		m, _ = v.(map[string]any)
		return m, err
	}
	c, err := s.Surface.Dial(p, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var reply any
	if err := c.Call(ctx, localMethod, &reply, job, args); err != nil {
		return nil, err
	}
	m, ok := reply.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s answered %s, want a struct", p.Name, xmlrpc.TypeName(reply))
	}
	return m, nil
}

// local answers localMethod(job, args) for another daemon of the cluster.
func (s *Service) local(ctx context.Context, params []any) (any, error) {
	job, err := xmlrpc.Arg[string](params, 0)
	if err != nil {
		return nil, err
	}
	args := map[string]any{}
	if len(params) > 1 {
		if args, err = xmlrpc.Arg[map[string]any](params, 1); err != nil {
			return nil, err
		}
	}
	return s.localPart(ctx, job, args)
}

func (s *Service) localPart(ctx context.Context, job string, args map[string]any) (map[string]any, error) {
	switch job {
	case "ping":
		return map[string]any{"node": s.Surface.Self, "booted": s.started.Format(time.ANSIC)}, nil
	case "backups":
		db, _ := args["db_name"].(string)
		return s.localBackups(ctx, db), nil
	case "probe":
		name, _ := args["connection"].(string)
		state, reason := s.probe(ctx, name)
		return map[string]any{"state": state, "reason": reason}, nil
	}
	return nil, xmlrpc.NewFault(xmlrpc.CodeInvalidParams, "unknown node-local job %q", job)
}

// ip is the address a node is reached at: the host of its control URL, or
// for this daemon without one its settings' node IP.
func (s *Service) ip(p control.Peer) string {
	if u, err := url.Parse(p.URL); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	if p.Name == s.Surface.Self {
		return s.Surface.Local.Settings.Node.IP
	}
	return ""
}

func (s *Service) nodeList(ctx context.Context, _ map[string]any) outcome {
	ids := nodeIDs(s.Surface.Nodes)
	out := map[string]any{}
	for i, p := range s.Surface.Nodes {
		n := map[string]any{"id": ids[i], "name": p.Name, "private_ip": s.ip(p)}
		if p.URL != "" {
			n["control_url"] = p.URL
		}
		out[ids[i]] = n
	}
	return outcome{output: out}
}

func (s *Service) nodeState(ctx context.Context, _ map[string]any) outcome {
	ids := nodeIDs(s.Surface.Nodes)
	type ans struct {
		booted string
		err    error
	}
	answers := fanOut(ctx, s.Surface.Nodes, func(ctx context.Context, p control.Peer) ans {
		m, err := s.askNode(ctx, p, "ping", map[string]any{}, s.PingTimeout)
		if err != nil {
			return ans{err: err}
		}
		b, _ := m["booted"].(string)
		return ans{booted: b}
	})
	out := map[string]any{}
	booted := map[string]any{}
	for i, a := range answers {
		if a.err != nil {
			out[ids[i]] = "offline"
			s.log().Warn("node offline", "node", s.Surface.Nodes[i].Name, "error", a.err)
			continue
		}
		out[ids[i]] = "online"
		booted[ids[i]] = a.booted
	}
	out["booted"] = booted
	return outcome{output: out}
}

// masterCache is how long /master reuses its answer: the probes behind it
// cost connections, and /master needs no login.
const masterCache = 2 * time.Second

// Master returns the IP of the cluster's first reachable node, in the
// order of the cluster settings: the node that answers for the cluster, as
// ConfD's master does. A node is reachable when its daemon answers a ping
// within PingTimeout; this daemon always is.
func (s *Service) Master(ctx context.Context) string {
	s.init()
	s.masterMu.Lock()
	defer s.masterMu.Unlock()
	if s.masterIP != "" && time.Since(s.masterTime) < masterCache {
		return s.masterIP
	}
	ip := ""
	for _, p := range s.Surface.Nodes {
		if p.Name == s.Surface.Self {
			ip = s.ip(p)
			break
		}
		if _, err := s.askNode(ctx, p, "ping", map[string]any{}, s.PingTimeout); err == nil {
			ip = s.ip(p)
			break
		}
	}
	if ip == "" {
		ip = s.Surface.Local.Settings.Node.IP
	}
	s.masterIP, s.masterTime = ip, time.Now()
	return ip
}

// MasterHandler answers GET /master with the master's IP as plain text,
// without a login (ConfD's does not ask for one: the seed's scripts fetch
// it before they log in). It tells nothing a caller who reached a node's
// port does not know already: the address of one of the cluster's nodes.
func (s *Service) MasterHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "405 method not allowed: GET /master", http.StatusMethodNotAllowed)
			return
		}
		ip := s.Master(r.Context())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte(ip))
	})
}
