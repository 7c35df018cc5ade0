package llm

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

// A stream that ends without its usage, because the upstream died or the
// client left, is still billed: the prompt as estimated for the hold and
// the output relayed so far, and its span says the usage is estimated. A
// complete stream is billed what the upstream reported.
func TestStreamWithoutUsageIsBilled(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	slow := startMock(t, mock.LLMOptions{TokensPerSecond: 40})
	dies := func(d DeploymentConfig, events string) DeploymentConfig {
		d.Headers = map[string]string{mock.HeaderFailAfter: events}
		return d
	}
	cfg := Config{
		Models: []ModelConfig{
			{Name: "openai-dies", Deployments: []DeploymentConfig{dies(openaiDep(m, "gpt-4o-mini"), "4")}},
			{Name: "anthropic-dies", Deployments: []DeploymentConfig{dies(anthropicDep(m, "claude-3-5-haiku-latest"), "5")}},
			{Name: "slow", Deployments: []DeploymentConfig{openaiDep(slow, "gpt-4o-mini")}},
			{Name: "whole", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o-mini")}},
		},
		Router: RouterConfig{RetryBackoff: time.Millisecond, Cooldown: time.Minute, AllowedFails: 1000},
	}
	h := newHarness(t, cfg)
	prompt := strings.Repeat("several words of a prompt ", 8)
	cases := []struct {
		name, model, path string
		leaveAfter        int // chunks the client reads before it hangs up; 0 reads to the end
		estimated         bool
	}{
		{"openai upstream dies", "openai-dies", "/v1/chat/completions", 0, true},
		{"anthropic upstream dies, openai client", "anthropic-dies", "/v1/chat/completions", 0, true},
		{"anthropic upstream dies, anthropic client", "anthropic-dies", "/v1/messages", 0, true},
		{"client leaves", "slow", "/v1/chat/completions", 3, true},
		{"complete", "whole", "/v1/chat/completions", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.spansNamed("chat " + tc.model))
			body := `{"model":"` + tc.model + `","max_tokens":200,"stream":true,"messages":[{"role":"user","content":"` + prompt + `"}]}`
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+tc.path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+keyAll)
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if tc.leaveAfter > 0 {
				buf := make([]byte, 1)
				for seen := 0; seen < tc.leaveAfter; {
					if _, err := resp.Body.Read(buf); err != nil {
						t.Fatal(err)
					}
					if buf[0] == '\n' {
						seen++ // two newlines end an event
					}
				}
				cancel()
			} else {
				_, _ = io.Copy(io.Discard, resp.Body)
			}
			resp.Body.Close()
			sp := h.waitSpans("chat "+tc.model, before+1)[before]
			estimated := slices.Contains(sp.Attrs, trace.Attr{Key: "usage", Value: "estimated"})
			if sp.InputTokens <= 0 || sp.OutputTokens <= 0 || sp.CostNanoUSD <= 0 || estimated != tc.estimated {
				t.Fatalf("span: %d input and %d output tokens, cost %d nano-USD, usage estimated %v (want %v); status %d %q",
					sp.InputTokens, sp.OutputTokens, sp.CostNanoUSD, estimated, tc.estimated, sp.HTTPStatus, sp.Error)
			}
		})
	}
}
