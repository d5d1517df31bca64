package sync

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	gosync "sync"

	"backupsync/internal/atomicfile"
)

// A Journal records uploads made directly under a final name (servers that
// cannot rename) while they are in flight, in a file under the state
// directory, so that the next cycle removes whatever a crash left partial
// before doing anything else (DESIGN §3.1). It implements archive.Journal.
type Journal struct {
	file string

	mu     gosync.Mutex
	paths  map[string]bool
	loaded bool
}

// NewJournal keeps its record in file.
func NewJournal(file string) *Journal { return &Journal{file: file} }

func (j *Journal) load() error {
	if j.loaded {
		return nil
	}
	j.paths = map[string]bool{}
	data, err := os.ReadFile(j.file)
	if errors.Is(err, os.ErrNotExist) {
		j.loaded = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	var list []string
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("journal %s is damaged (%v): remove it after checking the destination by hand", j.file, err)
	}
	for _, p := range list {
		j.paths[p] = true
	}
	j.loaded = true
	return nil
}

func (j *Journal) save() error {
	list := j.inFlight()
	data, _ := json.Marshal(list)
	if err := os.MkdirAll(filepath.Dir(j.file), 0o700); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return atomicfile.Write(j.file, data, 0o600)
}

func (j *Journal) inFlight() []string {
	list := make([]string, 0, len(j.paths))
	for p := range j.paths {
		list = append(list, p)
	}
	sort.Strings(list)
	return list
}

// Begin records path as being uploaded; the record is on disk when it returns.
func (j *Journal) Begin(path string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.load(); err != nil {
		return err
	}
	j.paths[path] = true
	return j.save()
}

// End records that path is complete or removed.
func (j *Journal) End(path string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.load(); err != nil {
		return err
	}
	delete(j.paths, path)
	return j.save()
}

// InFlight lists the paths begun and never ended.
func (j *Journal) InFlight() ([]string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.load(); err != nil {
		return nil, err
	}
	return j.inFlight(), nil
}
