package llm

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

// TestCountTokens covers POST /v1/messages/count_tokens, which Claude Code and the Anthropic SDKs call
// (`messages.countTokens`, with `?beta=true`) before they send a long conversation.
func TestCountTokens(t *testing.T) {
	t.Parallel()
	good := startMock(t, mock.LLMOptions{})
	broken := startMock(t, mock.LLMOptions{Fail: map[string]int{"claude-broken": 503}})
	upstreamKey := "sk-ant-upstream-key-for-counting"
	anthropic := func(m *mock.LLMServer, model string) DeploymentConfig {
		d := anthropicDep(m, model)
		d.APIKey = upstreamKey
		return d
	}
	h := newHarness(t, Config{Router: RouterConfig{Retries: 2}, Models: []ModelConfig{
		{Name: "claude", Deployments: []DeploymentConfig{anthropic(good, "claude-3-5-haiku-latest")}},
		{Name: "gpt", Deployments: []DeploymentConfig{openaiDep(good, "gpt-4o-mini")}},
		// Counting goes only to the Anthropic deployments, and past the one that fails.
		{Name: "mixed", Deployments: []DeploymentConfig{openaiDep(good, "gpt-4o-mini"),
			anthropic(broken, "claude-broken"), anthropic(good, "claude-3-5-haiku-latest")}},
	}})
	body := func(model string) string {
		return `{"model":"` + model + `","system":"be brief","messages":[{"role":"user","content":"count these few words please"}]}`
	}
	want := directCount(t, good, body("claude-3-5-haiku-latest"))

	for _, model := range []string{"claude", "mixed"} {
		t.Run(model, func(t *testing.T) {
			for range 4 {
				status, hdr, _, raw := h.post("/v1/messages/count_tokens?beta=true", "", body(model), "x-api-key", keyAll,
					"anthropic-version", "2023-06-01", "anthropic-beta", "token-counting-2024-11-01")
				var got struct {
					InputTokens int `json:"input_tokens"`
				}
				if status != 200 || json.Unmarshal(raw, &got) != nil || got.InputTokens != want {
					t.Fatalf("got %d %s, want %d input tokens, as the upstream alone answers", status, raw, want)
				}
				if hdr.Get("traceparent") == "" || hdr.Get("X-Switchboard-Cost-Usd") != "0" {
					t.Fatalf("headers %v", hdr)
				}
			}
			spans := h.waitSpans("count_tokens "+model, 4)
			for _, s := range spans {
				if s.CostNanoUSD != 0 || s.InputTokens != 0 || s.OutputTokens != 0 || s.Status != "ok" {
					t.Fatalf("span %+v: counting is free and uses no tokens", s)
				}
			}
		})
	}
	t.Run("upstream request", func(t *testing.T) {
		status, _, _, _ := h.post("/v1/messages/count_tokens", "", body("claude"), "x-api-key", keyAll,
			"anthropic-version", "2023-06-01", "anthropic-beta", "token-counting-2024-11-01")
		got := good.LastRequest()
		if status != 200 || got.Path != "/v1/messages/count_tokens" || got.Header.Get("x-api-key") != upstreamKey ||
			got.Header.Get("anthropic-beta") != "token-counting-2024-11-01" || got.Header.Get("anthropic-version") != "2023-06-01" ||
			!strings.Contains(string(got.Body), `"model":"claude-3-5-haiku-latest"`) {
			t.Fatalf("status %d, upstream got %s %v %s", status, got.Path, got.Header, got.Body)
		}
	})
	t.Run("errors in Anthropic shape", func(t *testing.T) {
		for _, tc := range []struct {
			name, key, body string
			status          int
			typ, message    string
		}{
			{"no key", "", body("claude"), 401, "authentication_error", ""},
			{"no anthropic deployment", keyAll, body("gpt"), 400, "invalid_request_error", `model "gpt" cannot count tokens`},
			{"stream", keyAll, strings.Replace(body("claude"), `{`, `{"stream":true,`, 1), 400, "invalid_request_error", "cannot be streamed"},
			{"unknown model", keyAll, body("nope"), 404, "not_found_error", ""},
			{"broken JSON", keyAll, `{"model":`, 400, "invalid_request_error", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := good.Requests()
				status, _, _, raw := h.post("/v1/messages/count_tokens", "", tc.body, "x-api-key", tc.key, "anthropic-version", "2023-06-01")
				var e struct {
					Type  string `json:"type"`
					Error struct{ Type, Message string }
				}
				if json.Unmarshal(raw, &e) != nil || status != tc.status || e.Type != "error" || e.Error.Type != tc.typ ||
					!strings.Contains(e.Error.Message, tc.message) {
					t.Fatalf("got %d %s, want %d %s %q", status, raw, tc.status, tc.typ, tc.message)
				}
				if good.Requests() != before {
					t.Fatal("a refused call reached the upstream")
				}
			})
		}
	})
}

// directCount asks the mock itself, without the gateway.
func directCount(t *testing.T, m *mock.LLMServer, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, m.URL+"/v1/messages/count_tokens", strings.NewReader(body))
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		InputTokens int `json:"input_tokens"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 || got.InputTokens == 0 {
		t.Fatalf("mock: %d %v", resp.StatusCode, err)
	}
	return got.InputTokens
}
