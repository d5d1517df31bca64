package sync

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"strings"
)

// A manifest is a file in a backup set that lists md5 digests, one
// "<md5>  <name>" line per file (md5sum's format, "*<name>" in binary mode),
// names relative to the manifest's directory. Where one lists a file, its
// copy is verified against the digest.
func isManifest(p string) bool {
	base := strings.ToLower(path.Base(p))
	return strings.HasSuffix(base, ".md5") || base == "md5sums"
}

// maxManifest bounds what is read of one manifest.
const maxManifest = 4 << 20

// readDigests reads the manifests among files that cover a file plan
// copies (one in the file's directory or above it) from src and returns
// the digests they list, keyed by full path. A set already at the
// destination costs no read. A manifest that cannot be read or parsed is
// an error: silently copying unverified would hide it.
func readDigests(ctx context.Context, src Source, files []File, plan Plan) (map[string]string, error) {
	copied := map[string]bool{} // directories holding a file to copy
	for _, a := range plan.Actions {
		switch a.Op {
		case OpCopy, OpReplace, OpResume:
			copied[path.Dir(a.Path)] = true
		}
	}
	digests := map[string]string{}
	for _, f := range files {
		if !isManifest(f.Path) || !covers(path.Dir(f.Path), copied) {
			continue
		}
		if f.Size > maxManifest {
			return nil, fmt.Errorf("manifest %s: %d bytes is larger than %d", f.Path, f.Size, maxManifest)
		}
		r, err := src.Open(ctx, f.Path, 0)
		if err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		err = parseManifest(io.LimitReader(r, maxManifest), path.Dir(f.Path), digests)
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", f.Path, err)
		}
	}
	return digests, nil
}

// covers reports whether dir is one of dirs or above one of them.
func covers(dir string, dirs map[string]bool) bool {
	for d := range dirs {
		if d == dir || strings.HasPrefix(d, dir+"/") {
			return true
		}
	}
	return false
}

func parseManifest(r io.Reader, dir string, into map[string]string) error {
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sum, name, ok := strings.Cut(line, " ")
		name = strings.TrimPrefix(strings.TrimLeft(name, " "), "*")
		if b, err := hex.DecodeString(sum); !ok || err != nil || len(b) != 16 || name == "" {
			return fmt.Errorf("line %d: want \"<md5>  <name>\"", n)
		}
		p := path.Join(dir, name)
		if !strings.HasPrefix(p, dir+"/") {
			return fmt.Errorf("line %d: %q is outside the manifest's directory", n, name)
		}
		into[p] = strings.ToLower(sum)
	}
	return sc.Err()
}
