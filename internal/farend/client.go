package farend

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	gosync "sync"
	"time"

	"golang.org/x/crypto/ssh"

	"backupsync/internal/archive"
	"backupsync/internal/sync"
)

// Defaults of the client; a zero Options field means its default.
const (
	// DefaultChannels is how many far-end channels a client opens at most.
	DefaultChannels = 4
	// DefaultStripes is how many channels one large publish is striped over.
	DefaultStripes = 4
	// DefaultStripeMin is the smallest publish (bytes still to send) that
	// is striped.
	DefaultStripeMin = 8 << 20
	// readChunk is what one read request asks for.
	readChunk = 4 << 20
	// maxEntries bounds a listing from the far end.
	maxEntries = 4 << 20
)

// OpenFunc opens one far-end channel on the SSH connection (see
// tunnel.Client.OpenFarEnd); ErrNotOffered when the server does not offer it.
type OpenFunc func(ctx context.Context) (io.ReadWriteCloser, error)

// Login is what the far end logs in to its own archive FTP with: the
// connection's REMOTE_URL user, password and volume root. It travels only
// inside the encrypted channel and is never logged.
type Login struct {
	User, Password, Root string
}

// Options tune a Client.
type Options struct {
	// Channels caps the far-end channels (each a login at the far end);
	// default DefaultChannels. Requests are pipelined on each: a channel
	// carries one request's bytes at a time, and many results may be
	// pending.
	Channels int
	// Stripes is how many channels a publish of at least StripeMin bytes
	// is spread over (at most what the far end allows); 1 disables
	// striping. Defaults DefaultStripes and DefaultStripeMin.
	Stripes   int
	StripeMin int64
	// Logger receives channel failures; nil discards.
	Logger *slog.Logger
}

// Client is the destination of a cycle on the far-end path: it implements
// sync.DestinationSide (ListNode, Open, Publish, Delete, RemoveDir) over
// far-end channels of one SSH connection. It is safe for concurrent use.
type Client struct {
	open  OpenFunc
	login Login
	opt   Options
	log   *slog.Logger
	caps  capsMsg

	slots chan struct{} // held while a request's frames are being sent
	mu    gosync.Mutex
	idle  []*channel
	all   map[*channel]struct{}
	shut  bool
	wg    gosync.WaitGroup
}

var _ sync.DestinationSide = (*Client)(nil)

