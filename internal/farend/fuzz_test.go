package farend

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"golang.org/x/crypto/ssh"
)

// FuzzFrames feeds arbitrary bytes to the frame decoder and to every
// message decoder: no panic, no frame over its type's limit, every error
// at the header is a protocol violation or an end of stream, and a frame
// re-encodes to the bytes it came from.
func FuzzFrames(f *testing.F) {
	f.Add(appendFrame(nil, tLogin, 0, ssh.Marshal(loginMsg{Version: 1, User: "u", Password: "p", Root: "/v"})))
	f.Add(appendFrame(nil, tPublish, 3, ssh.Marshal(publishMsg{Path: "DB/id_1/level_0/node_0/f", Size: 10, From: 2, MD5: make([]byte, 16), Stripes: 2, Token: make([]byte, 16)})))
	f.Add(appendFrame(nil, tEntries, 4, ssh.Marshal(entryMsg{Path: "DB/id_1/level_0/node_0/f", Size: 1})))
	f.Add(appendFrame(nil, tChunk, 0, make([]byte, 40)))
	f.Add(appendFrame(nil, tResult, 9, ssh.Marshal(resultMsg{Kind: kindOK, Extra: ssh.Marshal(capsMsg{Rename: true})})))
	f.Add([]byte{99, 0, 0, 0, 1, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := newFrameReader(bytes.NewReader(b))
		for {
			fm, err := fr.read()
			if err != nil {
				if !errors.Is(err, errProtocol) && err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if limit := maxPayload(fm.typ); limit < 0 || len(fm.payload) > limit {
				t.Fatalf("frame type %d of %d bytes passed", fm.typ, len(fm.payload))
			}
			if got := appendFrame(nil, fm.typ, fm.id, fm.payload); !bytes.Contains(b, got) {
				t.Fatal("a frame does not re-encode to its bytes")
			}
			for _, v := range []any{&loginMsg{}, &listMsg{}, &publishMsg{}, &endMsg{}, &pathMsg{}, &readMsg{}, &resultMsg{}, &capsMsg{}} {
				_ = decode(fm.payload, v)
			}
			if es, err := decodeEntries(fm.payload); err == nil {
				for _, e := range es {
					_ = checkFile(e.Path)
				}
			}
			if _, _, d, err := parseChunk(fm.payload); err == nil && len(d) == 0 {
				t.Fatal("an empty chunk parsed")
			}
			var p pathMsg
			if decode(fm.payload, &p) == nil {
				if checkFile(p.Path) == nil && (bytes.Contains([]byte(p.Path), []byte("..")) || len(p.Path) > 0 && p.Path[0] == '/') {
					t.Fatalf("unsafe path %q accepted", p.Path)
				}
			}
		}
	})
}

// FuzzPaths: no path the checks accept escapes the backup tree.
func FuzzPaths(f *testing.F) {
	for _, s := range []string{"DB/id_1/level_0/node_0/f", "../x", "DB/id_1/level_0/node_0/../f", "DB/id_1", "/a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		for _, check := range []func(string) error{checkFile, checkDir} {
			if check(p) != nil {
				continue
			}
			if p == "" || p[0] == '/' || bytes.Contains([]byte(p), []byte("..")) || bytes.Contains([]byte(p), []byte("//")) {
				t.Fatalf("%q accepted", p)
			}
			for _, c := range []byte(p) {
				if c < 0x20 || c == 0x7f || c == '\\' {
					t.Fatalf("%q accepted", p)
				}
			}
		}
	})
}
