package farend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/textproto"

	"backupsync/internal/archive"
)

// Errors of the far-end path callers can test with errors.Is.
var (
	// ErrRefused: the far end refused a request without touching its FTP
	// server (a path outside the backup tree, a second login, a size that
	// cannot be).
	ErrRefused = errors.New("far end refused the request")
	// ErrNotOffered: the SSH server does not offer the far-end channel
	// (OpenSSH, an older backupsyncd): use FTP through the tunnel.
	ErrNotOffered = errors.New("the SSH server does not offer the far-end path")
	// ErrLost: the channel ended while the request was in flight; the
	// request may or may not have taken effect (a publish never left a
	// partial file under its final name). Transient.
	ErrLost = errors.New("far-end channel lost")
	// ErrNoRename: the far end's archive FTP cannot rename, so a publish
	// would need the client's journal: use FTP through the tunnel.
	ErrNoRename = errors.New("far end's archive FTP cannot rename: publishing needs the client's journal")
	// ErrDigest: the bytes of a publish from offset 0 have another md5 than
	// the one its request announced; nothing was renamed.
	ErrDigest = errors.New("md5 differs from the one announced")
)

// Error kinds in a result frame.
const (
	kindOK uint32 = iota
	kindOther
	kindTransient
	kindRefused
	kindBadPath
	kindVolumeFull
	kindSizeMismatch
	kindResumeMismatch
	kindResumeUnsupported
	kindNotEmpty
	kindLoginRefused
	kindRootUnavailable
	kindUnsafeName
	kindNoRename
	kindBusy
)

var kindErrors = map[uint32]error{
	kindRefused:           ErrRefused,
	kindBadPath:           archive.ErrBadPath,
	kindVolumeFull:        archive.ErrVolumeFull,
	kindSizeMismatch:      archive.ErrSizeMismatch,
	kindResumeMismatch:    archive.ErrResumeMismatch,
	kindResumeUnsupported: archive.ErrResumeUnsupported,
	kindNotEmpty:          archive.ErrNotEmpty,
	kindLoginRefused:      archive.ErrLoginRefused,
	kindRootUnavailable:   archive.ErrRootUnavailable,
	kindUnsafeName:        archive.ErrUnsafeName,
	kindNoRename:          ErrNoRename,
}

// resultOf turns the far end's error into a result frame's fields.
func resultOf(err error) resultMsg {
	if err == nil {
		return resultMsg{Kind: kindOK}
	}
	r := resultMsg{Kind: kindOther, Msg: err.Error()}
	if errors.Is(err, errLie) && !errors.Is(err, ErrDigest) {
		// The bytes were not what was announced: as a size mismatch on
		// the FTP path, worth a retry.
		r.Kind = kindSizeMismatch
		return r
	}
	if len(r.Msg) > 2048 {
		r.Msg = r.Msg[:2048] + "…"
	}
	var te *textproto.Error
	if errors.As(err, &te) && te.Code > 0 && te.Code < 1000 {
		r.Code = uint32(te.Code)
	}
	for _, k := range []uint32{kindRefused, kindBadPath, kindVolumeFull, kindSizeMismatch, kindResumeMismatch,
		kindResumeUnsupported, kindNotEmpty, kindLoginRefused, kindRootUnavailable, kindUnsafeName, kindNoRename} {
		if errors.Is(err, kindErrors[k]) {
			r.Kind = k
			return r
		}
	}
	if archive.IsTransient(err) {
		r.Kind = kindTransient
	}
	return r
}

// RemoteError is a request that failed at the far end. It matches (errors.Is)
// the archive error it stands for (archive.ErrVolumeFull, ErrSizeMismatch,
// …) and archive.IsTransient classifies it as the far end did.
type RemoteError struct {
	Op   string // "login", "list", "publish", "delete", "rmdir", "read"
	Path string
	Kind uint32
	Code int    // the far end's FTP reply code, 0 if none
	Msg  string // the far end's error text (passwords never in it)
}

func (e *RemoteError) Error() string {
	s := "far end: " + e.Op
	if e.Path != "" {
		s += " " + archive.DisplayName(e.Path)
	}
	return s + ": " + archive.DisplayName(e.Msg)
}

// Unwrap gives the archive error of the kind, the FTP reply, and for a
// transient kind io.ErrUnexpectedEOF, which archive.IsTransient counts as
// worth a retry.
func (e *RemoteError) Unwrap() []error {
	var out []error
	if k, ok := kindErrors[e.Kind]; ok {
		out = append(out, k)
	}
	if e.Code != 0 {
		out = append(out, &textproto.Error{Code: e.Code, Msg: e.Msg})
	}
	if e.Kind == kindTransient || e.Kind == kindBusy {
		out = append(out, io.ErrUnexpectedEOF)
	}
	return out
}

func remoteError(op, path string, r resultMsg) error {
	if r.Kind == kindOK {
		return nil
	}
	return &RemoteError{Op: op, Path: path, Kind: r.Kind, Code: int(r.Code), Msg: r.Msg}
}

// lostError is a request cut by the end of its channel: transient.
func lostError(op, path string, cause error) error {
	if cause == nil {
		cause = io.ErrUnexpectedEOF
	}
	if errors.Is(cause, context.Canceled) || errors.Is(cause, context.DeadlineExceeded) {
		return fmt.Errorf("far end: %s %s: %w", op, archive.DisplayName(path), cause)
	}
	return fmt.Errorf("far end: %s %s: %w: %w (%w)", op, archive.DisplayName(path), ErrLost, io.ErrUnexpectedEOF, cause)
}