// Dial opens the first channel and logs in; a refused login is a
// *RemoteError matching archive.ErrLoginRefused, a server without the
// far end ErrNotOffered.
func Dial(ctx context.Context, open OpenFunc, login Login, opt Options) (*Client, error) {
	if opt.Channels <= 0 {
		opt.Channels = DefaultChannels
	}
	if opt.Stripes <= 0 {
		opt.Stripes = DefaultStripes
	}
	if opt.StripeMin <= 0 {
		opt.StripeMin = DefaultStripeMin
	}
	c := &Client{open: open, login: login, opt: opt, log: opt.Logger, slots: make(chan struct{}, opt.Channels), all: map[*channel]struct{}{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.slots <- struct{}{}
	ch, caps, err := c.dial(ctx)
	if err != nil {
		<-c.slots
		return nil, err
	}
	// Later logins' answers are not kept: every channel logs in to the
	// same volume.
	c.caps = caps
	c.release(ch)
	return c, nil
}

// Capabilities is what the far end's probe of its archive FTP found.
func (c *Client) Capabilities() archive.Capabilities {
	return archive.Capabilities{MLSD: c.caps.MLSD, Size: c.caps.Size, MDTM: c.caps.MDTM, MFMT: c.caps.MFMT,
		Rest: c.caps.Rest, Writable: c.caps.Writable, Append: archive.AppendMethod(c.caps.Append),
		Rename: c.caps.Rename, RenameReplaces: c.caps.RenameReplaces}
}

// String names the far end for logs (no password).
func (c *Client) String() string { return "far end " + c.login.User + " " + c.login.Root }

// Close closes every channel; requests in flight fail with ErrLost.
func (c *Client) Close() error {
	c.mu.Lock()
	c.shut = true
	var chs []*channel
	for ch := range c.all {
		chs = append(chs, ch)
	}
	c.mu.Unlock()
	for _, ch := range chs {
		ch.kill(errors.New("client closed"))
	}
	c.wg.Wait()
	return nil
}

// channel is one far-end channel of the client.
type channel struct {
	c  *Client
	rw io.ReadWriteCloser

	wbuf []byte // frame buffer of the sender holding the channel

	mu     gosync.Mutex
	nextID uint32
	calls  map[uint32]*call
	err    error // set when the channel is dead
}

// call is one request waiting for its result.
type call struct {
	op, path string
	done     chan struct{}
	res      resultMsg
	err      error // the channel ended first
	entries  []sync.File
	data     []byte
	limit    int // read: most bytes expected
}

// acquire takes the right to send on a channel: an idle one, or a new one
// while fewer than Options.Channels are open.
func (c *Client) acquire(ctx context.Context) (*channel, error) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	for len(c.idle) > 0 {
		ch := c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		if ch.alive() {
			c.mu.Unlock()
			return ch, nil
		}
	}
	shut := c.shut
	c.mu.Unlock()
	if shut {
		<-c.slots
		return nil, errors.New("far end: client closed")
	}
	ch, _, err := c.dial(ctx)
	if err != nil {
		<-c.slots
		return nil, err
	}
	return ch, nil
}

// tryAcquire takes up to n more channels without waiting for a slot:
// idle ones first, then new ones, opened at once (each costs a round trip
// and a login at the far end). It returns what it could get.
func (c *Client) tryAcquire(ctx context.Context, n int) []*channel {
	var got []*channel
	dials := 0
	for len(got)+dials < n {
		select {
		case c.slots <- struct{}{}:
		default:
			n = 0 // every slot taken
			continue
		}
		c.mu.Lock()
		var ch *channel
		for ch == nil && len(c.idle) > 0 {
			ch = c.idle[len(c.idle)-1]
			c.idle = c.idle[:len(c.idle)-1]
			if !ch.alive() {
				ch = nil
			}
		}
		c.mu.Unlock()
		if ch != nil {
			got = append(got, ch)
		} else {
			dials++
		}
	}
	results := make(chan *channel, dials)
	for range dials {
		go func() {
			ch, _, err := c.dial(ctx)
			if err != nil {
				c.log.Debug("far end: no extra channel for a stripe", "err", err)
				<-c.slots
			}
			results <- ch
		}()
	}
	for range dials {
		if ch := <-results; ch != nil {
			got = append(got, ch)
		}
	}
	return got
}

func (c *Client) release(ch *channel) {
	c.mu.Lock()
	if ch.alive() && !c.shut {
		c.idle = append(c.idle, ch)
	}
	c.mu.Unlock()
	<-c.slots
}

// dial opens and logs in a new channel; caps is the login's answer.
func (c *Client) dial(ctx context.Context) (*channel, capsMsg, error) {
	rw, err := c.open(ctx)
	if err != nil {
		return nil, capsMsg{}, err
	}
	ch := &channel{c: c, rw: rw, calls: map[uint32]*call{}, nextID: 1}
	stop := context.AfterFunc(ctx, func() { rw.Close() })
	caps, err := ch.doLogin()
	if !stop() {
		err = fmt.Errorf("far end: login: %w", ctx.Err())
	}
	if err != nil {
		rw.Close()
		return nil, capsMsg{}, err
	}
	c.mu.Lock()
	if c.shut {
		c.mu.Unlock()
		rw.Close()
		return nil, capsMsg{}, errors.New("far end: client closed")
	}
	c.all[ch] = struct{}{}
	c.wg.Add(1)
	c.mu.Unlock()
	go ch.readLoop()
	return ch, caps, nil
}

func (ch *channel) doLogin() (capsMsg, error) {
	l := ch.c.login
	if _, err := ch.rw.Write(appendFrame(nil, tLogin, 0, ssh.Marshal(loginMsg{Version: protocolVersion, User: l.User, Password: l.Password, Root: l.Root}))); err != nil {
		return capsMsg{}, lostError("login", "", err)
	}
	f, err := newFrameReader(ch.rw).read()
	if err != nil {
		return capsMsg{}, lostError("login", "", err)
	}
	var r resultMsg
	if f.typ != tResult || f.id != 0 {
		return capsMsg{}, protocolf("the answer to the login is frame type %d", f.typ)
	}
	if err := decode(f.payload, &r); err != nil {
		return capsMsg{}, err
	}
	if err := remoteError("login", "", r); err != nil {
		return capsMsg{}, err
	}
	var caps capsMsg
	err = decode(r.Extra, &caps)
	return caps, err
}

func (ch *channel) alive() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.err == nil
}

