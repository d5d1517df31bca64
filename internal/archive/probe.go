package archive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"strings"
)

// probe finds out what the server can do, on c, in the volume root. Reply
// errors mean "cannot"; a network error fails the probe (and Open).
func (v *Volume) probe(ctx context.Context, c *conn) (caps Capabilities, err error) {
	stop := c.watch(ctx)
	defer stop()
	caps = Capabilities{
		Features: sortedCopy(v.features),
		MLSD:     c.sc.IsTimePreciseInList(),
		MDTM:     c.sc.IsGetTimeSupported(),
		MFMT:     c.sc.IsSetTimeSupported(),
	}
	// MLSD must work where it is advertised. (Without MLSD there is nothing
	// to learn from a listing here: dialing entered the root, and ListNode
	// reports a root it cannot list.)
	if caps.MLSD {
		if _, err := v.listDir(c, ""); err != nil {
			if !connUsable(err) {
				return caps, err
			}
			caps.MLSD = false
		}
	}

	if v.opt.ReadOnly {
		// Reads from an offset are all a source needs; trust FEAT for them.
		for _, f := range v.features {
			if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(f)), "REST STREAM") {
				caps.Rest = true
			}
		}
		return caps, nil
	}

	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	base := "backupsync-probe-" + hex.EncodeToString(rnd[:])
	a := v.abs(TempName(base + "-a"))
	b := v.abs(TempName(base + "-b"))
	d := v.abs(TempName(base + "-c"))
	// check turns a reply error into "cannot" and keeps network errors.
	check := func(e error) bool {
		if e != nil && !connUsable(e) {
			err = e
		}
		return e == nil
	}
	defer func() {
		if err != nil {
			return // the connection is gone
		}
		for _, p := range []string{a, b, d} {
			_ = c.sc.Delete(p)
		}
	}()

	if !check(c.sc.Stor(a, strings.NewReader("abc"))) {
		return caps, err // read-only volume: nothing else to learn
	}
	caps.Writable = true
	if n, e := c.sc.FileSize(a); check(e) && n == 3 {
		caps.Size = true
	}
	if err != nil {
		return caps, err
	}
	if s, e := retrAll(c, a, 1); check(e) && s == "bc" {
		caps.Rest = true
	}
	if err != nil {
		return caps, err
	}
	if check(c.sc.Append(a, strings.NewReader("def"))) {
		if s, e := retrAll(c, a, 0); check(e) && s == "abcdef" {
			caps.Append = AppendAPPE
		}
	}
	if err != nil {
		return caps, err
	}
	if caps.Append == AppendNone && check(c.sc.Stor(a, strings.NewReader("abc"))) {
		if check(c.sc.StorFrom(a, strings.NewReader("def"), 3)) {
			if s, e := retrAll(c, a, 0); check(e) && s == "abcdef" {
				caps.Append = AppendRestStor
			}
		}
	}
	if err != nil {
		return caps, err
	}
	// Rename to a new name, then onto an existing file.
	if check(c.sc.Stor(a, strings.NewReader("abcdef"))) && check(c.sc.Rename(a, b)) {
		if s, e := retrAll(c, b, 0); check(e) && s == "abcdef" {
			caps.Rename = true
		}
	}
	if err != nil {
		return caps, err
	}
	if caps.Rename && check(c.sc.Stor(d, strings.NewReader("x"))) && check(c.sc.Rename(b, d)) {
		if s, e := retrAll(c, d, 0); check(e) && s == "abcdef" {
			caps.RenameReplaces = true
		}
	}
	return caps, err
}

// recheck stands in for probe when the capabilities are known from an
// earlier probe: where MLSD was found, the root must still list with it
// (else MLSD is dropped); without MLSD dialing, which entered the root, is
// check enough.
func (v *Volume) recheck(ctx context.Context, c *conn, known Capabilities) (Capabilities, error) {
	if !known.MLSD {
		return known, nil // dialing entered the root; see probe
	}
	stop := c.watch(ctx)
	defer stop()
	if _, err := v.listDir(c, ""); err != nil {
		if !connUsable(err) {
			return known, err
		}
		known.MLSD = false
	}
	return known, nil
}

// retrAll reads a small file from offset.
func retrAll(c *conn, p string, offset int64) (string, error) {
	r, err := c.sc.RetrFrom(p, uint64(offset))
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(r, 1<<10))
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return string(b), err
}
