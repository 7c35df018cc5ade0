//go:build linux

package llm

import "golang.org/x/sys/unix"

// lookFD tells from the kernel's TCP state whether the upstream closed the connection: one whose upstream sent its
// FIN is in CLOSE_WAIT, one it reset is CLOSE. A peek at the bytes waiting cannot tell: a TLS upstream sends its
// close_notify alert before the FIN, and bytes waiting say nothing of what follows them.
func (p *peerProbe) lookFD(fd uintptr) {
	info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	p.shut = err == nil && info.State != unix.BPF_TCP_ESTABLISHED
}
