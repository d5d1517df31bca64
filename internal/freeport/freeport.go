// Package freeport finds TCP ports that are free on loopback addresses,
// for the demo's clusters and for tests.
package freeport

import (
	"fmt"
	"net"
	"strconv"
)

// On returns a TCP port free on ip right now.
func On(ip string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Common returns a TCP port free on every ip right now: a cluster's
// services listen on one port on all of its nodes.
func Common(ips ...string) (int, error) {
	for range 50 {
		p, err := On(ips[0])
		if err != nil {
			return 0, err
		}
		free := true
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p)))
			if err != nil {
				free = false
				break
			}
			ln.Close()
		}
		if free {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no port free on all of %v", ips)
}
