package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"backupsync/internal/atomicfile"
)

// state is what the plugin keeps on disk, in <state_dir>/plugin/state.json.
type state struct {
	Installed bool     `json:"installed"`
	Active    []string `json:"active,omitempty"` // activated connections
}

func (n *Node) stateFile() string {
	return filepath.Join(n.Settings.StateDir, "plugin", "state.json")
}

func (n *Node) loadState() (*state, error) {
	st := &state{}
	data, err := os.ReadFile(n.stateFile())
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err == nil {
		err = json.Unmarshal(data, st)
	}
	if err != nil {
		return nil, fmt.Errorf("plugin state %s is unreadable (%v): UNINSTALL and INSTALL again", n.stateFile(), err)
	}
	return st, nil
}

func (n *Node) saveState(st *state) error {
	if err := os.MkdirAll(filepath.Dir(n.stateFile()), 0o700); err != nil {
		return fmt.Errorf("plugin state: %w", err)
	}
	data, _ := json.MarshalIndent(st, "", " ")
	return atomicfile.Write(n.stateFile(), data, 0o600)
}

func (st *state) active(name string) bool {
	return slices.ContainsFunc(st.Active, func(a string) bool { return strings.EqualFold(a, name) })
}

// ActiveConnections returns the names of the activated connections; an
// uninstalled plugin has none.
func (n *Node) ActiveConnections() ([]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st, err := n.loadState()
	if err != nil || !st.Installed {
		return nil, err
	}
	return slices.Clone(st.Active), nil
}
