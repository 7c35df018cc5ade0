package a2a_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

// startRedirector is a header recorder in front of the agent at target,
// except that it answers a request under /same/ with a 307 to the path
// without the prefix on its own origin, and one under /cross/ with a 307 to
// the same path on elsewhere.
func startRedirector(t *testing.T, target, elsewhere string) (*headerRecorder, string) {
	t.Helper()
	rec, recURL := startHeaderRecorder(t, target)
	proxy := httputil.NewSingleHostReverseProxy(mustParse(t, recURL))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/same/"):
			http.Redirect(w, r, strings.TrimPrefix(r.URL.Path, "/same"), http.StatusTemporaryRedirect)
		case strings.HasPrefix(r.URL.Path, "/cross/"):
			http.Redirect(w, r, elsewhere+strings.TrimPrefix(r.URL.Path, "/cross"), http.StatusTemporaryRedirect)
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// An agent's credentials go to the origin the operator configured and no
// other: a redirect within it is followed, one to another host is not, for
// the card fetch and for the calls alike, so an agent (or an open redirect on
// its host) cannot send the gateway, with its Authorization and other
// configured headers and the caller's message, somewhere else.
func TestAgentRedirectsStayOnTheirOrigin(t *testing.T) {
	t.Parallel()
	up := startMockAgent(t, mock.A2AOptions{})
	away, awayURL := startHeaderRecorder(t, up.URL)
	home, homeURL := startRedirector(t, up.URL, awayURL)
	creds := map[string]string{"Authorization": "Bearer agent-secret-0123", "X-Agent-Token": "agent-token-0123"}
	inline := func(url string) string {
		return `{"name":"u","supportedInterfaces":[{"url":"` + url + `","protocolBinding":"JSONRPC","protocolVersion":"1.0"}],` +
			`"capabilities":{"streaming":true}}`
	}
	for _, tc := range []struct {
		name   string
		agent  sba2a.AgentConfig
		answer bool
	}{
		{"card moved on its origin", sba2a.AgentConfig{CardURL: homeURL + "/same/.well-known/agent-card.json"}, true},
		{"call moved on its origin", sba2a.AgentConfig{Card: inline(homeURL + "/same/")}, true},
		{"card moved to another origin", sba2a.AgentConfig{CardURL: homeURL + "/cross/.well-known/agent-card.json"}, false},
		{"call moved to another origin", sba2a.AgentConfig{Card: inline(homeURL + "/cross/")}, false},
	} {
		// Not parallel: each case counts what the other origin saw while it ran.
		t.Run(tc.name, func(t *testing.T) {
			tc.agent.Name, tc.agent.Headers = "agent", creds
			before := len(away.all())
			h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{tc.agent}})
			for _, v := range versions {
				status, _, body := h.post("/a2a/agent", keyAlice, string(v), redirectedSend(v))
				if ok := status == http.StatusOK && !strings.Contains(body, `"error"`); ok != tc.answer {
					t.Errorf("%s: answered %v (HTTP %d %s), want %v", v, ok, status, body, tc.answer)
				}
			}
			if tc.answer && len(home.all()) == 0 {
				t.Error("the configured origin saw no request")
			}
			if seen := away.all()[before:]; len(seen) != 0 {
				t.Errorf("another origin got %d requests, the first with Authorization %q and X-Agent-Token %q",
					len(seen), seen[0].Get("Authorization"), seen[0].Get("X-Agent-Token"))
			}
		})
	}
}

func redirectedSend(v a2a.ProtocolVersion) string {
	if v == a2av0.Version {
		return `{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"kind":"message","messageId":"m1","role":"user","parts":[{"kind":"text","text":"hi"}]}}}`
	}
	return `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`
}
