package mcp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/switchboard-gw/switchboard/governance"
)

// sessionIDs mints and checks the Mcp-Session-Id of 2025-11-25 sessions,
// for the views' transports and for directCall alike. An ID is random bits
// and an HMAC tag over them and the API key that opened the session: every
// replica keyed alike accepts an ID another one minted, with no state to
// share, and refuses one it could not have minted, or one another key
// presents (the spec asks that sessions be bound to their user), so that
// the client starts a new session instead of using one it does not own. A DELETE ends a session on the replica that receives it
// only: the ended IDs are kept in memory, a bounded number for a bounded
// time.
type sessionIDs struct {
	macs sync.Pool // hash.Hash keyed with the secret: the pads are derived once

	mu    sync.RWMutex
	ended map[sessionNonce]time.Time // -> when it is forgotten
	// order holds the ended IDs from order[head], oldest first: with one
	// TTL for all, the first to expire, and the first to go at the cap.
	order []sessionNonce
	head  int
	max   int              // maxEndedSessions; tests lower it
	now   func() time.Time // time.Now; tests move it
}

// sessionNonce is the random part of a session ID.
type sessionNonce [16]byte

const (
	// sessionIDPrefix is mcp-go's, so the IDs look like those of any mcp-go
	// server.
	sessionIDPrefix = "mcp-session-"
	sessionTagBytes = 16
	// endedSessionTTL is how long an ended ID is refused: as long as
	// anything of a session outlives its last use (see sessionLevelIdle;
	// mcp-go's state goes sooner, mcpGoSessionIdle). A client that comes
	// back later with the ID starts from nothing, as after a 404.
	endedSessionTTL = sessionLevelIdle
	// maxEndedSessions bounds the memory a flood of DELETEs can take (some
	// 100 bytes an ID); past it the oldest ended ID is refused no more.
	maxEndedSessions = 100_000
)

// sessionIDEncoding is strict so that each ID has one spelling: one that
// differs only in the unused bits of its last character would escape the
// set of ended IDs.
var sessionIDEncoding = base64.RawURLEncoding.Strict()

var sessionIDLen = len(sessionIDPrefix) + sessionIDEncoding.EncodedLen(len(sessionNonce{})+sessionTagBytes)

var errUnknownSession = errors.New("session ID not minted by this gateway's key")

// newSessionIDs returns IDs keyed with secret, or with a random key of this
// process when it is empty: then no other replica accepts them.
func newSessionIDs(secret []byte) *sessionIDs {
	if len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret) // never fails (crypto/rand crashes the process instead)
	}
	secret = append([]byte(nil), secret...) // the pool keys MACs with it later
	s := &sessionIDs{ended: map[sessionNonce]time.Time{}, max: maxEndedSessions, now: time.Now}
	s.macs.New = func() any { return hmac.New(sha256.New, secret) }
	return s
}

// tag binds nonce to keyID; the nonce's fixed length keeps the two apart.
func (s *sessionIDs) tag(nonce sessionNonce, keyID string) []byte {
	mac := s.macs.Get().(hash.Hash)
	defer s.macs.Put(mac)
	mac.Reset()
	mac.Write(nonce[:])
	_, _ = io.WriteString(mac, keyID)
	return mac.Sum(nil)[:sessionTagBytes]
}

// mint makes a new ID for a session the key keyID opens.
func (s *sessionIDs) mint(keyID string) string {
	var nonce sessionNonce
	_, _ = rand.Read(nonce[:])
	return sessionIDPrefix + sessionIDEncoding.EncodeToString(append(nonce[:], s.tag(nonce, keyID)...))
}

// parse returns the random part of an ID minted for keyID under this secret.
func (s *sessionIDs) parse(id, keyID string) (sessionNonce, bool) {
	var nonce sessionNonce
	encoded, ok := strings.CutPrefix(id, sessionIDPrefix)
	if !ok || len(id) != sessionIDLen {
		return nonce, false
	}
	raw, err := sessionIDEncoding.DecodeString(encoded)
	if err != nil || len(raw) != len(nonce)+sessionTagBytes {
		return nonce, false
	}
	copy(nonce[:], raw)
	return nonce, hmac.Equal(raw[len(nonce):], s.tag(nonce, keyID))
}

// check refuses an ID not minted for keyID under this secret; ended reports
// one a DELETE ended here. Both are answered 404.
func (s *sessionIDs) check(id, keyID string) (ended bool, err error) {
	nonce, ok := s.parse(id, keyID)
	if !ok {
		return false, errUnknownSession
	}
	s.mu.RLock()
	forgotten, found := s.ended[nonce]
	s.mu.RUnlock()
	return found && s.now().Before(forgotten), nil
}

// end ends the session of a client's DELETE.
func (s *sessionIDs) end(id, keyID string) error {
	nonce, ok := s.parse(id, keyID)
	if !ok {
		return errUnknownSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if forgotten, dup := s.ended[nonce]; dup && now.Before(forgotten) {
		return nil
	}
	for s.head < len(s.order) {
		oldest := s.order[s.head]
		if len(s.ended) < s.max && now.Before(s.ended[oldest]) {
			break
		}
		delete(s.ended, oldest)
		s.head++
	}
	// Compacting once half the slice is gone keeps it within twice the cap
	// at a constant cost per ID.
	if s.head > len(s.order)/2 {
		s.order = append(s.order[:0], s.order[s.head:]...)
		s.head = 0
	}
	s.ended[nonce] = now.Add(endedSessionTTL)
	s.order = append(s.order, nonce)
	return nil
}

// ResolveSessionIdManager hands mcp-go the IDs of the key that sends r
// (the edge put its principal in r's context). mcp-go asks without a
// request when it ends sessions of its own accord: its sweeper those idle
// for mcpGoSessionIdle, CloseSessions those of a view that shuts down. The
// client's session goes on nonetheless (with its log level, see
// sessionLevelIdle), as it does on the other replicas, so that must not end
// the ID.
func (s *sessionIDs) ResolveSessionIdManager(r *http.Request) server.SessionIdManager {
	if r == nil {
		return idsKept{}
	}
	return keySessions{s, keyIDOf(principalFrom(r.Context()))}
}

// keyIDOf is the key a session belongs to; the edge authenticated every
// request, so p is nil only in tests that skip it.
func keyIDOf(p *governance.Principal) string {
	if p == nil {
		return ""
	}
	return p.KeyID
}

// keySessions are one key's session IDs, as mcp-go's SessionIdManager.
type keySessions struct {
	ids   *sessionIDs
	keyID string
}

func (k keySessions) Generate() string                  { return k.ids.mint(k.keyID) }
func (k keySessions) Validate(id string) (bool, error)  { return k.ids.check(id, k.keyID) }
func (k keySessions) Terminate(id string) (bool, error) { return false, k.ids.end(id, k.keyID) }

// idsKept is what mcp-go gets without a request: with no key to check IDs
// against, it validates none, and its Terminate ends nothing.
type idsKept struct{}

func (idsKept) Generate() string               { return "" }
func (idsKept) Validate(string) (bool, error)  { return false, errUnknownSession }
func (idsKept) Terminate(string) (bool, error) { return false, nil }
