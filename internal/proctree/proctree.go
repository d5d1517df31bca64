// Package proctree finds the processes below a process, so that tests can
// stop a server (vsftpd, sshd) together with the session processes it forked.
package proctree

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// Descendants lists the live (not zombie) descendants of pid, read from
// /proc: what a test must kill besides a server it started, whose sessions
// fork.
func Descendants(pid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if pp, err := strconv.Atoi(f[1]); err == nil {
			parent[n] = pp
		}
	}
	var out []int
	for n := range parent {
		for a, hops := parent[n], 0; a > 1 && hops < 64; a, hops = parent[a], hops+1 {
			if a == pid {
				out = append(out, n)
				break
			}
		}
	}
	return out
}
