package statuspage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"backupsync/internal/control"
	"backupsync/internal/health"
	"backupsync/internal/history"
	"backupsync/internal/xmlrpc"
)

// NodeMethod is the XML-RPC method that answers this node's NodeData as
// JSON text; the page's node calls it on the others.
const NodeMethod = "backupsync.statusPageNode"

// Bounds of what the page asks and accepts of the nodes.
const (
	// MaxNodes is how many nodes the page asks.
	MaxNodes = 64
	// MaxNodeAnswerBytes bounds one node's answer.
	MaxNodeAnswerBytes = 4 << 20
	// MaxConnections bounds the connections shown of one node.
	MaxConnections = 128
	// maxText bounds one text of a node (a cause, a summary).
	maxText = 2000
)

// NodeData is one node's part of the page.
type NodeData struct {
	Node    string    `json:"node"`
	Version string    `json:"version,omitempty"`
	Time    time.Time `json:"time"`
	// Plugin is STATUS '': not installed, activated, not activated.
	Plugin string `json:"plugin,omitempty"`
	// Problem is what keeps the node from showing its connections (a
	// connections file that does not load).
	Problem string `json:"problem,omitempty"`
	// Connections are the copying connections configured on the node.
	Connections []Connection `json:"connections"`
	// Served are the SSH = server connections: tunnels for other clusters.
	Served []Served `json:"served,omitempty"`
	// History holds each copying connection's cycles of the last week.
	History map[string][]history.Point `json:"history,omitempty"`
}

// Connection is a copying connection's health on a node.
type Connection struct {
	health.Health
	Database string `json:"database,omitempty"`
	// Activated: the connection runs on its schedule on this node.
	Activated bool `json:"activated"`
}

// Served is the health of a tunnel this node serves, in one line.
type Served struct {
	Connection string `json:"connection"`
	Line       string `json:"line"`
	Failing    bool   `json:"failing"`
}

// Register adds NodeMethod to srv, answering local's data: the page's node
// asks the others through it. srv is the control plane's XML-RPC server,
// behind its login.
func Register(srv *xmlrpc.Server, local func(context.Context) NodeData) {
	srv.Register(NodeMethod, func(ctx context.Context, _ []any) (any, error) {
		data, err := json.Marshal(local(ctx))
		if err != nil {
			return nil, fmt.Errorf("status page data: %w", err)
		}
		return string(data), nil
	})
}

// answer is one node's data, or why there is none.
type answer struct {
	peer control.Peer
	data NodeData
	err  error
	took time.Duration
}

// askNode fetches peer's data within timeout: this node's from local,
// another's over XML-RPC with the cluster login.
func askNode(ctx context.Context, s *control.Surface, peer control.Peer, local func(context.Context) NodeData, timeout time.Duration, now time.Time) answer {
	start := time.Now()
	a := answer{peer: peer}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if peer.Name == s.Self {
		a.data = local(ctx)
	} else {
		a.data, a.err = fetch(ctx, s, peer, timeout)
	}
	if a.err == nil {
		a.err = a.data.check(peer.Name, now)
	} else if _, answered := a.err.(answerError); !answered {
		a.err = explain(a.err, peer)
	}
	a.took = time.Since(start)
	return a
}

func fetch(ctx context.Context, s *control.Surface, peer control.Peer, timeout time.Duration) (NodeData, error) {
	if peer.URL == "" {
		return NodeData{}, errors.New("no control URL in the cluster settings of this node")
	}
	c, err := xmlrpc.NewClient(peer.URL, xmlrpc.ClientOptions{
		Username: s.PeerUser, Password: s.PeerPassword, Timeout: timeout,
		Insecure: peer.Fingerprint == "", Fingerprint: peer.Fingerprint,
		MaxResponseBytes: MaxNodeAnswerBytes + 64<<10,
	})
	if err != nil {
		return NodeData{}, err
	}
	defer c.Close()
	var reply any
	if err := c.Call(ctx, NodeMethod, &reply); err != nil {
		var f *xmlrpc.Fault
		if errors.As(err, &f) && strings.Contains(f.String, "unknown method") {
			return NodeData{}, answerError{errors.New("its backupsyncd serves no status page data: upgrade it")}
		}
		return NodeData{}, err
	}
	text, ok := reply.(string)
	if !ok {
		return NodeData{}, answerError{fmt.Errorf("answered %s, want the page data as text", xmlrpc.TypeName(reply))}
	}
	d, err := decodeNodeData([]byte(text))
	if err != nil {
		return d, answerError{err}
	}
	return d, nil
}

