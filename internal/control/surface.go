package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"backupsync/internal/plugin"
	"backupsync/internal/xmlrpc"
)

// Peer is one daemon of the cluster.
type Peer struct {
	Name        string
	URL         string // its control URL, "https://IP:PORT/"
	Fingerprint string // pinned certificate; "" accepts any
}

// Surface answers the plugin surface for the whole cluster.
type Surface struct {
	Self    string // this node's name
	Nodes   []Peer // the cluster in getNodeList order, this node included
	Local   *plugin.Node
	Version string // shown in the plugin name
	// PeerUser and PeerPassword log in to the other daemons.
	PeerUser, PeerPassword string
	// ForwardTimeout bounds a forwarded call; default 5s.
	ForwardTimeout time.Duration
	Logger         *slog.Logger
}

// localMethod runs a verb on the daemon that receives it and never
// forwards: what a forwarded callPlugin calls on the target node.
const localMethod = "backupsync.callLocal"

// Handler returns the XML-RPC handler of the surface (unauthenticated:
// wrap it with a Login's Require).
func (s *Surface) Handler() http.Handler { return s.Server() }

// Server returns the surface's XML-RPC server, so that the daemon can
// register another dialect's methods (ConfD's job_exec) on the same
// endpoint before it serves. It is unauthenticated: wrap it with
// a Login's Require.
func (s *Surface) Server() *xmlrpc.Server {
	srv := &xmlrpc.Server{
		Logger: s.Logger,
		UnknownMethod: func(m string) *xmlrpc.Fault {
			return xmlrpc.ZopeFault("unknown method %q: the plugin surface has showPluginList, getNodeList, showPluginFunctions and callPlugin", m)
		},
		// EXAoperation answers every failure in Zope's shape.
		ErrorFault: func(m string, err error) *xmlrpc.Fault { return xmlrpc.ZopeFault("%v", err) },
	}
	srv.Register("showPluginList", func(ctx context.Context, _ []any) (any, error) {
		return []string{s.pluginName()}, nil
	})
	srv.Register("getNodeList", func(ctx context.Context, _ []any) (any, error) {
		names := make([]string, len(s.Nodes))
		for i, n := range s.Nodes {
			names[i] = n.Name
		}
		return names, nil
	})
	srv.Register("showPluginFunctions", func(ctx context.Context, params []any) (any, error) {
		if err := s.checkPlugin(params); err != nil {
			return nil, err
		}
		return plugin.Functions, nil
	})
	srv.Register("callPlugin", func(ctx context.Context, params []any) (any, error) {
		return s.callPlugin(ctx, params, true)
	})
	srv.Register(localMethod, func(ctx context.Context, params []any) (any, error) {
		return s.callPlugin(ctx, params, false)
	})
	// The EXAoperation gate (plugin-functions) asks which node it runs on.
	srv.Register("backupsync.nodeName", func(ctx context.Context, _ []any) (any, error) {
		return s.Self, nil
	})
	return srv
}

func (s *Surface) pluginName() string { return plugin.Name + "-" + s.Version }

func (s *Surface) checkPlugin(params []any) error {
	name, err := xmlrpc.Arg[string](params, 0)
	if err != nil {
		return err
	}
	// Scripts hard-code the version they were written for: any version is ours.
	if name != plugin.Name && !strings.HasPrefix(name, plugin.Name+"-") {
		return xmlrpc.ZopeFault("unknown plugin %q: this cluster has %s", name, s.pluginName())
	}
	return nil
}

func (s *Surface) callPlugin(ctx context.Context, params []any, forward bool) (any, error) {
	if err := s.checkPlugin(params); err != nil {
		return nil, err
	}
	node, err := xmlrpc.Arg[string](params, 1)
	if err != nil {
		return nil, err
	}
	verb, err := xmlrpc.Arg[string](params, 2)
	if err != nil {
		return nil, err
	}
	// arg may be omitted or None; Python 3 scripts that pass b64encode()'s
	// bytes send an XML-RPC base64 value, which arrives as []byte.
	arg := ""
	if len(params) > 3 {
		switch v := params[3].(type) {
		case nil:
		case string:
			arg = v
		case []byte:
			arg = string(v)
		default:
			return nil, xmlrpc.NewFault(xmlrpc.CodeInvalidParams, "argument 4 of callPlugin must be a string, not %s", xmlrpc.TypeName(v))
		}
	}
	if !plugin.Known(verb) {
		return nil, xmlrpc.ZopeFault("unknown plugin function %q: use one of ACTIVATE, DEACTIVATE, GETLOG, INSTALL, SSHKEY, STATUS, UNINSTALL, UPLOAD_CONFIG, UPLOAD_KEY (or our TEST)", verb)
	}
	if node == s.Self {
		r, err := s.Local.Call(ctx, verb, arg)
		if err != nil {
			return nil, xmlrpc.ZopeFault("%v", err)
		}
		return []any{r.Code, r.Output}, nil
	}
	peer, ok := s.peer(node)
	if !ok {
		return nil, xmlrpc.ZopeFault("unknown node %q: this cluster has %s", node, strings.Join(s.names(), ", "))
	}
	if !forward {
		return nil, xmlrpc.ZopeFault("node %q is not this daemon (%s): check the cluster settings", node, s.Self)
	}
	r, err := s.forward(ctx, peer, params[0].(string), verb, arg)
	if err != nil {
		return nil, err
	}
	return []any{r.Code, r.Output}, nil
}

