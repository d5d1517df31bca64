package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"backupsync/internal/control"
)

// cmdHashPassword reads a password and prints its bcrypt hash, the
// password_hash of a user block in the settings' xmlrpc block. On a
// terminal it prompts twice without echo; otherwise it reads one line.
func (a *app) cmdHashPassword(_ []string) int {
	password, err := a.readPassword()
	if err != nil {
		return a.fail("%v", err)
	}
	hash, err := control.HashPassword(password)
	if err != nil {
		return a.fail("hash: %v", err)
	}
	fmt.Fprintln(a.stdout, hash)
	user := firstOf(a.g.user, "NAME")
	fmt.Fprintf(a.stderr, "backupsyncctl: put it into backupsyncd.hcl as  xmlrpc { user %q { password_hash = \"<the hash>\" } }\n", user)
	return exitOK
}

// readPassword reads the password from a terminal (prompting on it, echo
// off, twice) or else one line of stdin.
func (a *app) readPassword() (string, error) {
	if f, ok := a.stdin.(*os.File); ok && isTerminal(f) {
		first, err := promptNoEcho(f, a.stderr, "Password: ")
		if err != nil {
			return "", err
		}
		if first == "" {
			return "", errors.New("empty password")
		}
		again, err := promptNoEcho(f, a.stderr, "Again: ")
		if err != nil {
			return "", err
		}
		if again != first {
			return "", errors.New("the passwords differ")
		}
		return first, nil
	}
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("no password on stdin: pipe one line, or run on a terminal to be prompted")
		}
		return "", fmt.Errorf("read the password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty password")
	}
	return line, nil
}

// promptNoEcho writes prompt to w and reads one line from the terminal f
// with echo off, restoring the terminal afterwards.
func promptNoEcho(f *os.File, w io.Writer, prompt string) (string, error) {
	fmt.Fprint(w, prompt)
	restore, err := echoOff(f)
	if err != nil {
		return "", fmt.Errorf("turn echo off: %w", err)
	}
	line, rerr := readLine(f)
	restore()
	fmt.Fprintln(w)
	if rerr != nil {
		return "", fmt.Errorf("read the password: %w", rerr)
	}
	return line, nil
}

// readLine reads up to a newline byte by byte, so that nothing after the
// line is consumed.
func readLine(r io.Reader) (string, error) {
	var b []byte
	buf := make([]byte, 1)
	for {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				return strings.TrimRight(string(b), "\r"), nil
			}
			b = append(b, buf[0])
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(b) > 0 {
				return string(b), nil
			}
			return "", err
		}
	}
}
