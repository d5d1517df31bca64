package xmlrpc

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// ErrFingerprintMismatch is matched (errors.Is) by the error of a call whose
// server presented a certificate other than the pinned one.
var ErrFingerprintMismatch = errors.New("server certificate does not match the pinned fingerprint")

// Fingerprint returns the SHA-256 fingerprint of a DER certificate (the
// leaf's x509.Certificate.Raw) in the form the daemon logs and
// --fingerprint takes: "SHA256:" followed by unpadded standard base64, as
// OpenSSH writes key fingerprints.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// ParseFingerprint reads a SHA-256 certificate fingerprint in any of the
// forms admins copy around: "SHA256:" + base64 (padded or not, as
// Fingerprint writes it), or 64 hex digits with or without ':' between the
// bytes (as `openssl x509 -fingerprint -sha256` prints them), each with or
// without the "SHA256:" prefix (any case). The forms differ in length, so
// none is ambiguous.
func ParseFingerprint(s string) ([sha256.Size]byte, error) {
	var fp [sha256.Size]byte
	v := strings.TrimSpace(s)
	if len(v) >= 7 && strings.EqualFold(v[:7], "sha256:") {
		v = v[7:]
	}
	var (
		b   []byte
		err error
	)
	switch hexDigits := strings.ReplaceAll(v, ":", ""); {
	case len(hexDigits) == 2*sha256.Size && (len(v) == len(hexDigits) || len(v) == 3*sha256.Size-1):
		b, err = hex.DecodeString(hexDigits)
	case len(v) == 43:
		b, err = base64.RawStdEncoding.DecodeString(v)
	case len(v) == 44:
		b, err = base64.StdEncoding.DecodeString(v)
	default:
		err = errors.New("want SHA256:<43 base64 characters> or 64 hex digits")
	}
	if err == nil && len(b) != sha256.Size {
		err = errors.New("not 32 bytes")
	}
	if err != nil {
		return fp, fmt.Errorf("bad SHA-256 fingerprint %q: %v", s, err)
	}
	copy(fp[:], b)
	return fp, nil
}
