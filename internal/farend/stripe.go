package farend

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"
)

// stripeWindow is the reorder room per stripe: a stripe's channel may run
// ahead of the slowest by about its SSH window (2 MiB). An assembly holds
// at most stripes × stripeWindow bytes out of order.
const stripeWindow = 2 << 20

// maxGone bounds the finished tokens a peer remembers.
const maxGone = 256

// assembly joins the chunks of one striped publish, which come over
// several channels of one SSH connection, in sequence order into the
// publish's feed. A chunk in order is written at once (waiting while the
// feed is full); a later one is held, up to limit bytes, and a chunk that
// finds no room waits for the chunks before it. The chunk the feed waits
// for is never held back: its channel delivers its chunks in order, so
// its reader is not waiting behind a later chunk of this publish.
type assembly struct {
	tok   chunkToken
	fd    *feed
	limit int

	mu       sync.Mutex
	next     uint64
	pending  map[uint64][]byte
	buffered int
	err      error
	progress chan struct{} // closed and replaced when next advances or err is set
}

// register starts the assembly of a striped publish.
func (p *Peer) register(tok chunkToken, stripes int, fd *feed) (*assembly, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.asm[tok] != nil || p.gone[tok]:
		return nil, fmt.Errorf("%w: a striped publish's token used twice", ErrRefused)
	case len(p.asm) >= p.h.cfg.MaxStriped:
		return nil, fmt.Errorf("%w: more than %d striped publishes at once", ErrRefused, p.h.cfg.MaxStriped)
	}
	a := &assembly{tok: tok, fd: fd, limit: stripes * stripeWindow, pending: map[uint64][]byte{}, progress: make(chan struct{})}
	p.asm[tok] = a
	p.notifyLocked()
	return a, nil
}

// unregister ends an assembly; its late chunks are dropped.
func (p *Peer) unregister(a *assembly) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.asm[a.tok] == a {
		delete(p.asm, a.tok)
	}
	p.forgetLocked(a.tok)
}

// forget remembers tok as finished (a refused striped publish).
func (p *Peer) forget(tok chunkToken) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forgetLocked(tok)
}

func (p *Peer) forgetLocked(tok chunkToken) {
	if !p.gone[tok] {
		p.gone[tok] = true
		p.goneList = append(p.goneList, tok)
		if len(p.goneList) > maxGone {
			delete(p.gone, p.goneList[0])
			p.goneList = p.goneList[1:]
		}
	}
	p.notifyLocked()
}

func (p *Peer) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// lookup finds the assembly of tok; gone reports a finished one; changed
// is closed at the next change.
func (p *Peer) lookup(tok chunkToken) (a *assembly, gone bool, changed <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.asm[tok], p.gone[tok], p.changed
}

// fail ends the assembly: writers waiting on it or on its feed return.
func (a *assembly) fail(err error) {
	a.fd.fail(err)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failLocked(err)
}

func (a *assembly) failLocked(err error) {
	if a.err == nil {
		a.err = err
		a.pending, a.buffered = nil, 0
		close(a.progress)
		a.progress = make(chan struct{})
	}
}

// put delivers chunk seq. A chunk of a failed assembly is dropped (the
// publish's result says why); a duplicate or an old sequence number fails
// the publish as a lie; waiting longer than idle for room fails it as
// stalled.
func (a *assembly) put(seq uint64, data []byte, idle time.Duration) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		if a.err != nil {
			return nil
		}
		if _, dup := a.pending[seq]; dup || seq < a.next {
			err := fmt.Errorf("%w: chunk %d sent twice", errLie, seq)
			a.fd.fail(err)
			a.failLocked(err)
			return nil
		}
		if seq == a.next {
			for {
				if err := a.fd.write(data); err != nil {
					a.failLocked(err)
					return nil
				}
				a.next++
				close(a.progress)
				a.progress = make(chan struct{})
				d, ok := a.pending[a.next]
				if !ok {
					return nil
				}
				delete(a.pending, a.next)
				a.buffered -= len(d)
				data = d
			}
		}
		if a.buffered == 0 || a.buffered+len(data) <= a.limit {
			a.pending[seq] = bytes.Clone(data)
			a.buffered += len(data)
			return nil
		}
		wait := a.progress
		a.mu.Unlock()
		t := time.NewTimer(idle)
		select {
		case <-wait:
			t.Stop()
			a.mu.Lock()
		case <-t.C:
			a.mu.Lock()
			err := errors.New("striped publish stalled: the chunk it waits for did not come")
			a.fd.fail(err)
			a.failLocked(err)
		}
	}
}