// answerError is an answer that is not the page data: the node answered.
type answerError struct{ error }

// decodeNodeData reads a node's answer.
func decodeNodeData(data []byte) (NodeData, error) {
	if len(data) > MaxNodeAnswerBytes {
		return NodeData{}, fmt.Errorf("answered %d bytes of page data, more than %d", len(data), MaxNodeAnswerBytes)
	}
	var d NodeData
	if err := json.Unmarshal(data, &d); err != nil {
		return NodeData{}, fmt.Errorf("answered page data that does not decode: %w", err)
	}
	return d, nil
}

// check holds a node's data to the page's bounds: it must be the node
// asked, its connections and texts are cut to size and its history to the
// last week before now, sorted and bounded.
func (d *NodeData) check(node string, now time.Time) error {
	if d.Node != node {
		return fmt.Errorf("answered as node %q: check the cluster settings (URLs) of this node", clip(d.Node, 64))
	}
	d.Version, d.Plugin, d.Problem = clip(d.Version, 64), clip(d.Plugin, 64), clip(d.Problem, maxText)
	// Copies: the data may be shared (this node's).
	d.Connections = slices.Clone(d.Connections[:min(len(d.Connections), MaxConnections)])
	d.Served = slices.Clone(d.Served[:min(len(d.Served), MaxConnections)])
	for i := range d.Connections {
		c := &d.Connections[i]
		c.Connection, c.Database = clip(c.Connection, 128), clip(c.Database, 128)
		c.Cause, c.Next, c.LastSummary = clip(c.Cause, maxText), clip(c.Next, maxText), clip(c.LastSummary, maxText)
		c.Lag = time.Duration(c.LagSeconds * float64(time.Second))
		if c.LagSeconds < 0 || c.LagSeconds > 1e9 {
			c.Lag, c.LagKnown = 0, false
		}
	}
	for i := range d.Served {
		d.Served[i].Connection, d.Served[i].Line = clip(d.Served[i].Connection, 128), clip(d.Served[i].Line, maxText)
	}
	from, to := now.Add(-history.Keep), now.Add(time.Hour)
	kept := map[string][]history.Point{}
	for _, c := range d.Connections {
		pts := d.History[c.Connection]
		pts = slices.DeleteFunc(slices.Clone(pts), func(p history.Point) bool {
			return p.Finished.Before(from) || p.Finished.After(to) || p.Seconds < 0 || p.Bytes < 0
		})
		slices.SortStableFunc(pts, func(a, b history.Point) int { return a.Finished.Compare(b.Finished) })
		if len(pts) > history.MaxPoints {
			pts = pts[len(pts)-history.MaxPoints:]
		}
		if len(pts) > 0 {
			kept[c.Connection] = pts
		}
	}
	d.History = kept
	return nil
}

// clip cuts s to n bytes (on a rune boundary), marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// explain says why peer did not answer, and what to check, as the
// plugin surface says it of a forwarded call (control.Unreachable).
func explain(err error, peer control.Peer) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: %v", context.DeadlineExceeded, err)
	}
	msg := control.Unreachable(peer, err)
	msg = strings.ReplaceAll(msg, NodeMethod+": ", "")
	return errors.New(strings.ReplaceAll(msg, NodeMethod, "the status page's call"))
}