// kill ends the channel: every pending call fails with cause.
func (ch *channel) kill(cause error) {
	ch.mu.Lock()
	if ch.err == nil {
		ch.err = cause
	}
	calls := ch.calls
	ch.calls = map[uint32]*call{}
	ch.mu.Unlock()
	ch.rw.Close()
	for _, k := range calls {
		k.err = lostError(k.op, k.path, cause)
		close(k.done)
	}
}

// readLoop matches result frames to the calls waiting for them.
func (ch *channel) readLoop() {
	defer ch.c.wg.Done()
	defer func() {
		ch.c.mu.Lock()
		delete(ch.c.all, ch)
		ch.c.mu.Unlock()
	}()
	fr := newFrameReader(ch.rw)
	for {
		f, err := fr.read()
		if err == nil {
			err = ch.deliver(f)
		}
		if err != nil {
			if errors.Is(err, errProtocol) {
				ch.c.log.Warn("far end: closing a channel whose far end broke the protocol", "err", err)
			}
			ch.kill(err)
			return
		}
	}
}

func (ch *channel) deliver(f frame) error {
	ch.mu.Lock()
	k := ch.calls[f.id]
	if f.typ == tResult {
		delete(ch.calls, f.id)
	}
	ch.mu.Unlock()
	if k == nil {
		return protocolf("frame type %d for request %d, which waits for nothing", f.typ, f.id)
	}
	switch f.typ {
	case tResult:
		if err := decode(f.payload, &k.res); err != nil {
			k.err = err
		}
		close(k.done)
	case tEntries:
		es, err := decodeEntries(f.payload)
		if err != nil {
			return err
		}
		if len(k.entries)+len(es) > maxEntries {
			return protocolf("a listing of more than %d files", maxEntries)
		}
		for _, e := range es {
			if _, err := split(e.Path); err != nil || e.Size > 1<<62 {
				return protocolf("listing entry %q", clip(e.Path))
			}
			k.entries = append(k.entries, fileOf(e))
		}
	case tData:
		if k.op != "read" || len(k.data)+len(f.payload) > k.limit {
			return protocolf("more data than asked for request %d", f.id)
		}
		k.data = append(k.data, f.payload...)
	default:
		return protocolf("frame type %d from the far end", f.typ)
	}
	return nil
}

// fileOf is a listing entry from the wire in the planner's terms.
func fileOf(e entryMsg) sync.File {
	var mt time.Time // zero: the far end's server gave no usable time
	if e.ModTime != 0 {
		mt = time.Unix(0, int64(e.ModTime)).UTC()
	}
	return sync.File{Path: e.Path, Size: int64(e.Size), ModTime: mt, Exact: e.Exact}
}

// start registers a call and returns its id.
func (ch *channel) start(op, path string) (*call, uint32, error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.err != nil {
		return nil, 0, lostError(op, path, ch.err)
	}
	id := ch.nextID
	ch.nextID++
	k := &call{op: op, path: path, done: make(chan struct{})}
	ch.calls[id] = k
	return k, id, nil
}

