//go:build unix

package llm

import (
	"net"
	"syscall"
)

// peerProbe tells whether the upstream closed a connection without reading from it; how it looks (lookFD)
// depends on what the system offers.
type peerProbe struct {
	raw  syscall.RawConn
	look func(fd uintptr) // lookFD, bound once
	shut bool
}

func (p *peerProbe) init(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	p.raw, p.look = raw, p.lookFD
}

func (p *peerProbe) closed() bool {
	if p.raw == nil {
		return false
	}
	p.shut = false
	// Control, not Read: until the request is written the connection keeps the last call's read deadline, and
	// Read refuses to run at all once that has passed, as it has for a deployment whose timeout is shorter
	// than the pause; the look does not wait, so it needs no deadline.
	if p.raw.Control(p.look) != nil {
		return false
	}
	return p.shut
}
