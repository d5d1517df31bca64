package sync

import (
	"context"
	"io"
)

// earlyOpen opens a small file's source while the destination prepares
// its upload: each side costs a command, a data connection and the
// server's answer, and a small file's copy is mostly such waits. A file
// from readAheadMin on is opened before its upload begins: its bytes, not
// these waits, take the time.
//
// Read and Close wait for the open. When the open fails, Read returns its
// error, so that Publish fails without renaming anything; failed tells the
// caller to remove the empty temporary file Publish may have begun.
type earlyOpen struct {
	done chan struct{}
	r    io.ReadCloser
	err  error
}

func openEarly(ctx context.Context, src Source, path string) *earlyOpen {
	o := &earlyOpen{done: make(chan struct{})}
	go func() {
		defer close(o.done)
		o.r, o.err = src.Open(ctx, path, 0)
	}()
	return o
}

func (o *earlyOpen) Read(p []byte) (int, error) {
	<-o.done
	if o.err != nil {
		return 0, o.err
	}
	return o.r.Read(p)
}

// Close waits for the open and closes what it opened.
func (o *earlyOpen) Close() error {
	<-o.done
	if o.r == nil {
		return nil
	}
	return o.r.Close()
}

// failed reports whether the open failed; it waits for the open.
func (o *earlyOpen) failed() bool {
	<-o.done
	return o.err != nil
}
