package app

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/llm"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	sbmcp "github.com/switchboard-gw/switchboard/mcp"
	"github.com/switchboard-gw/switchboard/storage"
)

const (
	workflowClientKey = "sk-test-client-0000000000000000"
	workflowAgentKey  = "sk-test-agent-00000000000000000"
)

// headerTransport adds the client's gateway key to every request.
type headerTransport struct{ key string }

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+h.key)
	return http.DefaultTransport.RoundTrip(r)
}

// The product's promise in one test: a client delegates to an agent through the gateway; the agent, passing on
// the traceparent it received, calls a model and a tool through the same gateway. The store then holds one
// trace: invoke_agent -> (chat, tools/call, invoke_agent -> chat), with every layer's cost.
func TestWorkflowAcrossProtocolsIsOneTrace(t *testing.T) {
	t.Parallel()
	llmUp, err := mock.StartLLM("127.0.0.1:0", mock.LLMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { llmUp.Close() })
	toolUp, err := mock.StartMCP("127.0.0.1:0", mock.MCPOptions{Name: "weather"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { toolUp.Close() })

	var gatewayURL atomic.Value
	gateway := func() string { return gatewayURL.Load().(string) }
	writerUp, err := mock.StartA2A("127.0.0.1:0", mock.A2AOptions{Name: "writer",
		OnMessage: mock.GatewayAgent{Gateway: gateway, Key: workflowAgentKey, Model: "gpt-4o-mini"}.OnMessage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writerUp.Close() })
	agentUp, err := mock.StartA2A("127.0.0.1:0", mock.A2AOptions{Name: "researcher",
		OnMessage: mock.GatewayAgent{Gateway: gateway, Key: workflowAgentKey, Model: "gpt-4o-mini",
			Tool: "weather__get_forecast", Agent: "writer"}.OnMessage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agentUp.Close() })

	s := start(t, func(c *config.Config) {
		c.Models = []llm.ModelConfig{{Name: "gpt-4o-mini",
			Deployments: []llm.DeploymentConfig{{Provider: llm.ProviderOpenAI, BaseURL: llmUp.URL + "/v1"}},
			Pricing:     &llm.PricingConfig{InputPerMTok: "0.15", OutputPerMTok: "0.60"}}}
		c.MCP = sbmcp.Config{Servers: []sbmcp.ServerConfig{{Name: "weather", URL: toolUp.URL + "/mcp", CostPerCallUSD: "0.001"}}}
		c.A2A = sba2a.Config{Agents: []sba2a.AgentConfig{
			{Name: "researcher", CardURL: agentUp.URL + "/.well-known/agent-card.json", CostPerCallUSD: "0.01"},
			{Name: "writer", CardURL: writerUp.URL + "/.well-known/agent-card.json", CostPerCallUSD: "0.02"},
		}}
		c.Governance = governance.Config{Secret: "workflow-test-secret-0123456789", Keys: []governance.KeyConfig{
			{Name: "client", Key: workflowClientKey},
			{Name: "researcher-agent", Key: workflowAgentKey},
		}}
	}, nil)
	gatewayURL.Store(s.url)
	s.waitReady(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	card := &a2a.AgentCard{SupportedInterfaces: []*a2a.AgentInterface{{
		URL: s.url + "/a2a/researcher", ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: a2a.Version,
	}}}
	agent, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithDefaultsDisabled(),
		a2aclient.WithJSONRPCTransport(&http.Client{Transport: headerTransport{key: workflowClientKey}}))
	if err != nil {
		t.Fatal(err)
	}
	res, err := agent.SendMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("Paris"))})
	if err != nil {
		t.Fatal(err)
	}
	task, ok := res.(*a2a.Task)
	if !ok || len(task.Artifacts) == 0 {
		reason := ""
		if ok && task.Status.Message != nil && len(task.Status.Message.Parts) > 0 {
			reason = task.Status.Message.Parts[0].Text()
		}
		t.Fatalf("agent answered %#v: %s", res, reason)
	}

	// invoke_agent researcher -> chat, tools/call, invoke_agent writer -> chat; each chat was answered by its first
	// upstream attempt, so it has no attempt child.
	root := waitForTrace(t, s.app.Store(), "invoke_agent researcher", 5)
	if root.Span.Name != "invoke_agent researcher" || root.Span.KeyName != "client" {
		t.Fatalf("root span %+v", root.Span)
	}
	children := map[string]storage.TraceNode{}
	for _, ch := range root.Children {
		children[ch.Span.Name] = ch
	}
	chat, tool, writer := children["chat gpt-4o-mini"], children["tools/call weather__get_forecast"], children["invoke_agent writer"]
	if chat.Span.KeyName != "researcher-agent" || chat.Span.CostNanoUSD <= 0 || len(chat.Children) != 0 {
		t.Errorf("chat span under the agent span: %+v (children %d)", chat.Span, len(chat.Children))
	}
	if tool.Span.CostNanoUSD != 1_000_000 || tool.Span.ToolServer != "weather" {
		t.Errorf("tool span under the agent span: %+v", tool.Span)
	}
	if writer.Span.CostNanoUSD != 20_000_000 || writer.Span.KeyName != "researcher-agent" || len(writer.Children) != 1 ||
		writer.Children[0].Span.Name != "chat gpt-4o-mini" {
		t.Errorf("delegation to the writer: %+v (children %d)", writer.Span, len(writer.Children))
	}
	if root.Span.CostNanoUSD != 10_000_000 {
		t.Errorf("agent span cost %d, want 10000000 nano-USD", root.Span.CostNanoUSD)
	}
}

// waitForTrace polls the store until the trace whose root is named rootName holds at least spans spans (the
// recorder writes asynchronously).
func waitForTrace(t *testing.T, store storage.Store, rootName string, spans int) storage.TraceNode {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	for {
		recent, err := store.RecentTraces(ctx, storage.TraceFilter{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, sum := range recent {
			nodes, err := store.Trace(ctx, sum.TraceID)
			if err != nil {
				t.Fatal(err)
			}
			if len(nodes) == 1 && nodes[0].Span.Name == rootName && count(nodes[0]) >= spans {
				return nodes[0]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no trace rooted at %q with %d spans; recent: %+v", rootName, spans, recent)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func count(n storage.TraceNode) int {
	total := 1
	for _, c := range n.Children {
		total += count(c)
	}
	return total
}
