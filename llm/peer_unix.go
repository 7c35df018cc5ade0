//go:build unix && !linux

package llm

import "syscall"

// lookFD peeks without waiting: it sees the end of the stream (or a reset) when the upstream closed the
// connection, and nothing when it is open and idle. A TLS upstream's close_notify alert waits before the end, so
// such a connection shows as an EOF once written to.
func (p *peerProbe) lookFD(fd uintptr) {
	var buf [1]byte
	n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	// Bytes waiting (a TLS alert, an unasked-for 408) are left for the HTTP client to read and judge.
	p.shut = (n == 0 && err == nil) || err == syscall.ECONNRESET
}
