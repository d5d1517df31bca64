package farend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"backupsync/internal/archive"
)

// Defaults of the far end; a zero HostConfig field means its default.
const (
	// DefaultIdleTimeout bounds how long a login or a request in progress
	// waits for its next bytes, and how long a result waits for the client
	// to take it.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultQuietTimeout bounds how long a channel with nothing in flight
	// stays open without a request.
	DefaultQuietTimeout = 10 * time.Minute
	// DefaultMaxInFlight caps the requests of one channel whose result is
	// not sent yet; the channel's next request waits for one to finish.
	DefaultMaxInFlight = 32
	// DefaultMaxConns caps the FTP connections of one channel's login: one
	// for the publish receiving its bytes and one for the one before it
	// finishing (size check, rename), so a client with PARALLEL channels
	// holds at most twice as many FTP sessions at the far end.
	DefaultMaxConns = 2
	// DefaultMaxChannels caps the far-end channels of one SSH connection.
	DefaultMaxChannels = 64
	// DefaultMaxStripes caps the channels one striped publish may use.
	DefaultMaxStripes = 4
	// DefaultMaxStriped caps the striped publishes of one SSH connection
	// that are receiving at once.
	DefaultMaxStriped = 8
	// closeGrace: a read or write blocked on a channel that was closed and
	// is still blocked after this means a frozen peer; its SSH connection
	// is ended.
	closeGrace = 5 * time.Second
	// maxRead bounds one read request.
	maxRead = 8 << 20
	// loginTimeout bounds the far end's login to its archive FTP, probe
	// included.
	loginTimeout = time.Minute
	// maxLoginField bounds the user, password and root of a login.
	maxLoginField = 1024
)

// HostConfig configures the far end of one node.
type HostConfig struct {
	// ArchiveFTP is this node's archive FTP, "IP:PORT": every login goes
	// there, never to a host a client names. Required.
	ArchiveFTP string
	// IdleTimeout, QuietTimeout, MaxInFlight, MaxConns, MaxChannels,
	// MaxStripes, MaxStriped: see the defaults.
	IdleTimeout, QuietTimeout time.Duration
	MaxInFlight, MaxConns     int
	MaxChannels               int
	MaxStripes, MaxStriped    int
	// OpenVolume opens the archive volume of a login; nil is archive.Open.
	OpenVolume func(ctx context.Context, ep archive.Endpoint, opt archive.Options) (*archive.Volume, error)
	// Logger receives logins (user and root, never the password), refusals
	// and protocol violations; nil discards.
	Logger *slog.Logger
}

// Host is the far end of one node: it serves far-end channels for every
// SSH connection of the node's tunnel server.
type Host struct {
	cfg  HostConfig
	host string
	port int
	log  *slog.Logger

	mu   sync.Mutex
	caps map[string]archive.Capabilities // by user and root: later logins skip the probe's writes

	peakUploads atomic.Int64 // most unstriped publishes one channel held at once (tests)
}

func (h *Host) noteUploads(n int) {
	for {
		p := h.peakUploads.Load()
		if int64(n) <= p || h.peakUploads.CompareAndSwap(p, int64(n)) {
			return
		}
	}
}

// NewHost validates cfg.
func NewHost(cfg HostConfig) (*Host, error) {
	host, ps, err := net.SplitHostPort(cfg.ArchiveFTP)
	if err != nil || host == "" {
		return nil, fmt.Errorf("far end: archive FTP %q is not IP:PORT", cfg.ArchiveFTP)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("far end: archive FTP %q: bad port", cfg.ArchiveFTP)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.IdleTimeout, DefaultIdleTimeout)
	def(&cfg.QuietTimeout, DefaultQuietTimeout)
	defInt(&cfg.MaxInFlight, DefaultMaxInFlight)
	defInt(&cfg.MaxConns, DefaultMaxConns)
	defInt(&cfg.MaxChannels, DefaultMaxChannels)
	defInt(&cfg.MaxStripes, DefaultMaxStripes)
	defInt(&cfg.MaxStriped, DefaultMaxStriped)
	if cfg.OpenVolume == nil {
		cfg.OpenVolume = archive.Open
	}
	h := &Host{cfg: cfg, host: host, port: port, log: cfg.Logger, caps: map[string]archive.Capabilities{}}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h, nil
}

// Peer is the far end of one SSH connection: it caps that connection's
// far-end channels and joins the chunks of its striped publishes.
type Peer struct {
	h         *Host
	log       *slog.Logger
	kill      func()
	announced atomic.Bool // the first login was logged at info level

	mu       sync.Mutex
	channels int
	asm      map[chunkToken]*assembly
	gone     map[chunkToken]bool // finished assemblies: their late chunks are dropped
	goneList []chunkToken
	changed  chan struct{} // closed and replaced when asm changes
}

