package sync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	gosync "sync"
	"time"
)

// memVolume is an in-memory archive volume with Publish's contract, and
// hooks to make operations fail.
type memVolume struct {
	mu    gosync.Mutex
	files map[string][]byte
	mtime map[string]time.Time
	// fail returns an error to inject for an operation on a path, or nil.
	fail func(op, path string) error
	// finals records every name a file appeared under, to prove no partial
	// file was ever visible under a final name.
	published []string
}

func newMem() *memVolume {
	return &memVolume{files: map[string][]byte{}, mtime: map[string]time.Time{}}
}

func (m *memVolume) put(p string, data []byte, mod time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[p], m.mtime[p] = data, mod
}

func (m *memVolume) get(p string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.files[p]
	return d, ok
}

func (m *memVolume) paths() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ps []string
	for p := range m.files {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

func (m *memVolume) injected(op, p string) error {
	if m.fail == nil {
		return nil
	}
	return m.fail(op, p)
}

func (m *memVolume) ListNode(ctx context.Context, db string, node int) (Listing, error) {
	if err := m.injected("list", db); err != nil {
		return Listing{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var l Listing
	prefix := db + "/"
	for p, d := range m.files {
		if loc, ok := locate(db, p); strings.HasPrefix(p, prefix) && (!ok || loc.node == node) {
			l.Files = append(l.Files, File{Path: p, Size: int64(len(d)), ModTime: m.mtime[p], Exact: true})
		}
	}
	return l, nil
}

func (m *memVolume) Open(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	if err := m.injected("open", p); err != nil {
		return nil, err
	}
	d, ok := m.get(p)
	if !ok {
		return nil, fmt.Errorf("open %s: no such file", p)
	}
	return io.NopCloser(bytes.NewReader(d[off:])), nil
}

func (m *memVolume) Publish(ctx context.Context, p string, src io.Reader, size, from int64) error {
	tmp := tempName(p)
	var prefix []byte
	if from > 0 {
		old, _ := m.get(tmp)
		prefix = old[:from]
	}
	var buf bytes.Buffer
	buf.Write(prefix)
	_, err := io.Copy(&buf, src)
	m.put(tmp, buf.Bytes(), time.Now()) // what the server got, even on error
	if err != nil {
		return fmt.Errorf("stor %s: %w", tmp, err)
	}
	if err := m.injected("publish", p); err != nil {
		return err
	}
	if int64(buf.Len()) != size {
		return fmt.Errorf("size of %s is %d, want %d", tmp, buf.Len(), size)
	}
	m.mu.Lock()
	delete(m.files, tmp)
	m.files[p], m.mtime[p] = buf.Bytes(), time.Now()
	m.published = append(m.published, p)
	m.mu.Unlock()
	return nil
}

func (m *memVolume) Delete(ctx context.Context, p string) error {
	if err := m.injected("delete", p); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[p]; !ok {
		return fmt.Errorf("delete %s: no such file", p)
	}
	delete(m.files, p)
	return nil
}

func (m *memVolume) RemoveDir(ctx context.Context, dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for p := range m.files {
		if strings.HasPrefix(p, dir+"/") {
			return errors.New("not empty")
		}
	}
	return nil
}