// write sends one frame; a failed write kills the channel.
func (ch *channel) write(typ byte, id uint32, parts ...[]byte) error {
	ch.wbuf = appendFrame(ch.wbuf[:0], typ, id, parts...)
	if _, err := ch.rw.Write(ch.wbuf); err != nil {
		ch.kill(err)
		return err
	}
	return nil
}

// wait waits for k's result.
func (k *call) wait(ctx context.Context) error {
	select {
	case <-k.done:
	case <-ctx.Done():
		return fmt.Errorf("far end: %s %s: %w", k.op, archive.DisplayName(k.path), ctx.Err())
	}
	if k.err != nil {
		return k.err
	}
	return remoteError(k.op, k.path, k.res)
}

// simple sends a request of one frame and waits for its result.
func (c *Client) simple(ctx context.Context, op, path string, typ byte, payload []byte, limit int) (*call, error) {
	ch, err := c.acquire(ctx)
	if err != nil {
		return nil, err
	}
	k, id, err := ch.start(op, path)
	if err == nil {
		k.limit = limit
		if werr := ch.write(typ, id, payload); werr != nil {
			err = lostError(op, path, werr)
		}
	}
	c.release(ch)
	if err != nil {
		return nil, err
	}
	return k, k.wait(ctx)
}

// ListNode lists <database>/id_*/level_*/node_<node>/ at the far end, in one
// request.
func (c *Client) ListNode(ctx context.Context, database string, node int) (sync.Listing, error) {
	if node < 0 {
		return sync.Listing{}, fmt.Errorf("far end: list %s node %d: %w", database, node, archive.ErrBadPath)
	}
	k, err := c.simple(ctx, "list", database, tList, ssh.Marshal(listMsg{Database: database, Node: uint32(node)}), 0)
	if err != nil {
		return sync.Listing{}, err
	}
	return sync.Listing{Files: k.entries}, nil
}

// Delete removes one file at the far end.
func (c *Client) Delete(ctx context.Context, path string) error {
	_, err := c.simple(ctx, "delete", path, tDelete, ssh.Marshal(pathMsg{Path: path}), 0)
	return err
}

// RemoveDir removes an empty directory at the far end; a directory that is
// not empty fails with archive.ErrNotEmpty.
func (c *Client) RemoveDir(ctx context.Context, path string) error {
	_, err := c.simple(ctx, "rmdir", path, tRmdir, ssh.Marshal(pathMsg{Path: path}), 0)
	return err
}

// Open reads path from offset at the far end, in requests of 4 MiB.
func (c *Client) Open(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("far end: read %s: %w: offset %d", archive.DisplayName(path), archive.ErrBadPath, offset)
	}
	r := &remoteReader{c: c, ctx: ctx, path: path, off: offset}
	if err := r.fill(); err != nil {
		return nil, err
	}
	return r, nil
}

type remoteReader struct {
	c    *Client
	ctx  context.Context
	path string
	off  int64
	buf  []byte
	eof  bool
}

func (r *remoteReader) fill() error {
	k, err := r.c.simple(r.ctx, "read", r.path, tRead, ssh.Marshal(readMsg{Path: r.path, Offset: uint64(r.off), Length: readChunk}), readChunk)
	if err != nil {
		return err
	}
	r.buf = k.data
	r.off += int64(len(k.data))
	r.eof = len(k.data) < readChunk
	return nil
}

func (r *remoteReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *remoteReader) Close() error { r.buf, r.eof = nil, true; return nil }

