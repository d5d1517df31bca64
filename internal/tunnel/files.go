package tunnel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	dirMode  = 0o700
	fileMode = 0o600
)

// mkdirPrivate creates dir (which must be root or below it) and makes root
// and every directory between root and dir mode 0700.
func mkdirPrivate(root, dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	rel, err := filepath.Rel(root, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("key directory %s is outside %s", dir, root)
	}
	p := root
	if err := os.Chmod(p, dirMode); err != nil {
		return fmt.Errorf("key directory: %w", err)
	}
	if rel == "." {
		return nil
	}
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		if err := os.Chmod(p, dirMode); err != nil {
			return fmt.Errorf("key directory: %w", err)
		}
	}
	return nil
}

// writeTemp writes data to a new 0600 temporary file beside path and syncs
// it; it returns the temporary file's name.
func writeTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	name := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(name)
		return "", fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Chmod(fileMode); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return "", fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return name, nil
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// writeFileAtomic replaces path with data (mode 0600): temp file, fsync,
// rename, fsync of the directory. Readers see the old or the new content,
// never a mix.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", filepath.Base(path), err)
	}
	return nil
}

// createFileAtomic creates path with data (mode 0600) only if it does not
// exist yet, atomically: the file appears complete or not at all. It fails
// with an error matching fs.ErrExist when path exists.
func createFileAtomic(path string, data []byte) error {
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fs.ErrExist
		}
		return fmt.Errorf("create %s: %w", filepath.Base(path), err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("create %s: sync directory: %w", filepath.Base(path), err)
	}
	return nil
}

// fileTx writes several files atomically one by one and can restore the
// ones it wrote.
type fileTx struct {
	// root is the key store's root, <state_dir>/ssh: the directories from
	// it down to a written file are created and kept 0700.
	root string
	done []prevFile
}

type prevFile struct {
	path   string
	data   []byte
	exists bool
}

// write replaces path with data (creating its directory, 0700), remembering
// the previous content for rollback.
func (tx *fileTx) write(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := mkdirPrivate(tx.root, dir); err != nil {
		return err
	}
	old, err := os.ReadFile(path)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	if err := writeFileAtomic(path, data); err != nil {
		return err
	}
	tx.done = append(tx.done, prevFile{path, old, exists})
	return nil
}

// rollback restores every file write changed, newest first.
func (tx *fileTx) rollback() error {
	var errs []error
	for i := len(tx.done) - 1; i >= 0; i-- {
		p := tx.done[i]
		if p.exists {
			errs = append(errs, writeFileAtomic(p.path, p.data))
		} else if err := os.Remove(p.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	tx.done = nil
	return errors.Join(errs...)
}
