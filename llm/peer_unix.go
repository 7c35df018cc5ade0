//go:build unix && !linux

package llm

import (
	"net"
	"syscall"
)

// peerProbe tells whether the upstream closed a connection, without reading from it: a peek that does not wait
// sees the end of the stream (or a reset) when the upstream closed it, and nothing when it is open and idle. A TLS
// upstream's close_notify alert waits before the end, so such a connection shows as an EOF once written to.
type peerProbe struct {
	raw  syscall.RawConn
	peek func(fd uintptr) // bound once, so a probe allocates nothing
	buf  [1]byte
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
	p.raw, p.peek = raw, p.peekFD
}

func (p *peerProbe) peekFD(fd uintptr) {
	n, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	// Bytes waiting (a TLS alert, an unasked-for 408) are left for the HTTP client to read and judge.
	p.shut = (n == 0 && err == nil) || err == syscall.ECONNRESET
}

func (p *peerProbe) closed() bool {
	if p.raw == nil {
		return false
	}
	p.shut = false
	// Control, not Read: until the request is written the connection keeps the last call's read deadline, and
	// Read refuses to run at all once that has passed, as it has for a deployment whose timeout is shorter
	// than the pause; the peek does not wait, so it needs no deadline.
	if p.raw.Control(p.peek) != nil {
		return false
	}
	return p.shut
}
