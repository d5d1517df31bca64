package farend

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"golang.org/x/crypto/ssh"
)

// Frame types. Requests go from the client to the far end; results,
// entries and read data come back.
const (
	tLogin   byte = 1  // client: loginMsg, id 0, the first frame of a channel
	tList    byte = 2  // client: listMsg
	tPublish byte = 3  // client: publishMsg, then tData (or tChunk) frames, then tEnd
	tData    byte = 4  // both: the bytes of a publish (client) or a read (far end)
	tEnd     byte = 5  // client: endMsg, the last frame of a publish
	tDelete  byte = 6  // client: pathMsg
	tRmdir   byte = 7  // client: pathMsg
	tRead    byte = 8  // client: readMsg
	tChunk   byte = 9  // client: a striped publish's bytes: 16-byte token, 8-byte sequence number, bytes
	tResult  byte = 10 // far end: resultMsg, the last frame of every request
	tEntries byte = 11 // far end: a batch of listing entries (entryMsg, back to back)
)

const (
	// headerLen is a frame's header: type (1 byte), request id (4),
	// payload length (4), big-endian.
	headerLen = 9
	// MaxData bounds the payload of tData and tChunk frames (the chunk's
	// token and sequence number included) and of tEntries.
	MaxData = 256 << 10
	// maxControl bounds the payload of every other frame: a login, a path,
	// a result message.
	maxControl = 8 << 10
	// chunkHeader is the token and sequence number in front of a tChunk's bytes.
	chunkHeader = 16 + 8
)

// frame is one decoded frame. payload aliases the reader's buffer until
// the next readFrame.
type frame struct {
	typ     byte
	id      uint32
	payload []byte
}

// errProtocol marks a frame that breaks the protocol: the channel is closed.
var errProtocol = errors.New("far end protocol violation")

func protocolf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errProtocol}, args...)...)
}

// maxPayload is the largest payload a frame of type typ may carry, or -1
// for an unknown type.
func maxPayload(typ byte) int {
	switch typ {
	case tData, tChunk, tEntries:
		return MaxData
	case tLogin, tList, tPublish, tEnd, tDelete, tRmdir, tRead, tResult:
		return maxControl
	}
	return -1
}

// frameReader decodes frames from a stream, reusing one buffer of at most
// headerLen + MaxData bytes.
type frameReader struct {
	r   io.Reader
	hdr [headerLen]byte
	buf []byte
}

func newFrameReader(r io.Reader) *frameReader { return &frameReader{r: r} }

// read returns the next frame. A clean end of stream between frames is
// io.EOF; one inside a frame is io.ErrUnexpectedEOF; an unknown type or an
// oversized length is errProtocol, before the payload is read.
func (fr *frameReader) read() (frame, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return frame{}, err
	}
	f, n, err := parseHeader(fr.hdr[:])
	if err != nil {
		return frame{}, err
	}
	if cap(fr.buf) < n {
		fr.buf = make([]byte, n, max(n, 4<<10))
	}
	f.payload = fr.buf[:n]
	if _, err := io.ReadFull(fr.r, f.payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return frame{}, err
	}
	return f, nil
}

// parseHeader checks a frame header and returns the frame (without its
// payload) and the payload's length.
func parseHeader(h []byte) (frame, int, error) {
	f := frame{typ: h[0], id: binary.BigEndian.Uint32(h[1:5])}
	n := binary.BigEndian.Uint32(h[5:9])
	limit := maxPayload(f.typ)
	if limit < 0 {
		return frame{}, 0, protocolf("unknown frame type %d", f.typ)
	}
	if int64(n) > int64(limit) {
		return frame{}, 0, protocolf("frame type %d of %d bytes: at most %d", f.typ, n, limit)
	}
	return f, int(n), nil
}

// appendFrame appends a frame with the given payload parts to dst.
func appendFrame(dst []byte, typ byte, id uint32, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, id)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return dst
}

// Messages, encoded with SSH's wire encoding (ssh.Marshal: strings and
// byte strings as a length and bytes, integers big-endian); decoding
// refuses trailing bytes.

type loginMsg struct {
	Version  uint32 // protocolVersion
	User     string
	Password string
	Root     string // the volume root, "/v0002"
}

// protocolVersion is the version a client sends in its login.
const protocolVersion = 1

type listMsg struct {
	Database string
	Node     uint32
}

type publishMsg struct {
	Path string
	Size uint64
	From uint64
	// MD5 is the whole file's md5 when the caller knows it (16 bytes), or
	// empty: the far end then checks it before the rename.
	MD5 []byte
	// Stripes > 1 makes the bytes come in tChunk frames carrying Token,
	// over up to Stripes channels of the same SSH connection.
	Stripes uint32
	Token   []byte
}

type endMsg struct {
	OK bool // false: the client's source failed; the publish is abandoned
	// CRC is the CRC-32C of the bytes the client sent for this publish
	// (from From to Size), so that the far end checks what it received and
	// reassembled (the SSH layer guards the bytes on the wire; this guards
	// our own framing and striping at hardware speed).
	CRC uint32
}

// crcTable is CRC-32C (Castagnoli), computed in hardware where there is
// support.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

type pathMsg struct {
	Path string
}

type readMsg struct {
	Path   string
	Offset uint64
	Length uint64
}

type resultMsg struct {
	Kind uint32 // kindOK or an error kind (errors.go)
	Code uint32 // the FTP reply code behind the error, 0 if none
	Msg  string
	// Extra is the login's capsMsg, otherwise empty.
	Extra []byte `ssh:"rest"`
}

// capsMsg answers a login: the archive volume's capabilities as the far end
// probed them, and the far end's limits.
type capsMsg struct {
	MLSD, Size, MDTM, MFMT, Rest, Writable bool
	Append                                 uint32
	Rename, RenameReplaces                 bool
	MaxInFlight                            uint32 // requests in flight per channel
	MaxStripes                             uint32 // 0 or 1: striping refused
}

// entryMsg is one listing entry; a tEntries payload is entries back to
// back.
type entryMsg struct {
	Path    string
	Size    uint64
	ModTime uint64 // Unix nanoseconds, UTC; 0: no usable time
	Exact   bool
	Rest    []byte `ssh:"rest"`
}

func decode(payload []byte, v any) error {
	if err := ssh.Unmarshal(payload, v); err != nil {
		return protocolf("malformed %T: %v", v, err)
	}
	return nil
}

// decodeEntries decodes a tEntries payload.
func decodeEntries(payload []byte) ([]entryMsg, error) {
	var out []entryMsg
	for len(payload) > 0 {
		var e entryMsg
		if err := ssh.Unmarshal(payload, &e); err != nil {
			return nil, protocolf("malformed entry: %v", err)
		}
		payload = e.Rest
		e.Rest = nil
		out = append(out, e)
	}
	return out, nil
}

// chunkToken is the token of a striped publish.
type chunkToken [16]byte

// parseChunk splits a tChunk payload.
func parseChunk(p []byte) (tok chunkToken, seq uint64, data []byte, err error) {
	if len(p) <= chunkHeader {
		return tok, 0, nil, protocolf("chunk of %d bytes", len(p))
	}
	copy(tok[:], p[:16])
	return tok, binary.BigEndian.Uint64(p[16:24]), p[chunkHeader:], nil
}

// ChannelType is the SSH channel type of a far-end channel: a backupsync
// server that offers it (the hello's "farend" feature) serves it with
// Peer.Serve; it carries no extra data.
const ChannelType = "farend@backupsync"
