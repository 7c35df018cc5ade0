package governance

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"sync"
	"unsafe"
)

// KeyPrefix starts every key the gateway generates, so leaked keys are recognisable.
const KeyPrefix = "sk-sb-"

const (
	keyRandomChars = 40
	base62         = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// Principal is who is calling: the owner of an authenticated key. Treat it as
// read-only; it is shared by every request made with the same key.
type Principal struct {
	KeyID   string // stable, non-secret; what spans and spend use
	KeyName string
	Team    string
	Org     string
	User    string
	Admin   bool // authenticated with the admin key

	entry *keyEntry
}

// HashKey is the stored form of a raw key: hex HMAC-SHA-256 under the server
// secret. It is what a config `key_hash` holds.
func HashKey(secret, rawKey string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(rawKey))
	return hex.EncodeToString(m.Sum(nil))
}

func parseKeyHash(s string) ([32]byte, error) {
	var h [32]byte
	s = strings.TrimPrefix(strings.TrimSpace(s), "hmac-sha256:")
	if len(s) != 64 {
		return h, fmt.Errorf("want 64 hex characters (HMAC-SHA-256 of the key under secret)")
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("want 64 hex characters (HMAC-SHA-256 of the key under secret)")
	}
	return h, nil
}

// KeyFromHeaders extracts the key from `Authorization: Bearer <k>` or, failing
// that, from `x-api-key`. It returns "" when neither carries one.
func KeyFromHeaders(authorization, xAPIKey string) string {
	a := strings.TrimSpace(authorization)
	if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		if k := strings.TrimSpace(a[7:]); k != "" {
			return k
		}
	}
	return strings.TrimSpace(xAPIKey)
}

// NewKey returns a fresh random key: KeyPrefix followed by 40 base62 characters
// (about 238 bits).
func NewKey() (string, error) {
	var b strings.Builder
	b.Grow(len(KeyPrefix) + keyRandomChars)
	b.WriteString(KeyPrefix)
	buf := make([]byte, 64)
	for b.Len() < len(KeyPrefix)+keyRandomChars {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("generate key: %w", err)
		}
		for _, c := range buf {
			// Rejection sampling: 248 = 4×62, so the kept bytes are uniform over base62.
			if c < 248 && b.Len() < len(KeyPrefix)+keyRandomChars {
				b.WriteByte(base62[c%62])
			}
		}
	}
	return b.String(), nil
}

func randomID(prefix string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

// configKeyID derives a config key's id from its name so spend recorded under
// it survives restarts and changes of the key's value.
func configKeyID(name string) string {
	s := sha256.Sum256([]byte("switchboard config key\x00" + name))
	return "key_" + hex.EncodeToString(s[:8])
}

// keyHasher computes HMACs without allocating: pooled HMAC states avoid
// re-deriving the pads, and the key string is hashed in place.
type keyHasher struct {
	pool sync.Pool
}

type hmacState struct {
	mac hash.Hash
	sum [sha256.Size]byte
}

func newKeyHasher(secret string) *keyHasher {
	k := []byte(secret)
	h := &keyHasher{}
	h.pool.New = func() any { return &hmacState{mac: hmac.New(sha256.New, k)} }
	return h
}

func (h *keyHasher) sum(raw string) [32]byte {
	st := h.pool.Get().(*hmacState)
	st.mac.Reset()
	// hash.Hash.Write never retains or modifies its argument, so viewing the
	// string's bytes without a copy is safe and saves an allocation per request.
	st.mac.Write(unsafe.Slice(unsafe.StringData(raw), len(raw)))
	st.mac.Sum(st.sum[:0])
	out := st.sum
	h.pool.Put(st)
	return out
}