// NewPeer returns the far end of one SSH connection. log should name the
// connection; kill ends the SSH connection (for a peer that does not answer
// the close of a stalled channel).
func (h *Host) NewPeer(log *slog.Logger, kill func()) *Peer {
	if log == nil {
		log = h.log
	}
	return &Peer{h: h, log: log, kill: kill, asm: map[chunkToken]*assembly{}, gone: map[chunkToken]bool{}, changed: make(chan struct{})}
}

// Admit counts one more far-end channel, or reports that the cap
// (HostConfig.MaxChannels) is reached. Every true is paired with a Leave.
func (p *Peer) Admit() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.channels >= p.h.cfg.MaxChannels {
		return false
	}
	p.channels++
	return true
}

// Leave uncounts a channel Admit counted.
func (p *Peer) Leave() {
	p.mu.Lock()
	p.channels--
	p.mu.Unlock()
}

// MaxChannels is the cap Admit applies.
func (p *Peer) MaxChannels() int { return p.h.cfg.MaxChannels }

// session is one far-end channel.
type session struct {
	p   *Peer
	ch  io.ReadWriteCloser
	ctx context.Context
	log *slog.Logger
	fr  *frameReader
	vol *archive.Volume

	wmu    sync.Mutex
	wbuf   []byte
	closed atomic.Bool

	slots chan struct{} // requests in flight
	// uploads is held by each unstriped publish from its header until its
	// upload ends: one per FTP session and one receiving ahead. A header
	// beyond them waits, and the client's bytes wait in the SSH window,
	// so that a channel's feeds hold at most that many × 256 KiB however
	// many publishes are in flight.
	uploads chan struct{}
	wg      sync.WaitGroup

	// The request whose bytes are being received (only one at a time).
	recvID   uint32
	recvFeed *feed
	recvAsm  *assembly
	recvDrop bool // refused or failed: its frames are dropped until tEnd
}

// Serve runs one far-end channel until the client closes it, a frame
// breaks the protocol, or ctx ends; then it closes ch, waits for the
// channel's requests and logs out of the FTP server. The first frame must
// be a login, within IdleTimeout; one login per channel.
func (p *Peer) Serve(ctx context.Context, ch io.ReadWriteCloser) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &session{p: p, ch: ch, ctx: ctx, log: p.log, slots: make(chan struct{}, p.h.cfg.MaxInFlight),
		uploads: make(chan struct{}, p.h.cfg.MaxConns+1)}
	s.fr = newFrameReader(ch)
	stop := context.AfterFunc(ctx, func() { s.close() })
	defer stop()
	defer s.close()
	if err := s.login(); err != nil {
		return
	}
	defer s.vol.Close()
	err := s.loop()
	if s.recvFeed != nil {
		s.recvFeed.fail(fmt.Errorf("%w: %v", ErrLost, err))
	}
	if s.recvAsm != nil {
		s.recvAsm.fail(fmt.Errorf("%w: %v", ErrLost, err))
	}
	switch {
	case err == nil || errors.Is(err, io.EOF):
	case errors.Is(err, errProtocol):
		s.log.Warn("far end: closed a channel that broke the protocol", "err", err)
	default:
		s.log.Debug("far end: channel ended", "err", err)
	}
	// Requests whose bytes all came finish (a publish is renamed or not)
	// and their results go nowhere once the channel is closed.
	s.wg.Wait()
}

func (s *session) close() {
	if s.closed.CompareAndSwap(false, true) {
		s.ch.Close()
	}
}

// readFrame reads the next frame within limit; a stall closes the channel,
// and a read still blocked closeGrace later ends the SSH connection.
func (s *session) readFrame(limit time.Duration) (frame, error) {
	var done atomic.Bool
	t := time.AfterFunc(limit, func() {
		s.log.Warn("far end: closed a stalled channel", "waited", limit)
		s.close()
		time.AfterFunc(closeGrace, func() {
			if !done.Load() && s.p.kill != nil {
				s.p.kill()
			}
		})
	})
	f, err := s.fr.read()
	done.Store(true)
	if !t.Stop() && err == nil {
		err = errors.New("stalled")
	}
	return f, err
}

