// Package logfile keeps a node's plugin log: a size-rotated file under the
// state directory that the daemon's log lines are written to and GETLOG
// reads back, with every registered secret masked on the way in.
package logfile

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
)

// File is a log file rotated by size: when a write would take it past
// MaxBytes, the file becomes name.1 (replacing an older one) and a new file
// starts. It is safe for concurrent use; each Write should be whole lines.
type File struct {
	path     string
	maxBytes int64

	mu      gosync.Mutex
	f       *os.File
	size    int64
	secrets []string
}

// DefaultMaxBytes is the size at which the log rotates.
const DefaultMaxBytes = 8 << 20

// Open opens (creating) the log at path, rotating at maxBytes (0: default).
func Open(path string, maxBytes int64) (*File, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	l := &File{path: path, maxBytes: maxBytes}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *File) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log file: %w", err)
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Mask registers secrets (passwords) that must never reach the file: every
// later write has them replaced by ***. Strings shorter than 3 characters
// are ignored (they would mask ordinary text).
func (l *File) Mask(secrets ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range secrets {
		if len(s) >= 3 {
			l.secrets = append(l.secrets, s)
		}
	}
}

// Write appends p, masked, rotating first when p would not fit.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(p)
	for _, s := range l.secrets {
		p = bytes.ReplaceAll(p, []byte(s), []byte("***"))
	}
	if l.f == nil {
		return 0, os.ErrClosed
	}
	if l.size > 0 && l.size+int64(len(p)) > l.maxBytes {
		if err := l.rotate(); err != nil {
			return 0, err
		}
	}
	m, err := l.f.Write(p)
	l.size += int64(m)
	if err != nil {
		return 0, fmt.Errorf("log file: %w", err)
	}
	return n, nil
}

func (l *File) rotate() error {
	l.f.Close()
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		return fmt.Errorf("log file: rotate: %w", err)
	}
	return l.open()
}

// Tail returns the last n lines, reading into the rotated file when the
// current one has fewer.
func (l *File) Tail(n int) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lines []string
	for _, p := range []string{l.path, l.path + ".1"} {
		if len(lines) >= n {
			break
		}
		got, err := lastLines(p, n-len(lines))
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("log file: %w", err)
		}
		lines = append(got, lines...)
	}
	return lines, nil
}

func lastLines(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ring := make([]string, 0, n)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if len(ring) == n {
			ring = ring[1:]
		}
		ring = append(ring, strings.TrimRight(sc.Text(), "\r"))
	}
	return ring, sc.Err()
}

// Close closes the file.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