// Publish writes size bytes from src (resumeFrom of them already in the
// temp file) to path at the far end, which publishes it as
// archive.Volume.Publish does: temp name, size check, rename; nothing
// partial under path. The bytes go without waiting for earlier requests'
// results; a publish of at least StripeMin bytes is striped over several
// channels. src is read to its end; when it fails, the far end abandons
// the publish (its temp file stays for a resume) and src's error is
// returned.
func (c *Client) Publish(ctx context.Context, path string, src io.Reader, size, resumeFrom int64) error {
	return c.StartPublish(ctx, path, src, size, resumeFrom)()
}

// StartPublish is Publish in two halves (sync.Pipeliner): it returns once
// src is read to its end and its bytes are sent, and wait returns the far
// end's result. Meanwhile the caller may send the next file on the same
// channel: a small file costs a worker no round trip. A striped publish
// is over when StartPublish returns.
func (c *Client) StartPublish(ctx context.Context, path string, src io.Reader, size, resumeFrom int64) (wait func() error) {
	if size < 0 || resumeFrom < 0 || resumeFrom > size {
		return settled(fmt.Errorf("far end: publish %s: %w: size %d, resume from %d", archive.DisplayName(path), archive.ErrBadPath, size, resumeFrom))
	}
	stripes := min(c.opt.Stripes, int(c.caps.MaxStripes))
	if stripes > 1 && size-resumeFrom >= c.opt.StripeMin {
		return settled(c.publishStriped(ctx, path, src, size, resumeFrom, stripes))
	}
	ch, err := c.acquire(ctx)
	if err != nil {
		return settled(err)
	}
	return c.sendOn(ctx, ch, path, src, size, resumeFrom)
}

var _ sync.Pipeliner = (*Client)(nil)

// settled is the wait of a publish whose outcome is already known: err.
func settled(err error) (wait func() error) { return func() error { return err } }

// publishOn sends a publish on ch, which the caller acquired, releases ch
// once the bytes are sent and waits for the result.
func (c *Client) publishOn(ctx context.Context, ch *channel, path string, src io.Reader, size, resumeFrom int64) error {
	return c.sendOn(ctx, ch, path, src, size, resumeFrom)()
}

// sendOn sends a publish on ch, which the caller acquired, and releases ch
// once the bytes are sent; wait waits for the result.
func (c *Client) sendOn(ctx context.Context, ch *channel, path string, src io.Reader, size, resumeFrom int64) (wait func() error) {
	k, id, err := ch.start("publish", path)
	if err != nil {
		c.release(ch)
		return settled(err)
	}
	stop := context.AfterFunc(ctx, func() { ch.kill(ctx.Err()) })
	srcErr, werr := ch.sendPublish(id, publishMsg{Path: path, Size: uint64(size), From: uint64(resumeFrom)}, src)
	stop()
	c.release(ch)
	if werr != nil {
		return settled(lostError("publish", path, werr))
	}
	return func() error {
		err := k.wait(ctx)
		if srcErr != nil {
			return srcErr
		}
		return err
	}
}

// sendPublish sends a publish's header, its bytes as data frames, and its
// end. srcErr is src's failure (the far end was told to abandon), werr the
// channel's.
func (ch *channel) sendPublish(id uint32, m publishMsg, src io.Reader) (srcErr, werr error) {
	if werr = ch.write(tPublish, id, ssh.Marshal(m)); werr != nil {
		return nil, werr
	}
	buf := getBuffer()
	defer dataBuffers.Put(buf)
	var crc uint32
	for {
		n, err := src.Read((*buf)[headerLen:])
		if n > 0 {
			frame := appendFrameHeader((*buf)[:0], tData, id, n)
			crc = crc32.Update(crc, crcTable, (*buf)[headerLen:headerLen+n])
			if _, werr = ch.rw.Write(frame[:headerLen+n]); werr != nil {
				ch.kill(werr)
				return nil, werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			srcErr = err
			break
		}
	}
	werr = ch.write(tEnd, id, ssh.Marshal(endMsg{OK: srcErr == nil, CRC: crc}))
	return srcErr, werr
}

// dataBuffers hold one data frame each: header and MaxData bytes.
var dataBuffers = gosync.Pool{New: func() any { b := make([]byte, headerLen+MaxData); return &b }}

// getBuffer returns a data frame buffer at its full length.
func getBuffer() *[]byte {
	b := dataBuffers.Get().(*[]byte)
	*b = (*b)[:cap(*b)]
	return b
}

// appendFrameHeader writes a frame header for n payload bytes that follow
// it in the same buffer.
func appendFrameHeader(dst []byte, typ byte, id uint32, n int) []byte {
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, id)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	return dst[:cap(dst)]
}

