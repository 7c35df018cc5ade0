package mock

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	openai "github.com/sashabaranov/go-openai"
)

// GatewayAgent is the work of an agent that lives behind the gateway and calls back through it: for each message
// it may call a model, a tool and another agent, each through the gateway with the traceparent it was called
// with, so the whole workflow lands in one trace. Use its OnMessage as A2AOptions.OnMessage.
type GatewayAgent struct {
	// Gateway is the gateway's base URL; a func because the agent may start before the gateway listens.
	Gateway func() string
	Key     string // the agent's own gateway key
	Model   string // chat model to ask, or ""
	Tool    string // federated tool (<server>__<tool>) called with {"city": <message>}, or ""
	Agent   string // agent to delegate to, or ""
}

// OnMessage runs the calls in order (model, tool, agent) and replies with what they answered.
func (g GatewayAgent) OnMessage(ctx context.Context, text, traceparent string) (string, error) {
	base := g.Gateway()
	hc := &http.Client{Transport: gatewayTransport{key: g.Key, traceparent: traceparent}}
	var replies []string
	if g.Model != "" {
		oc := openai.DefaultConfig(g.Key)
		oc.BaseURL, oc.HTTPClient = base+"/v1", hc
		res, err := openai.NewClientWithConfig(oc).CreateChatCompletion(ctx, openai.ChatCompletionRequest{
			Model: g.Model, Messages: []openai.ChatCompletionMessage{{Role: "user", Content: text}}})
		if err != nil {
			return "", fmt.Errorf("model %s: %w", g.Model, err)
		}
		replies = append(replies, res.Choices[0].Message.Content)
	}
	if g.Tool != "" {
		out, err := callGatewayTool(ctx, base, hc, g.Tool, text, traceparent)
		if err != nil {
			return "", fmt.Errorf("tool %s: %w", g.Tool, err)
		}
		replies = append(replies, out)
	}
	if g.Agent != "" {
		card := &a2a.AgentCard{SupportedInterfaces: []*a2a.AgentInterface{{
			URL: base + "/a2a/" + g.Agent, ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: a2a.Version}}}
		c, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithDefaultsDisabled(), a2aclient.WithJSONRPCTransport(hc))
		if err != nil {
			return "", err
		}
		res, err := c.SendMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart(text))})
		if err != nil {
			return "", fmt.Errorf("agent %s: %w", g.Agent, err)
		}
		if task, ok := res.(*a2a.Task); ok && len(task.Artifacts) > 0 && len(task.Artifacts[0].Parts) > 0 {
			replies = append(replies, task.Artifacts[0].Parts[0].Text())
		}
	}
	return strings.Join(replies, "\n"), nil
}

// callGatewayTool calls one tool through the gateway's federated /mcp endpoint, passing the trace context in
// _meta as MCP clients carry it.
func callGatewayTool(ctx context.Context, base string, hc *http.Client, tool, city, traceparent string) (string, error) {
	tr, err := transport.NewStreamableHTTP(base+"/mcp", transport.WithHTTPBasicClient(hc))
	if err != nil {
		return "", err
	}
	mc := client.NewClient(tr)
	defer mc.Close()
	if err := mc.Start(ctx); err != nil {
		return "", err
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = "2025-11-25"
	init.Params.ClientInfo = mcp.Implementation{Name: "gateway-agent", Version: "1"}
	if _, err := mc.Initialize(ctx, init); err != nil {
		return "", err
	}
	call := mcp.CallToolRequest{}
	call.Params.Name = tool
	call.Params.Arguments = map[string]any{"city": city}
	call.Params.Meta = &mcp.Meta{AdditionalFields: map[string]any{"traceparent": traceparent}}
	out, err := mc.CallTool(ctx, call)
	if err != nil {
		return "", err
	}
	if out.IsError || len(out.Content) == 0 {
		return "", fmt.Errorf("tool error: %+v", out.Content)
	}
	text, _ := out.Content[0].(mcp.TextContent)
	return text.Text, nil
}

// gatewayTransport adds the agent's key and the caller's traceparent to every request.
type gatewayTransport struct{ key, traceparent string }

func (t gatewayTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.key)
	if t.traceparent != "" {
		r.Header.Set("traceparent", t.traceparent)
	}
	return http.DefaultTransport.RoundTrip(r)
}
