package confd

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"unicode"

	"backupsync/internal/atomicfile"
	"backupsync/internal/control"
)

// counter hands out increasing numbers that stay increasing across
// restarts: the file holds a number above every one handed out, reserved
// block at a time so that most numbers cost no write. A file that cannot be
// written costs only that guarantee (it is logged), never a job.
type counter struct {
	mu          gosync.Mutex
	file        string
	block       int64
	cur, limit  int64
	loaded      bool
	warnedWrite bool
}

func newCounter(file string, block int64) *counter {
	return &counter{file: file, block: block}
}

func (c *counter) next(log *slog.Logger) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loaded {
		c.loaded = true
		data, err := os.ReadFile(c.file)
		if err == nil {
			if v, perr := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); perr == nil && v > 0 {
				c.cur, c.limit = v, v
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("confd counter unreadable: numbering restarts", "file", c.file, "error", err)
		}
	}
	c.cur++
	if c.cur > c.limit {
		c.limit = c.cur + c.block - 1
		err := os.MkdirAll(filepath.Dir(c.file), 0o700)
		if err == nil {
			err = atomicfile.Write(c.file, []byte(strconv.FormatInt(c.limit, 10)+"\n"), 0o600)
		}
		if err != nil && !c.warnedWrite {
			c.warnedWrite = true
			log.Warn("confd counter not saved: after a restart its numbers may repeat", "file", c.file, "error", err)
		}
	}
	return c.cur
}

// nodeIDs gives each node the id ConfD would show: the number its name
// ends with ("n0011" is "11", "n11" too). Where names hold no number, or
// two names end in the same one, every node's id is its position (from 1).
func nodeIDs(nodes []control.Peer) []string {
	ids := make([]string, len(nodes))
	seen := map[string]bool{}
	for i, n := range nodes {
		end := len(n.Name)
		start := end
		for start > 0 && unicode.IsDigit(rune(n.Name[start-1])) {
			start--
		}
		id := strings.TrimLeft(n.Name[start:end], "0")
		if start == end {
			id = ""
		} else if id == "" {
			id = "0"
		}
		if id == "" || seen[id] {
			for i := range ids {
				ids[i] = strconv.Itoa(i + 1)
			}
			return ids
		}
		seen[id] = true
		ids[i] = id
	}
	if len(ids) == 0 {
		return []string{"1"}
	}
	return ids
}
