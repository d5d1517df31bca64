package runner

import (
	"encoding/json"
	"os"
	"path/filepath"
	gosync "sync"
	"time"

	"backupsync/internal/archive"
	"backupsync/internal/atomicfile"
)

// ProbeTTL is how long what a destination's probe found is trusted. The
// probe writes, appends, renames and deletes scratch files in the volume:
// doing that every cycle costs round trips and leaves traces for nothing.
const ProbeTTL = time.Hour

// Probes remembers what destination endpoints can do, in memory and in
// <state_dir>/probes.json, so that a cycle (or a sync-once run) probes an
// endpoint at most once an hour. Safe for concurrent use.
type Probes struct {
	file string

	mu     gosync.Mutex
	loaded bool
	known  map[string]probed
}

type probed struct {
	Caps archive.Capabilities `json:"capabilities"`
	At   time.Time            `json:"at"`
}

// NewProbes keeps its record under stateDir.
func NewProbes(stateDir string) *Probes {
	return &Probes{file: filepath.Join(stateDir, "probes.json")}
}

// key names an endpoint without its password.
func key(ep archive.Endpoint) string { return ep.String() }

// Get returns the capabilities of ep if a probe found them within ProbeTTL.
func (p *Probes) Get(ep archive.Endpoint) *archive.Capabilities {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.load()
	k, ok := p.known[key(ep)]
	if !ok || time.Since(k.At) > ProbeTTL || k.At.After(time.Now()) {
		return nil
	}
	caps := k.Caps
	return &caps
}

// Put records what a probe of ep found.
func (p *Probes) Put(ep archive.Endpoint, caps archive.Capabilities) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.load()
	p.known[key(ep)] = probed{Caps: caps, At: time.Now()}
	if data, err := json.MarshalIndent(p.known, "", " "); err == nil {
		os.MkdirAll(filepath.Dir(p.file), 0o700)
		atomicfile.WriteUnsynced(p.file, data, 0o600) // a lost record only costs a probe
	}
}

// Forget drops what is known of ep: the next Open probes it again.
func (p *Probes) Forget(ep archive.Endpoint) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.load()
	delete(p.known, key(ep))
}

func (p *Probes) load() {
	if p.loaded {
		return
	}
	p.loaded = true
	p.known = map[string]probed{}
	if data, err := os.ReadFile(p.file); err == nil {
		json.Unmarshal(data, &p.known) // a damaged record only costs a probe
	}
}
