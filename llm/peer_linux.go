//go:build linux

package llm

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerProbe tells whether the upstream closed a connection from the kernel's TCP state, without reading from it:
// a connection whose upstream sent its FIN is in CLOSE_WAIT, one it reset is CLOSE. A peek at the bytes waiting
// cannot tell: a TLS upstream sends its close_notify alert before the FIN, and bytes waiting say nothing of what
// follows them.
type peerProbe struct {
	raw   syscall.RawConn
	state func(fd uintptr) // bound once, so a probe allocates only the kernel's answer
	shut  bool
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
	p.raw, p.state = raw, p.stateFD
}

func (p *peerProbe) stateFD(fd uintptr) {
	info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	p.shut = err == nil && info.State != unix.BPF_TCP_ESTABLISHED
}

func (p *peerProbe) closed() bool {
	if p.raw == nil {
		return false
	}
	p.shut = false
	// Control, not Read: until the request is written the connection keeps the last call's read deadline, and
	// Read refuses to run at all once that has passed.
	if p.raw.Control(p.state) != nil {
		return false
	}
	return p.shut
}
