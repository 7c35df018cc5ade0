package governance

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestKeyFromHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct{ auth, xkey, want string }{
		{"Bearer sk-sb-abc", "", "sk-sb-abc"},
		{"bearer  sk-sb-abc ", "", "sk-sb-abc"},
		{"BEARER sk-sb-abc", "other", "sk-sb-abc"},
		{"", "sk-sb-x", "sk-sb-x"},
		{"Basic dXNlcjpwYXNz", "sk-sb-x", "sk-sb-x"},
		{"Bearer ", "sk-sb-x", "sk-sb-x"},
		{"Bearer", "", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		if got := KeyFromHeaders(tt.auth, tt.xkey); got != tt.want {
			t.Errorf("KeyFromHeaders(%q, %q) = %q, want %q", tt.auth, tt.xkey, got, tt.want)
		}
	}
}

func TestNewKeyFormat(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		k, err := NewKey()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(k, KeyPrefix) || len(k) != len(KeyPrefix)+keyRandomChars {
			t.Fatalf("key %q: want %s + %d chars", k, KeyPrefix, keyRandomChars)
		}
		for _, c := range k[len(KeyPrefix):] {
			if !strings.ContainsRune(base62, c) {
				t.Fatalf("key %q has non-base62 %q", k, c)
			}
		}
		if seen[k] {
			t.Fatalf("duplicate key %q", k)
		}
		seen[k] = true
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	cfg := Config{
		AdminKey: testAdminKey,
		Teams:    []TeamConfig{{Name: "platform"}},
		Keys: []KeyConfig{
			{Name: "ok", Key: rawKey("ok"), Team: "platform", User: "ann"},
			{Name: "hashed", KeyHash: HashKey(testSecret, rawKey("hashed"))},
			{Name: "expired", Key: rawKey("expired"), Expires: "2026-11-18T11:59:59Z"},
			{Name: "expires-later", Key: rawKey("later"), Expires: "2026-11-19"},
			{Name: "disabled", Key: rawKey("disabled"), Disabled: true},
		},
	}
	g, _ := newGov(t, cfg)
	tests := []struct {
		name    string
		raw     string
		wantKey string
		admin   bool
		errMsg  string
	}{
		{"valid", rawKey("ok"), "ok", false, ""},
		{"config key_hash", rawKey("hashed"), "hashed", false, ""},
		{"not yet expired", rawKey("later"), "expires-later", false, ""},
		{"admin", testAdminKey, "admin", true, ""},
		{"missing", "", "", false, "missing API key"},
		{"wrong", rawKey("nope"), "", false, "invalid API key"},
		{"prefix of a key", rawKey("ok")[:20], "", false, "invalid API key"},
		{"case variant", strings.ToUpper(rawKey("ok")), "", false, "invalid API key"},
		{"huge", strings.Repeat("k", 10_000), "", false, "invalid API key"},
		{"expired", rawKey("expired"), "", false, "API key expired"},
		{"disabled", rawKey("disabled"), "", false, "API key disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := g.Authenticate(tt.raw)
			if tt.errMsg != "" {
				var ge *Error
				if !errors.As(err, &ge) || ge.Kind != Unauthenticated || ge.HTTPStatus() != http.StatusUnauthorized {
					t.Fatalf("err = %v, want Unauthenticated", err)
				}
				if !strings.HasPrefix(ge.Message, tt.errMsg) || (tt.raw != "" && strings.Contains(ge.Message, tt.raw)) {
					t.Fatalf("message %q, want %q without the key", ge.Message, tt.errMsg)
				}
				if p != nil {
					t.Fatalf("principal returned with error")
				}
				// A principal-less request can never reach Reserve's admission.
				if _, err := g.Reserve(p, Request{Kind: KindModel, Name: "m"}); err == nil {
					t.Fatal("Reserve admitted a nil principal")
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if p.KeyName != tt.wantKey || p.Admin != tt.admin {
				t.Fatalf("principal %+v, want key %q admin %v", p, tt.wantKey, tt.admin)
			}
		})
	}
	p := mustAuth(t, g, "ok")
	if p.Team != "platform" || p.User != "ann" || !strings.HasPrefix(p.KeyID, "key_") || strings.Contains(p.KeyID, rawKey("ok")) {
		t.Errorf("principal %+v", p)
	}
}

func TestKeyIDIsStableAcrossValueChanges(t *testing.T) {
	t.Parallel()
	g1, _ := newGov(t, Config{Keys: []KeyConfig{{Name: "ci", Key: rawKey("v1")}}})
	g2, _ := newGov(t, Config{Keys: []KeyConfig{{Name: "ci", Key: rawKey("v2")}}})
	p1, _ := g1.Authenticate(rawKey("v1"))
	p2, _ := g2.Authenticate(rawKey("v2"))
	if p1 == nil || p2 == nil || p1.KeyID != p2.KeyID {
		t.Fatalf("ids differ: %v %v", p1, p2)
	}
}

func TestExpiryFollowsTheClock(t *testing.T) {
	t.Parallel()
	g, clock := newGov(t, Config{Keys: []KeyConfig{{Name: "k", Key: rawKey("k"), Expires: "2026-11-18T12:00:10Z"}}})
	mustAuth(t, g, "k")
	clock.Advance(10 * time.Second)
	if _, err := g.Authenticate(rawKey("k")); err == nil || err.Error() != "API key expired" {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestReloadSwapsKeysAndKeepsCounters(t *testing.T) {
	t.Parallel()
	cfg := Config{Keys: []KeyConfig{{Name: "a", Key: rawKey("a"), Limits: LimitsConfig{RPM: 2}}}}
	g, _ := newGov(t, cfg)
	p := mustAuth(t, g, "a")
	if _, err := g.Reserve(p, Request{Kind: KindModel, Name: "m"}); err != nil {
		t.Fatal(err)
	}
	cfg2 := Config{Secret: testSecret, Keys: []KeyConfig{{Name: "a", Key: rawKey("a"), Limits: LimitsConfig{RPM: 2}}, {Name: "b", Key: rawKey("b")}}}
	if err := g.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	p = mustAuth(t, g, "a")
	mustAuth(t, g, "b")
	if _, err := g.Reserve(p, Request{Kind: KindModel, Name: "m"}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Reserve(p, Request{Kind: KindModel, Name: "m"}); err == nil {
		t.Fatal("rpm counter was reset by reload")
	}
	bad := cfg2
	bad.Keys = append(bad.Keys, KeyConfig{Name: "c"})
	if err := g.Reload(bad); err == nil || !strings.Contains(err.Error(), "keys[2].key") {
		t.Fatalf("bad reload: %v", err)
	}
	mustAuth(t, g, "b") // old config still in force
	if err := g.Reload(Config{Secret: testSecret}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Authenticate(rawKey("b")); err == nil {
		t.Fatal("removed key still authenticates")
	}
}