// publishStriped sends one publish's bytes as chunks over the channels it
// can get at once (the first waited for, the others only if free), chunk
// i on channel i mod n, so that each channel's SSH window carries its share.
func (c *Client) publishStriped(ctx context.Context, path string, src io.Reader, size, resumeFrom int64, stripes int) error {
	owner, err := c.acquire(ctx)
	if err != nil {
		return err
	}
	chs := append([]*channel{owner}, c.tryAcquire(ctx, stripes-1)...)
	if len(chs) == 1 {
		return c.publishOn(ctx, owner, path, src, size, resumeFrom)
	}
	defer func() {
		for _, ch := range chs {
			c.release(ch)
		}
	}()
	k, id, err := owner.start("publish", path)
	if err != nil {
		return err
	}
	var tok chunkToken
	_, _ = rand.Read(tok[:])
	m := publishMsg{Path: path, Size: uint64(size), From: uint64(resumeFrom), Stripes: uint32(len(chs)), Token: tok[:]}

	stop := context.AfterFunc(ctx, func() {
		for _, ch := range chs {
			ch.kill(ctx.Err())
		}
	})
	defer stop()
	if err := owner.write(tPublish, id, ssh.Marshal(m)); err != nil {
		return lostError("publish", path, err)
	}
	// One sender per channel, each with a queue of two chunks.
	type sender struct {
		q   chan *[]byte
		err error
	}
	senders := make([]*sender, len(chs))
	var wg gosync.WaitGroup
	for i, ch := range chs {
		s := &sender{q: make(chan *[]byte, 2)}
		senders[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range s.q {
				if s.err == nil {
					if _, werr := ch.rw.Write(*b); werr != nil {
						s.err = werr
						ch.kill(werr)
					}
				}
				dataBuffers.Put(b)
			}
		}()
	}
	var crc uint32
	var srcErr error
	for seq := uint64(0); ; seq++ {
		b := getBuffer()
		n, rerr := io.ReadFull(src, (*b)[headerLen+chunkHeader:])
		if n > 0 {
			crc = crc32.Update(crc, crcTable, (*b)[headerLen+chunkHeader:headerLen+chunkHeader+n])
			hdr := appendFrameHeader((*b)[:0], tChunk, 0, chunkHeader+n)
			copy(hdr[headerLen:], tok[:])
			binary.BigEndian.PutUint64(hdr[headerLen+16:], seq)
			*b = hdr[:headerLen+chunkHeader+n]
			s := senders[seq%uint64(len(chs))]
			select {
			case s.q <- b:
			case <-ctx.Done():
				dataBuffers.Put(b)
				rerr = ctx.Err()
			}
		} else {
			dataBuffers.Put(b)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			srcErr = rerr
			break
		}
	}
	for _, s := range senders {
		close(s.q)
	}
	wg.Wait()
	var sendErr error
	for _, s := range senders {
		if s.err != nil {
			sendErr = s.err
		}
	}
	ok := srcErr == nil && sendErr == nil
	if werr := owner.write(tEnd, id, ssh.Marshal(endMsg{OK: ok, CRC: crc})); werr != nil {
		return lostError("publish", path, werr)
	}
	err = k.wait(ctx)
	switch {
	case srcErr != nil:
		return srcErr
	case sendErr != nil:
		return lostError("publish", path, sendErr)
	}
	return err
}