// send writes one frame; a client that does not take it within IdleTimeout
// gets its channel closed.
func (s *session) send(typ byte, id uint32, parts ...[]byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return net.ErrClosed
	}
	s.wbuf = appendFrame(s.wbuf[:0], typ, id, parts...)
	var done atomic.Bool
	t := time.AfterFunc(s.p.h.cfg.IdleTimeout, func() {
		s.log.Warn("far end: the client does not take its results; closing the channel")
		s.close()
		time.AfterFunc(closeGrace, func() {
			if !done.Load() && s.p.kill != nil {
				s.p.kill()
			}
		})
	})
	_, err := s.ch.Write(s.wbuf)
	done.Store(true)
	t.Stop()
	if cap(s.wbuf) > 2*MaxData {
		s.wbuf = nil
	}
	return err
}

func (s *session) result(id uint32, r resultMsg) {
	_ = s.send(tResult, id, ssh.Marshal(r))
}

func (s *session) login() error {
	cfg := s.p.h.cfg
	f, err := s.readFrame(cfg.IdleTimeout)
	if err != nil {
		return err
	}
	var m loginMsg
	if f.typ != tLogin || f.id != 0 {
		err = protocolf("the first frame is not a login")
	} else if err = decode(f.payload, &m); err == nil {
		switch {
		case m.Version != protocolVersion:
			err = fmt.Errorf("%w: protocol version %d, want %d", ErrRefused, m.Version, protocolVersion)
		case m.User == "" || len(m.User) > maxLoginField || len(m.Password) > maxLoginField || len(m.Root) > maxLoginField:
			err = fmt.Errorf("%w: login fields missing or too long", ErrRefused)
		case hasControl(m.User) || hasControl(m.Password) || hasControl(m.Root):
			err = fmt.Errorf("%w: a control character in the login", ErrRefused)
		}
	}
	if err != nil {
		s.log.Warn("far end: refused a login", "err", err)
		s.result(0, resultOf(err))
		return err
	}
	ep := archive.Endpoint{Host: s.p.h.host, Port: s.p.h.port, User: m.User, Password: m.Password, Root: m.Root}
	key := m.User + "\x00" + m.Root
	s.p.h.mu.Lock()
	known, ok := s.p.h.caps[key]
	s.p.h.mu.Unlock()
	opt := archive.Options{MaxConns: cfg.MaxConns, IdleTimeout: cfg.QuietTimeout}
	if ok {
		opt.Known = &known
	}
	// Logging in and the probe are bounded by archive's own timeouts
	// (connect, each operation); this bounds the whole.
	lctx, cancel := context.WithTimeout(s.ctx, loginTimeout)
	vol, err := cfg.OpenVolume(lctx, ep, opt)
	if err != nil && ok && lctx.Err() == nil {
		s.p.h.mu.Lock()
		delete(s.p.h.caps, key)
		s.p.h.mu.Unlock()
		opt.Known = nil
		vol, err = cfg.OpenVolume(lctx, ep, opt)
	}
	cancel()
	if err != nil {
		s.log.Warn("far end: login to the archive FTP failed", "user", archive.DisplayName(m.User), "root", archive.DisplayName(m.Root), "err", err)
		s.result(0, resultOf(err))
		return err
	}
	s.vol = vol
	c := vol.Capabilities()
	s.p.h.mu.Lock()
	s.p.h.caps[key] = c
	s.p.h.mu.Unlock()
	if s.p.announced.CompareAndSwap(false, true) {
		s.log.Info("far end: publishing into the archive FTP for this SSH connection", "user", archive.DisplayName(m.User), "root", archive.DisplayName(m.Root))
	}
	s.log.Debug("far end: logged in to the archive FTP", "user", archive.DisplayName(m.User), "root", archive.DisplayName(m.Root))
	caps := capsMsg{MLSD: c.MLSD, Size: c.Size, MDTM: c.MDTM, MFMT: c.MFMT, Rest: c.Rest, Writable: c.Writable,
		Append: uint32(c.Append), Rename: c.Rename, RenameReplaces: c.RenameReplaces,
		MaxInFlight: uint32(cfg.MaxInFlight), MaxStripes: uint32(cfg.MaxStripes)}
	return s.send(tResult, 0, ssh.Marshal(resultMsg{Kind: kindOK, Extra: ssh.Marshal(caps)}))
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

// loop reads requests until the channel ends.
func (s *session) loop() error {
	cfg := s.p.h.cfg
	for {
		// A request's bytes must keep coming; between requests the client
		// may wait for results, or for work, a long time.
		limit := cfg.QuietTimeout
		if s.recvFeed != nil || s.recvDrop {
			limit = cfg.IdleTimeout
		}
		f, err := s.readFrame(limit)
		if err != nil {
			if err == io.EOF && (s.recvFeed != nil || s.recvDrop) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		receiving := s.recvFeed != nil || s.recvDrop
		switch f.typ {
		case tData:
			if !receiving || f.id != s.recvID || s.recvAsm != nil {
				return protocolf("data for request %d, which is not receiving", f.id)
			}
			if s.recvDrop {
				continue
			}
			if err := s.recvFeed.write(f.payload); err != nil {
				s.recvDrop = true
			}
		case tChunk:
			if receiving && s.recvAsm == nil && !s.recvDrop {
				return protocolf("a chunk inside request %d", s.recvID)
			}
			if err := s.chunk(f.payload); err != nil {
				return err
			}
		case tEnd:
			if !receiving || f.id != s.recvID {
				return protocolf("end of request %d, which is not receiving", f.id)
			}
			var m endMsg
			if err := decode(f.payload, &m); err != nil {
				return err
			}
			if s.recvFeed != nil {
				s.recvFeed.end(m.OK, m.CRC)
				if s.recvAsm != nil {
					s.recvFeed.watchEnd(s.p.h.cfg.IdleTimeout)
				}
			}
			s.recvFeed, s.recvAsm, s.recvDrop = nil, nil, false
		default:
			if receiving {
				return protocolf("request type %d inside request %d", f.typ, s.recvID)
			}
			if err := s.request(f); err != nil {
				return err
			}
		}
	}
}

// acquire takes an in-flight slot, waiting for one.
func (s *session) acquire() error {
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func (s *session) release() { <-s.slots }

// request starts one request (not a data frame).
func (s *session) request(f frame) error {
	id := f.id
	switch f.typ {
	case tLogin:
		return protocolf("a second login")
	case tPublish:
		var m publishMsg
		if err := decode(f.payload, &m); err != nil {
			return err
		}
		return s.startPublish(id, m)
	case tList:
		var m listMsg
		if err := decode(f.payload, &m); err != nil {
			return err
		}
		if err := s.acquire(); err != nil {
			return err
		}
		s.spawn(func() { s.list(id, m) })
	case tDelete, tRmdir:
		var m pathMsg
		if err := decode(f.payload, &m); err != nil {
			return err
		}
		if err := s.acquire(); err != nil {
			return err
		}
		s.spawn(func() { s.remove(id, f.typ == tRmdir, m.Path) })
	case tRead:
		var m readMsg
		if err := decode(f.payload, &m); err != nil {
			return err
		}
		if err := s.acquire(); err != nil {
			return err
		}
		s.spawn(func() { s.read(id, m) })
	default:
		return protocolf("frame type %d is no request", f.typ)
	}
	return nil
}

func (s *session) spawn(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.release()
		f()
	}()
}

func (s *session) refuse(id uint32, op, path string, err error) {
	s.p.h.log.Warn("far end: refused a request", "op", op, "path", archive.DisplayName(clip(path)), "err", err)
	s.result(id, resultOf(err))
}

func (s *session) startPublish(id uint32, m publishMsg) error {
	want := int64(m.Size) - int64(m.From)
	var err error
	switch {
	case m.Size > 1<<62 || m.From > m.Size:
		err = fmt.Errorf("%w: size %d, resume from %d", ErrRefused, m.Size, m.From)
	case len(m.MD5) != 0 && len(m.MD5) != 16:
		err = fmt.Errorf("%w: an md5 of %d bytes", ErrRefused, len(m.MD5))
	case m.Stripes > 1 && (int(m.Stripes) > s.p.h.cfg.MaxStripes || len(m.Token) != 16):
		err = fmt.Errorf("%w: %d stripes (at most %d) or a bad token", ErrRefused, m.Stripes, s.p.h.cfg.MaxStripes)
	case !s.vol.Capabilities().Rename:
		err = fmt.Errorf("%w: %w", ErrRefused, ErrNoRename)
	default:
		err = checkFile(m.Path)
	}
	if err := s.acquire(); err != nil {
		return err
	}
	s.recvID = id
	if err != nil {
		// Refused without touching the FTP server; the bytes that follow
		// are dropped, on this channel and on the stripes'.
		s.recvDrop = true
		if m.Stripes > 1 && len(m.Token) == 16 {
			var tok chunkToken
			copy(tok[:], m.Token)
			s.p.forget(tok)
		}
		s.spawn(func() { s.refuse(id, "publish", m.Path, err) })
		return nil
	}
	unstriped := m.Stripes <= 1
	if unstriped {
		// Striped publishes are bounded by MaxStriped and their reorder
		// buffers; their chunks come on other channels too.
		select {
		case s.uploads <- struct{}{}:
		case <-s.ctx.Done():
			s.release()
			return s.ctx.Err()
		}
		s.p.h.noteUploads(len(s.uploads))
	}
	fd := newFeed(want)
	fd.striped = m.Stripes > 1
	if m.From == 0 {
		fd.expectMD5(m.MD5)
	}
	var asm *assembly
	if m.Stripes > 1 {
		var tok chunkToken
		copy(tok[:], m.Token)
		if asm, err = s.p.register(tok, int(m.Stripes), fd); err != nil {
			s.recvDrop = true
			s.spawn(func() { s.refuse(id, "publish", m.Path, err) })
			return nil
		}
		s.recvAsm = asm
	}
	s.recvFeed = fd
	s.spawn(func() {
		err := s.vol.Publish(s.ctx, m.Path, fd, int64(m.Size), int64(m.From))
		fd.close()
		if unstriped {
			<-s.uploads
		}
		if asm != nil {
			asm.fail(errors.New("publish ended"))
			s.p.unregister(asm)
		}
		if err != nil && fd.lied() {
			// Known bad content: nothing of it stays for a resume.
			if derr := s.vol.Delete(context.WithoutCancel(s.ctx), archive.TempName(m.Path)); derr != nil && !errors.Is(derr, archive.ErrBadPath) {
				s.log.Debug("far end: remove the temp file of a failed publish", "path", archive.DisplayName(m.Path), "err", derr)
			}
		}
		if err != nil {
			s.log.Debug("far end: publish failed", "path", archive.DisplayName(m.Path), "err", err)
		}
		s.result(id, resultOf(err))
	})
	return nil
}

func (s *session) list(id uint32, m listMsg) {
	if err := checkDatabase(m.Database); err != nil {
		s.refuse(id, "list", m.Database, err)
		return
	}
	l, err := s.vol.ListNode(s.ctx, m.Database, int(m.Node))
	if err != nil {
		s.result(id, resultOf(err))
		return
	}
	var batch []byte
	for _, e := range l.Files {
		b := ssh.Marshal(entryOf(e))
		if len(batch)+len(b) > MaxData && len(batch) > 0 {
			if s.send(tEntries, id, batch) != nil {
				return
			}
			batch = batch[:0]
		}
		batch = append(batch, b...)
	}
	if len(batch) > 0 && s.send(tEntries, id, batch) != nil {
		return
	}
	s.result(id, resultMsg{Kind: kindOK})
}

// entryOf is a listing entry on the wire.
func entryOf(e archive.Entry) entryMsg {
	var mt uint64 // 0: no usable time
	if !e.ModTime.IsZero() {
		mt = uint64(e.ModTime.UnixNano())
	}
	return entryMsg{Path: e.Path, Size: uint64(e.Size), ModTime: mt, Exact: e.Exact}
}

func (s *session) remove(id uint32, dir bool, p string) {
	op, check, do := "delete", checkFile, s.vol.Delete
	if dir {
		op, check, do = "rmdir", checkDir, s.vol.RemoveDir
	}
	if err := check(p); err != nil {
		s.refuse(id, op, p, err)
		return
	}
	s.result(id, resultOf(do(s.ctx, p)))
}

func (s *session) read(id uint32, m readMsg) {
	if err := checkFile(m.Path); err != nil {
		s.refuse(id, "read", m.Path, err)
		return
	}
	if m.Length > maxRead || m.Offset > 1<<62 {
		s.refuse(id, "read", m.Path, fmt.Errorf("%w: read of %d bytes (at most %d)", ErrRefused, m.Length, maxRead))
		return
	}
	r, err := s.vol.Open(s.ctx, m.Path, int64(m.Offset))
	if err != nil {
		s.result(id, resultOf(err))
		return
	}
	defer r.Close()
	buf := make([]byte, min(int(m.Length), MaxData))
	left := int64(m.Length)
	for left > 0 {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), left)])
		if n > 0 {
			if s.send(tData, id, buf[:n]) != nil {
				return
			}
			left -= int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			s.result(id, resultOf(err))
			return
		}
	}
	s.result(id, resultMsg{Kind: kindOK})
}

// chunk hands a striped publish's chunk to its assembly, waiting up to
// IdleTimeout for the publish to be registered (its header may be read on
// its own channel after this chunk).
func (s *session) chunk(payload []byte) error {
	tok, seq, data, err := parseChunk(payload)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(s.p.h.cfg.IdleTimeout)
	for {
		a, gone, changed := s.p.lookup(tok)
		if gone {
			return nil // a finished publish's late chunk
		}
		if a != nil {
			return a.put(seq, data, s.p.h.cfg.IdleTimeout)
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return protocolf("a chunk of no publish")
		}
		select {
		case <-changed:
		case <-time.After(wait):
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
	}
}
