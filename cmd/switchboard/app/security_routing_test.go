package app

import (
	"net/http"
	"strings"
	"testing"
)

// Case, dot-segment, encoding and slash tricks never reach an admin handler without the admin key: each answer
// is a refusal or a not-found, never the keys list.
func TestSecurityPathTricks(t *testing.T) {
	t.Parallel()
	g := startSecGateway(t)
	paths := []string{
		"/ADMIN/keys", "/Admin/Keys", "/admin/../v1/models", "/v1/../admin/keys", "/v1/%2e%2e/admin/keys",
		"/v1/%2E%2E/admin/keys", "/v1/..%2fadmin/keys", "//admin/keys", "///admin//keys", "/admin/keys.",
		"/admin/keys/", "/%2fadmin/keys", "/%2Fadmin%2Fkeys", "/admin%2fkeys", "/admin/./keys", "/admin/keys%00",
		"/admin/keys;x=1", "/admin/keys?x=/v1/models", "/admin/debug/pprof/../../keys", "/ADMIN/DEBUG/PPROF/",
		"/admin/debug/pprof/heap", "/admin/debug/pprof/%2e%2e/%2e%2e/keys", "/admin//debug/pprof/",
	}
	creds := []struct {
		name   string
		header map[string]string
	}{
		{"no key", nil},
		{"team key", map[string]string{"Authorization": "Bearer " + secAliceKey}},
	}
	for _, p := range paths {
		for _, cred := range creds {
			t.Run(p+"/"+cred.name, func(t *testing.T) {
				before := g.upstreamWork()
				r := g.raw(t, "GET", p, cred.header, "")
				noSecret(t, r)
				if n := g.upstreamWork() - before; n != 0 {
					t.Errorf("%d upstream requests", n)
				}
				if r.status == http.StatusOK && !isModelsList(r.body) {
					t.Errorf("status 200: %.300s", r.body)
				}
				if isModelsList(r.body) && cred.header == nil {
					t.Errorf("the models list without a key: %.300s", r.body)
				}
				if r.status < 400 && r.status != http.StatusOK {
					t.Errorf("status %d: a redirect or odd success (Location %q)", r.status, r.header.Get("Location"))
				}
				if r.status >= 500 {
					t.Errorf("status %d: %.300s", r.status, r.body)
				}
			})
		}
	}
}

func isModelsList(body string) bool {
	return strings.Contains(body, `"object":"list"`) && strings.Contains(body, `"model-a"`)
}

// Host, X-Forwarded-* and URL-override headers change neither which handler answers nor who the caller is, and
// the A2A card never points at a host the client made up.
func TestSecuritySpoofedHeaders(t *testing.T) {
	t.Parallel()
	g := startSecGateway(t)
	spoofs := []struct {
		name   string
		header map[string]string
	}{
		{"Host", map[string]string{"Host": "admin.internal"}},
		{"Host localhost", map[string]string{"Host": "localhost"}},
		{"X-Forwarded-For loopback", map[string]string{"X-Forwarded-For": "127.0.0.1"}},
		{"X-Real-IP loopback", map[string]string{"X-Real-IP": "127.0.0.1"}},
		{"X-Forwarded-Host", map[string]string{"X-Forwarded-Host": "evil.example"}},
		{"X-Forwarded-Proto and Host", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}},
		{"X-Original-URL", map[string]string{"X-Original-URL": "/healthz"}},
		{"X-Rewrite-URL", map[string]string{"X-Rewrite-URL": "/healthz"}},
		{"X-HTTP-Method-Override", map[string]string{"X-HTTP-Method-Override": "GET"}},
		{"Forwarded", map[string]string{"Forwarded": "for=127.0.0.1;host=evil.example;proto=https"}},
	}
	for _, rf := range routeFamilies {
		if rf.public {
			continue
		}
		for _, sp := range spoofs {
			t.Run(rf.name+"/"+sp.name, func(t *testing.T) {
				before := g.upstreamWork()
				r := g.raw(t, rf.method, rf.path, withHeaders(rf.header, sp.header), rf.body)
				noSecret(t, r)
				if n := g.upstreamWork() - before; n != 0 {
					t.Errorf("%d upstream requests", n)
				}
				if r.status != http.StatusUnauthorized {
					t.Errorf("status %d, want 401 (body %.300s)", r.status, r.body)
				}
				checkShape(t, rf.shape, r)
			})
		}
	}
	// A URL override on a harmless route does not answer with the route it names.
	for _, h := range []string{"X-Original-URL", "X-Rewrite-URL"} {
		t.Run("healthz/"+h+" names the keys list", func(t *testing.T) {
			r := g.raw(t, "GET", "/healthz", map[string]string{h: "/admin/keys"}, "")
			if r.status != http.StatusOK || !strings.Contains(r.body, `"ok"`) {
				t.Errorf("status %d body %.300s, want the health answer", r.status, r.body)
			}
		})
	}
	// With a valid key, the card's URLs point at the gateway's own address, not at a spoofed host.
	for _, sp := range spoofs {
		t.Run("card URLs/"+sp.name, func(t *testing.T) {
			r := g.raw(t, "GET", "/a2a/researcher/.well-known/agent-card.json",
				withHeaders(withHeaders(a2aHeader, sp.header), map[string]string{"Authorization": "Bearer " + secAliceKey}), "")
			if r.status != http.StatusOK {
				t.Fatalf("status %d body %.300s", r.status, r.body)
			}
			for _, bad := range []string{"evil.example", "admin.internal", "localhost"} {
				if strings.Contains(r.body, bad) {
					t.Errorf("the card points at %s: %.400s", bad, r.body)
				}
			}
			if !strings.Contains(r.body, g.url+"/a2a/researcher") {
				t.Errorf("the card does not point at the gateway: %.400s", r.body)
			}
			noSecret(t, r)
		})
	}
	assertLogsClean(t, g)
}

// Metric labels keep the values they were made with, whatever requests come after: fiber hands out the request
// method as a view into fasthttp's reused read buffer, and a label kept from it would change (and race) when
// the buffer is refilled by the next request.
func TestSecurityMetricLabelsSurviveLaterRequests(t *testing.T) {
	t.Parallel()
	g := startSecGateway(t)
	if r := g.raw(t, "GET", "/healthz", nil, ""); r.status != http.StatusOK {
		t.Fatalf("healthz: %d", r.status)
	}
	for range 20 {
		g.raw(t, "POST", "/v1/chat/completions", aliceAuth, `{"model":"model-a","messages":[]}`)
		g.raw(t, "DELETE", "/admin/keys/xxxxxxxxxxxxxxxxxxxxxxxx", nil, "")
	}
	r := g.raw(t, "GET", "/metrics", nil, "")
	if !strings.Contains(r.body, `switchboard_http_requests_total{method="GET",route="/healthz",status="200"} 1`) {
		var lines []string
		for _, l := range strings.Split(r.body, "\n") {
			if strings.HasPrefix(l, "switchboard_http_requests_total") {
				lines = append(lines, l)
			}
		}
		t.Errorf("the healthz series changed its labels:\n%s", strings.Join(lines, "\n"))
	}
}
