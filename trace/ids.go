package trace

import (
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"sync"
)

// TraceID is a W3C trace id. The zero value is invalid.
type TraceID [16]byte

// SpanID is a W3C parent/span id. The zero value is invalid and means "no
// parent" in Span.ParentSpanID.
type SpanID [8]byte

// String returns the id as 32 lowercase hex digits.
func (id TraceID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the invalid all-zero id.
func (id TraceID) IsZero() bool { return id == TraceID{} }

// MarshalText makes ids appear as hex in JSON.
func (id TraceID) MarshalText() ([]byte, error) {
	b := make([]byte, 32)
	hex.Encode(b, id[:])
	return b, nil
}

// UnmarshalText accepts 32 hex digits.
func (id *TraceID) UnmarshalText(b []byte) error {
	if len(b) != 32 || !isLowerHex(string(b)) {
		return errors.New("trace: trace id must be 32 lowercase hex digits")
	}
	_, err := hex.Decode(id[:], b)
	return err
}

// ParseTraceID parses 32 lowercase hex digits; the all-zero id is rejected.
func ParseTraceID(s string) (TraceID, bool) {
	var id TraceID
	if id.UnmarshalText([]byte(s)) != nil || id.IsZero() {
		return TraceID{}, false
	}
	return id, true
}

// String returns the id as 16 lowercase hex digits.
func (id SpanID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the all-zero id.
func (id SpanID) IsZero() bool { return id == SpanID{} }

// MarshalText makes ids appear as hex in JSON.
func (id SpanID) MarshalText() ([]byte, error) {
	b := make([]byte, 16)
	hex.Encode(b, id[:])
	return b, nil
}

// UnmarshalText accepts 16 hex digits.
func (id *SpanID) UnmarshalText(b []byte) error {
	if len(b) != 16 || !isLowerHex(string(b)) {
		return errors.New("trace: span id must be 16 lowercase hex digits")
	}
	_, err := hex.Decode(id[:], b)
	return err
}

// idSources hands out ChaCha8 generators seeded from crypto/rand. sync.Pool
// keeps them per P, so Start neither locks nor pays for crypto/rand per span,
// while ids stay unpredictable to clients.
var idSources = sync.Pool{New: func() any {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		// crypto/rand never fails on supported platforms (Go 1.24+ panics
		// internally instead); keep the guarantee explicit.
		panic("trace: crypto/rand: " + err.Error())
	}
	return rand.NewChaCha8(seed)
}}

func putUint64(b []byte, v uint64) {
	_ = b[7]
	b[0], b[1], b[2], b[3] = byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32)
	b[4], b[5], b[6], b[7] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

func newSpanID(g *rand.ChaCha8) SpanID {
	var id SpanID
	for id.IsZero() {
		putUint64(id[:], g.Uint64())
	}
	return id
}

func newTraceID(g *rand.ChaCha8) TraceID {
	var id TraceID
	for id.IsZero() {
		putUint64(id[:8], g.Uint64())
		putUint64(id[8:], g.Uint64())
	}
	return id
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
