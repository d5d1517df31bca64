package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"strings"
	"syscall"
)

// Errors callers can test with errors.Is.
var (
	// ErrVolumeFull: the server reported no space (452, 552, or a reply
	// that says so). Not transient: the next cycle tries again.
	ErrVolumeFull = errors.New("destination volume full")
	// ErrUnsafeName: a listing held a name that could escape the tree
	// ("/", "..") or that does not print as itself (a control character,
	// bytes that are not UTF-8), or a line that could not be parsed.
	ErrUnsafeName = errors.New("unsafe or unparsable listing entry")
	// ErrLoginRefused: the server refused the URL's user and password
	// (530). The error names the user, never the password.
	ErrLoginRefused = errors.New("FTP login refused")
	// ErrRootUnavailable: the volume root does not exist or cannot be read.
	ErrRootUnavailable = errors.New("volume root missing or unreadable")
	// ErrSizeMismatch: after an upload the server holds a different size
	// than expected. Transient (the transfer may be retried).
	ErrSizeMismatch = errors.New("size after upload differs")
	// ErrResumeUnsupported: Publish was asked to resume where the probe
	// found no working append or rename.
	ErrResumeUnsupported = errors.New("server cannot resume uploads")
	// ErrResumeMismatch: the temporary file does not have the size the
	// caller wants to resume from; restart the upload from 0.
	ErrResumeMismatch = errors.New("temporary file size differs from resume offset")
	// ErrNotEmpty: RemoveDir found the directory not empty.
	ErrNotEmpty = errors.New("directory not empty")
	// ErrBadPath: a path argument is not a clean volume-relative path.
	ErrBadPath = errors.New("bad volume-relative path")
	// ErrUnreadableDir: the server could not read a directory of the tree
	// but answered the listing as if it had (vsftpd lists such a directory
	// as empty, or as its own entry). The listing fails rather than show a
	// backup set as missing, which could make its copy look expired.
	ErrUnreadableDir = errors.New("server cannot read the directory (check the archive volume's permissions)")
	// ErrListingTruncated: the server answered a listing as complete but
	// said it cut it short (pure-ftpd shows at most 10,000 entries unless
	// started with a higher -L). Files left out would look missing.
	ErrListingTruncated = errors.New("server cut the directory listing short (for pure-ftpd, raise its -L limit above the number of files in a directory)")
)

// Error is the error of a Volume operation. Its text names the operation,
// the volume-relative path and the endpoint (password masked).
type Error struct {
	Op       string // "open", "probe", "list", "read", "publish", "delete", "rmdir"
	Path     string // volume-relative path, may be empty
	Endpoint string // Endpoint.String()
	Err      error
}

// Error renders "[destination volume full: ]op path on endpoint: cause";
// it never contains a password.
func (e *Error) Error() string {
	var b strings.Builder
	if errors.Is(e.Err, ErrVolumeFull) {
		b.WriteString("destination volume full: ")
	}
	b.WriteString(e.Op)
	if e.Path != "" {
		b.WriteString(" " + e.Path)
	}
	if e.Endpoint != "" {
		b.WriteString(" on " + e.Endpoint)
	}
	b.WriteString(": ")
	b.WriteString(describe(e.Err))
	return b.String()
}

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// describe renders an error, with FTP replies as "code message".
func describe(err error) string {
	if err == nil {
		return "<nil>"
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// wrap builds an *Error, classifying FTP replies that mean "full".
func (v *Volume) wrap(op, p string, err error) error {
	if err == nil {
		return nil
	}
	var ae *Error
	if errors.As(err, &ae) {
		return err
	}
	if isFull(err) && !errors.Is(err, ErrVolumeFull) {
		err = &fullError{err: err}
	}
	var re *rootError
	if errors.As(err, &re) && !errors.Is(err, ErrRootUnavailable) {
		err = fmt.Errorf("%w: %w", ErrRootUnavailable, err)
	}
	return &Error{Op: op, Path: p, Endpoint: v.ep.String(), Err: err}
}

// fullError marks err as ErrVolumeFull without repeating that text (Error
// puts it first).
type fullError struct {
	err  error
	note string
}

func (e *fullError) Error() string {
	if e.note != "" {
		return describe(e.err) + " (" + e.note + ")"
	}
	return describe(e.err)
}
func (e *fullError) Unwrap() error        { return e.err }
func (e *fullError) Is(target error) bool { return target == ErrVolumeFull }

// serverFault reports vsftpd's "500 OOPS: …": its session process failed
// (e.g. "child died" under load) — the server's trouble, not a refusal, and
// worth a retry on a new connection.
func serverFault(err error) bool {
	var te *textproto.Error
	return errors.As(err, &te) && te.Code >= 500 && strings.Contains(te.Msg, "OOPS:")
}

func replyCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func isReply(err error) bool { return replyCode(err) != 0 }

func isFull(err error) bool {
	switch replyCode(err) {
	case 452, 552:
		return true
	case 0:
		return false
	}
	var te *textproto.Error
	errors.As(err, &te)
	m := strings.ToLower(te.Msg)
	return strings.Contains(m, "no space") || strings.Contains(m, "disk full") ||
		strings.Contains(m, "quota") || strings.Contains(m, "space left")
}

// connUsable reports whether a connection is still in a known state after
// err: nil, or an FTP reply other than 421 with no network error beside it.
func connUsable(err error) bool {
	if err == nil {
		return true
	}
	code := replyCode(err)
	if code == 0 || code == 421 {
		return false
	}
	return !isNetwork(err)
}

func isNetwork(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNABORTED)
}

// IsTransient reports whether an operation that failed with err may succeed
// when retried: FTP 4xx replies, connection resets, refused connections,
// timeouts, unexpected ends of stream, and ErrSizeMismatch. Permanent are
// 5xx replies, ErrVolumeFull, ErrUnsafeName, ErrRootUnavailable, bad paths,
// and the caller's own cancellation or deadline.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, errClosed),
		errors.Is(err, ErrVolumeFull), errors.Is(err, ErrUnsafeName),
		errors.Is(err, ErrRootUnavailable), errors.Is(err, ErrBadPath),
		errors.Is(err, ErrResumeUnsupported), errors.Is(err, ErrResumeMismatch),
		errors.Is(err, ErrNotEmpty):
		return false
	case errors.Is(err, ErrSizeMismatch):
		return true
	}
	if code := replyCode(err); code != 0 {
		if code >= 400 && code < 500 || serverFault(err) {
			return true
		}
		if !isNetwork(err) {
			return false
		}
	}
	return isNetwork(err)
}