// CallNode runs a plugin verb on the named node of the cluster: on this
// daemon, or forwarded to the node's daemon as callPlugin forwards it, with
// the same answers (an unreachable node is [256, "<node> unreachable: …"]
// within ForwardTimeout). The error is an unknown verb or node, or the
// peer's fault.
func (s *Surface) CallNode(ctx context.Context, node, verb, arg string) (plugin.Result, error) {
	if node == s.Self {
		return s.Local.Call(ctx, verb, arg)
	}
	peer, ok := s.peer(node)
	if !ok {
		return plugin.Result{}, fmt.Errorf("unknown node %q: this cluster has %s", node, strings.Join(s.names(), ", "))
	}
	return s.forward(ctx, peer, s.pluginName(), verb, arg)
}

func (s *Surface) peer(name string) (Peer, bool) {
	for _, p := range s.Nodes {
		if p.Name == name {
			return p, true
		}
	}
	return Peer{}, false
}

func (s *Surface) names() []string {
	out := make([]string, len(s.Nodes))
	for i, n := range s.Nodes {
		out[i] = n.Name
	}
	return out
}

// Dial returns a client of peer's daemon that logs in as the cluster's
// PeerUser and verifies the peer's pinned certificate (any certificate
// when none is pinned). timeout 0 means ForwardTimeout.
func (s *Surface) Dial(peer Peer, timeout time.Duration) (*xmlrpc.Client, error) {
	if timeout == 0 {
		timeout = s.ForwardTimeout
	}
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	return xmlrpc.NewClient(peer.URL, xmlrpc.ClientOptions{
		Username: s.PeerUser, Password: s.PeerPassword, Timeout: timeout,
		Insecure: peer.Fingerprint == "", Fingerprint: peer.Fingerprint,
	})
}

// forward runs the verb on peer. A peer that cannot be reached answers
// [256, "<node> unreachable: …"] within ForwardTimeout; the error is the
// peer's fault.
func (s *Surface) forward(ctx context.Context, peer Peer, pluginName, verb, arg string) (plugin.Result, error) {
	c, err := s.Dial(peer, plugin.CallTimeout(verb)) // 0: ForwardTimeout
	if err != nil {
		return plugin.Result{Code: plugin.CodeFailed, Output: Unreachable(peer, err)}, nil
	}
	defer c.Close()
	// Decoded by this package's decoder (a *any): kolo's reflection would
	// turn an empty <string></string> output into nil.
	var answer any
	err = c.Call(ctx, localMethod, &answer, pluginName, peer.Name, verb, arg)
	reply, _ := answer.([]any)
	var fault *xmlrpc.Fault
	switch {
	case errors.As(err, &fault):
		return plugin.Result{}, fault // the peer's answer, e.g. an unknown verb
	case err != nil:
		if s.Logger != nil {
			s.Logger.Warn("node unreachable", "node", peer.Name, "error", err)
		}
		return plugin.Result{Code: plugin.CodeFailed, Output: Unreachable(peer, err)}, nil
	case len(reply) != 2:
		return plugin.Result{Code: plugin.CodeFailed, Output: fmt.Sprintf("%s answered %d values, want [code, output]", peer.Name, len(reply))}, nil
	}
	code, ok1 := reply[0].(int64)
	out, ok2 := reply[1].(string)
	if !ok1 || !ok2 {
		return plugin.Result{Code: plugin.CodeFailed, Output: fmt.Sprintf("%s answered [%s, %s], want [int, string]", peer.Name, xmlrpc.TypeName(reply[0]), xmlrpc.TypeName(reply[1]))}, nil
	}
	return plugin.Result{Code: int(code), Output: out}, nil
}
