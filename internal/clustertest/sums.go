package clustertest

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// NodeSums maps every file of database db's node_<node> in the archive
// volume at dir to its md5, by its path relative to dir: two volumes hold
// the same copy of a node when their NodeSums are equal. Temp files count:
// a copy that left one behind is not the same.
func NodeSums(dir, db string, node int) map[string]string {
	out := map[string]string{}
	part := fmt.Sprintf("%cnode_%d%c", filepath.Separator, node, filepath.Separator)
	filepath.WalkDir(filepath.Join(dir, db), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(p, part) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		sum := md5.Sum(data)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	return out
}
