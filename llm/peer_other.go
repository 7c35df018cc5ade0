//go:build !unix

package llm

import "net"

// peerProbe finds nothing where a connection cannot be peeked at without waiting: a stale connection then
// shows as an EOF once the request is written, which is retried as before.
type peerProbe struct{}

func (peerProbe) init(net.Conn) {}

func (peerProbe) closed() bool { return false }
