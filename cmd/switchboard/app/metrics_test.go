package app

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
	"github.com/switchboard-gw/switchboard/governance"
)

// With server.metrics_auth, /metrics answers a scrape that sends the metrics token or the admin key as its Bearer
// (what Prometheus sends for `authorization: {credentials: ...}`), and nobody else: its series name models,
// deployments with their upstream hosts, MCP servers and agents.
func TestMetricsAuth(t *testing.T) {
	t.Parallel()
	const (
		adminKey     = "sk-metrics-admin-0123456789abcdef"
		userKey      = "sk-metrics-user-0123456789abcdef"
		metricsToken = "scrape-token-0123456789abcdef"
	)
	cases := []struct {
		name   string
		token  string // server.metrics_token
		auth   string // the Authorization header sent
		status int
	}{
		{name: "no credentials", token: metricsToken, status: http.StatusUnauthorized},
		{name: "the metrics token", token: metricsToken, auth: "Bearer " + metricsToken, status: http.StatusOK},
		{name: "the admin key", token: metricsToken, auth: "Bearer " + adminKey, status: http.StatusOK},
		{name: "the admin key, no metrics token configured", auth: "Bearer " + adminKey, status: http.StatusOK},
		{name: "an API key that is not the admin's", token: metricsToken, auth: "Bearer " + userKey, status: http.StatusUnauthorized},
		{name: "a wrong token", token: metricsToken, auth: "Bearer " + metricsToken + "x", status: http.StatusUnauthorized},
		{name: "a token's prefix", token: metricsToken, auth: "Bearer " + metricsToken[:16], status: http.StatusUnauthorized},
		{name: "the token without Bearer", token: metricsToken, auth: metricsToken, status: http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, func(c *config.Config) {
				c.Server.MetricsAuth, c.Server.MetricsToken = true, tc.token
				c.Governance = governance.Config{Secret: "metrics-test-secret-0123456789", AdminKey: adminKey,
					Keys: []governance.KeyConfig{{Name: "user", Key: userKey}}}
			}, nil)
			req, _ := http.NewRequest(http.MethodGet, s.url+"/metrics", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status == http.StatusOK {
				if !strings.Contains(string(body), "switchboard_build_info") {
					t.Errorf("metrics body lacks switchboard_build_info: %.200s", body)
				}
				return
			}
			if !strings.Contains(resp.Header.Get("WWW-Authenticate"), "Bearer") || strings.Contains(string(body), "switchboard_") ||
				!strings.Contains(string(body), `"type":"authentication_error"`) || strings.Contains(string(body), metricsToken) {
				t.Errorf("refusal: WWW-Authenticate %q body %s; want a Bearer challenge and an OpenAI-shaped error, no metrics, no token",
					resp.Header.Get("WWW-Authenticate"), body)
			}
		})
	}
}
