package farend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"backupsync/internal/archive"
	"backupsync/internal/ftptest"
)

// TestRequests publishes (plain and striped, in parallel), lists, reads,
// deletes and removes directories through the far end.
func TestRequests(t *testing.T) {
	srv := startFTP(t)
	e := newPipeEnd(t, srv, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Dial(ctx, e.open, login(srv), Options{Channels: 4, Stripes: 3, StripeMin: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Capabilities().Rename {
		t.Fatalf("capabilities: %v", c.Capabilities())
	}
	files := map[string][]byte{
		"DB/id_1/level_0/node_0/small":        randomBytes(t, 16<<10),
		"DB/id_1/level_0/node_0/empty":        {},
		"DB/id_1/level_0/node_0/sub/deeper":   randomBytes(t, 300<<10),
		"DB/id_1/level_0/node_0/large":        randomBytes(t, 5<<20+123),
		"DB/id_1/level_0/node_0/metadata_000": randomBytes(t, 1000),
	}
	errs := make(chan error, len(files))
	for p, data := range files {
		go func() { errs <- c.Publish(ctx, p, bytes.NewReader(data), int64(len(data)), 0) }()
	}
	for range files {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	got := volumeFiles(t, srv)
	for p, data := range files {
		if got[p] != md5hex(data) {
			t.Errorf("%s: md5 %s, want %s", p, got[p], md5hex(data))
		}
	}
	noTemps(t, srv)

	l, err := c.ListNode(ctx, "DB", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Files) != len(files) {
		t.Fatalf("listing: %+v", l.Files)
	}
	for _, f := range l.Files {
		if int64(len(files[f.Path])) != f.Size || f.ModTime.IsZero() {
			t.Errorf("listed %+v", f)
		}
	}

	r, err := c.Open(ctx, "DB/id_1/level_0/node_0/large", 1000)
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(back, files["DB/id_1/level_0/node_0/large"][1000:]) {
		t.Fatalf("read back %d bytes, %v", len(back), err)
	}

	// Resume: a temp file holding a prefix.
	data := randomBytes(t, 200<<10)
	writeTree(t, srv, map[string][]byte{"DB/id_2/level_0/node_0/f" + archive.TempSuffix: data[:50000]})
	if err := c.Publish(ctx, "DB/id_2/level_0/node_0/f", bytes.NewReader(data[50000:]), int64(len(data)), 50000); err != nil {
		t.Fatal(err)
	}
	if got := volumeFiles(t, srv)["DB/id_2/level_0/node_0/f"]; got != md5hex(data) {
		t.Fatalf("resumed file: md5 %s", got)
	}

	if err := c.RemoveDir(ctx, "DB/id_1/level_0/node_0/sub"); !errors.Is(err, archive.ErrNotEmpty) {
		t.Fatalf("rmdir of a full directory: %v", err)
	}
	if err := c.Delete(ctx, "DB/id_1/level_0/node_0/sub/deeper"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveDir(ctx, "DB/id_1/level_0/node_0/sub"); err != nil {
		t.Fatal(err)
	}
	if _, ok := volumeFiles(t, srv)["DB/id_1/level_0/node_0/sub/deeper"]; ok {
		t.Fatal("deleted file still there")
	}
	if strings.Contains(e.log.String(), srv.Password) {
		t.Fatal("the password reached the far end's log")
	}
}

// TestLoginRefused: a wrong password is the FTP server's refusal.
func TestLoginRefused(t *testing.T) {
	srv := startFTP(t)
	e := newPipeEnd(t, srv, nil)
	l := login(srv)
	l.Password = "wrong-password-123"
	_, err := Dial(context.Background(), e.open, l, Options{})
	if !errors.Is(err, archive.ErrLoginRefused) {
		t.Fatalf("err = %v, want ErrLoginRefused", err)
	}
	if strings.Contains(e.log.String(), "wrong-password-123") {
		t.Fatal("the password reached the log")
	}
}

// heldReads holds the client's reads of a channel (the results) while
// held is set: a link whose return path is slow.
type heldReads struct {
	io.ReadWriteCloser
	held    *atomic.Bool
	release chan struct{}
}

func (h heldReads) Read(p []byte) (int, error) {
	if h.held.Load() {
		<-h.release
	}
	return h.ReadWriteCloser.Read(p)
}

// A client sends file after file on one channel without waiting for their
// results (StartPublish), then takes them all: every file is published.
func TestPublishesArePipelined(t *testing.T) {
	srv := startFTP(t)
	e := newPipeEnd(t, srv, nil)
	var held atomic.Bool
	release := make(chan struct{})
	open := func(ctx context.Context) (io.ReadWriteCloser, error) {
		rw, err := e.open(ctx)
		if err != nil {
			return nil, err
		}
		return heldReads{rw, &held, release}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Dial(ctx, open, login(srv), Options{Channels: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	held.Store(true)
	files := map[string][]byte{}
	var waits []func() error
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := range 20 {
			p := fmt.Sprintf("DB/id_1/level_0/node_0/data_%03d", i)
			files[p] = randomBytes(t, 1000+i)
			waits = append(waits, c.StartPublish(ctx, p, bytes.NewReader(files[p]), int64(len(files[p])), 0))
		}
	}()
	select {
	case <-sent:
	case <-time.After(20 * time.Second):
		close(release)
		t.Fatal("StartPublish waited for results: 20 files were not sent while the results were held")
	}
	held.Store(false)
	close(release)
	waitAll(t, waits)
	samePublished(t, srv, files)
}

// waitAll takes every pending result; a failed one fails the test.
func waitAll(t *testing.T, waits []func() error) {
	t.Helper()
	for i, wait := range waits {
		if err := wait(); err != nil {
			t.Errorf("file %d: %v", i, err)
		}
	}
}

// samePublished checks that the volume holds files, md5-identical, and no
// temp file.
func samePublished(t *testing.T, srv *ftptest.Server, files map[string][]byte) {
	t.Helper()
	got := volumeFiles(t, srv)
	for p, data := range files {
		if got[p] != md5hex(data) {
			t.Errorf("%s: md5 %s, want %s", p, got[p], md5hex(data))
		}
	}
	noTemps(t, srv)
}

// A client floods one channel with publishes it does not wait for: the far
// end buffers the bytes of at most one publish per FTP session and one
// more (the rest wait in the SSH window), and publishes every file.
func TestPipelinedFloodIsBuffered(t *testing.T) {
	srv := startFTP(t)
	e := newPipeEnd(t, srv, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Dial(ctx, e.open, login(srv), Options{Channels: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	files := map[string][]byte{}
	var waits []func() error
	for i := range DefaultMaxInFlight {
		p := fmt.Sprintf("DB/id_1/level_0/node_0/data_%03d", i)
		files[p] = randomBytes(t, feedBuffer)
		waits = append(waits, c.StartPublish(ctx, p, bytes.NewReader(files[p]), int64(len(files[p])), 0))
	}
	waitAll(t, waits)
	if peak, most := e.host.peakUploads.Load(), int64(DefaultMaxConns+1); peak > most {
		t.Errorf("one channel held %d publishes' bytes at once, at most %d allowed", peak, most)
	}
	samePublished(t, srv, files)
}
