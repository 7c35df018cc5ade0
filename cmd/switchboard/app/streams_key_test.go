package app

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/llm"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	sbmcp "github.com/switchboard-gw/switchboard/mcp"
)

const (
	streamHogKey   = "sk-streams-hog-0123456789abcdef"   // limits.max_streams: 2, team "shared"
	streamMateKey  = "sk-streams-mate-0123456789abcdef"  // team "shared" (max_streams: 3), no limit of its own
	streamOtherKey = "sk-streams-other-0123456789abcdef" // another team, no limits
)

// One key cannot take every server.max_concurrent_streams slot: its limits.max_streams (and its team's) caps
// its streams of every layer, on one replica and across replicas sharing Redis, while other keys' streams go
// on being served.
func TestKeyAndTeamMaxStreams(t *testing.T) {
	t.Parallel()
	llmUp, toolUp, agentUp := startUpstreams(t, mock.LLMOptions{TokensPerSecond: 20})
	mutate := func(redis *governance.RedisConfig) func(*config.Config) {
		return func(c *config.Config) {
			c.Server.MaxConcurrentStreams = 4
			c.Models = []llm.ModelConfig{{Name: "slow", Deployments: []llm.DeploymentConfig{
				{Provider: llm.ProviderOpenAI, BaseURL: llmUp.URL + "/v1", Model: "gpt-4o-mini"}}}}
			c.MCP = sbmcp.Config{Servers: []sbmcp.ServerConfig{{Name: "weather", URL: toolUp.URL + "/mcp"}}}
			c.A2A = sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "researcher", CardURL: agentUp.URL + "/.well-known/agent-card.json"}}}
			c.Governance = governance.Config{Secret: "streams-test-secret-0123456789", Redis: redis,
				Teams: []governance.TeamConfig{{Name: "shared", Limits: governance.LimitsConfig{MaxStreams: 3}}, {Name: "lone"}},
				Keys: []governance.KeyConfig{
					{Name: "hog", Key: streamHogKey, Team: "shared", Limits: governance.LimitsConfig{MaxStreams: 2}},
					{Name: "mate", Key: streamMateKey, Team: "shared"},
					{Name: "other", Key: streamOtherKey, Team: "lone"},
				}}
		}
	}
	setups := []struct {
		name     string
		replicas func(t *testing.T) []*started
	}{
		{"one replica", func(t *testing.T) []*started { return []*started{start(t, mutate(nil), nil)} }},
		{"two replicas on one Redis", func(t *testing.T) []*started {
			addr := os.Getenv("SWITCHBOARD_TEST_REDIS")
			if addr == "" {
				t.Skip("SWITCHBOARD_TEST_REDIS is unset (deploy/redis.sh start; SWITCHBOARD_TEST_REDIS=127.0.0.1:6379)")
			}
			rc := &governance.RedisConfig{Addr: addr, Prefix: freshRedisPrefix(t, addr), Timeout: 5 * time.Second}
			return []*started{start(t, mutate(rc), nil), start(t, mutate(rc), nil)}
		}},
	}
	for _, setup := range setups {
		t.Run(setup.name, func(t *testing.T) {
			replicas := setup.replicas(t)
			// Each stream goes to the next replica, so on Redis no replica sees all of a key's streams.
			next := 0
			at := func() *started { s := replicas[next%len(replicas)]; next++; return s }
			open := func(key string) (*openai.ChatCompletionStream, error) {
				cfg := openai.DefaultConfig(key)
				cfg.BaseURL = at().url + "/v1"
				return openai.NewClientWithConfig(cfg).CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{
					Model: "slow", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: strings.Repeat("word ", 400)}}})
			}
			running := func(key string) *openai.ChatCompletionStream {
				t.Helper()
				st, err := open(key)
				if err != nil {
					t.Fatalf("stream of %s: %v", key, err)
				}
				// The first chunk proves the stream runs and holds its places.
				if _, err := st.Recv(); err != nil {
					t.Fatalf("stream of %s: %v", key, err)
				}
				t.Cleanup(func() { st.Close() })
				return st
			}
			refused := func(key, rule string) {
				t.Helper()
				_, err := open(key)
				var ae *openai.APIError
				if !errors.As(err, &ae) || ae.HTTPStatusCode != http.StatusTooManyRequests || ae.Type != "rate_limit_exceeded" ||
					!strings.Contains(ae.Message, rule) {
					t.Fatalf("stream of %s over its limit: %v, want 429 rate_limit_exceeded naming the %s", key, err, rule)
				}
			}

			hog := []*openai.ChatCompletionStream{running(streamHogKey), running(streamHogKey)}
			refused(streamHogKey, "concurrent streams for this key")
			// Every layer's streams count, each refused in its protocol's shape before reaching an upstream.
			for _, tc := range []struct {
				name, method, path, body, want string
				header                         map[string]string
			}{
				{"anthropic messages", "POST", "/v1/messages", `{"model":"slow","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}`,
					`"type":"rate_limit_error"`, nil},
				{"MCP listening stream", "GET", "/mcp", "", `"code":-32000`,
					map[string]string{"Accept": "text/event-stream", "MCP-Protocol-Version": "2025-11-25"}},
				{"A2A stream", "POST", "/a2a/researcher", strings.Replace(a2aSend, "SendMessage", "SendStreamingMessage", 1), `"code":-32000`,
					a2aHeader},
			} {
				req, _ := http.NewRequest(tc.method, at().url+tc.path, strings.NewReader(tc.body))
				req.Header.Set("Authorization", "Bearer "+streamHogKey)
				req.Header.Set("Content-Type", "application/json")
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" ||
					!strings.Contains(string(body), tc.want) || !strings.Contains(string(body), "too many concurrent streams for this key") {
					t.Errorf("%s: %d %v %s", tc.name, resp.StatusCode, resp.Header, body)
				}
			}
			// Calls that are not streams are not capped by it.
			cfg := openai.DefaultConfig(streamHogKey)
			cfg.BaseURL = at().url + "/v1"
			if _, err := openai.NewClientWithConfig(cfg).CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
				Model: "slow", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}); err != nil {
				t.Fatalf("a JSON call of the key at its stream limit: %v", err)
			}

			// The team's limit caps its keys together: hog holds 2 of its 3.
			running(streamMateKey)
			refused(streamMateKey, "concurrent streams for this team")
			// Another tenant's stream still finds a server slot (4: hog 2, mate 1, other 1).
			running(streamOtherKey)

			// An ended stream gives its places back.
			hog[0].Close()
			deadline := time.Now().Add(10 * time.Second)
			for {
				st, err := open(streamHogKey)
				if err == nil {
					st.Close()
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the key's place never came back: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
