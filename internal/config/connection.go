package config

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// Role is what a connection does on this cluster.
type Role string

const (
	// RoleClient copies this cluster's backups to the remote cluster through
	// an SSH tunnel (SSH = client).
	RoleClient Role = "client"
	// RoleServer accepts the tunnels of the remote cluster's clients and
	// forwards them to this node's archive FTP (SSH = server).
	RoleServer Role = "server"
	// RoleDirect copies like a client but speaks FTP to the remote cluster
	// directly, without SSH (SSH = none, or no SSH key; our extension).
	RoleDirect Role = "none"
)

// Copies reports whether connections of this role run sync cycles.
func (r Role) Copies() bool { return r == RoleClient || r == RoleDirect }

// A Connection is one ConnectionN { … } block, validated.
type Connection struct {
	Name string
	File string // where the block was read
	Line int    // line of the block's name
	// Source is where the block came from when UPLOAD_CONFIG wrote it
	// ("uploaded 2026-12-06T01:20:00Z (file sha256 0123456789ab, 1 of 2
	// connections)"), read from the "# backupsync-source:" comment above
	// it; "" for a block written by hand. Origin describes both.
	Source string
	Role   Role

	Database    string
	Schedule    string // START_CYCLE as written
	LocalURL    ArchiveURL
	RemoteURL   ArchiveURL
	RemoteNodes []string
	Verbose     bool

	// Extension keys (ours, not the original plugin's); see keys.go.
	Parallel       int
	BandwidthLimit int64 // bytes per second; 0 means no limit
	SettleTime     time.Duration
	Delete         bool
	MaxDeleteSets  int // 0 means no cap

	schedule cron.Schedule
}

// Origin says where the connection came from, for STATUS and check-config:
// its Source, or "written in FILE line N" for a block written by hand.
func (c Connection) Origin() string {
	if c.Source != "" {
		return c.Source
	}
	file := c.File
	if file == "" {
		file = "<input>"
	}
	return fmt.Sprintf("written in %s line %d", file, c.Line)
}

// Next is the first time after t at which the connection's cycle is due,
// or the zero time for a connection that does not copy.
func (c Connection) Next(t time.Time) time.Time {
	if c.schedule == nil {
		return time.Time{}
	}
	return c.schedule.Next(t)
}

// CronSchedule is the parsed START_CYCLE, nil for a server connection.
func (c Connection) CronSchedule() cron.Schedule { return c.schedule }

// RemoteNode is the remote node that database node index talks to first,
// or "" without REMOTE_NODES. The original gives node i the i-th entry; a
// cluster with more nodes than entries wraps around (entry i mod the number
// of entries), so that nodes share a remote node (see RemoteNodeIndex).
func (c Connection) RemoteNode(index int) string {
	i := c.RemoteNodeIndex(index)
	if i < 0 {
		return ""
	}
	return c.RemoteNodes[i]
}

// defaults returns a connection with every optional key at its default.
func defaults(name, file string, line int) Connection {
	c := Connection{Name: name, File: file, Line: line, Role: RoleDirect}
	for _, k := range keys {
		if k.setDefault != nil {
			k.setDefault(&c)
		}
	}
	return c
}
