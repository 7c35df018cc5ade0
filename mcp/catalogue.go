package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/switchboard-gw/switchboard/governance"
)

// catalogue is what one upstream offers, as last listed. Tool schemas are the
// upstream's raw JSON: mcp.Tool's typed schema drops keywords it doesn't know.
type catalogue struct {
	tools     []mcp.Tool
	resources []mcp.Resource
	templates []mcp.ResourceTemplate
	prompts   []mcp.Prompt
}

// tool finds a tool by its upstream name.
func (c *catalogue) tool(name string) *mcp.Tool {
	for i := range c.tools {
		if c.tools[i].Name == name {
			return &c.tools[i]
		}
	}
	return nil
}

// equal compares the JSON clients would see, so a refresh that changes
// nothing sends no list_changed.
func (c *catalogue) equal(o *catalogue) bool {
	if c == nil || o == nil {
		return c == o
	}
	a, errA := json.Marshal([]any{c.tools, c.resources, c.templates, c.prompts})
	b, errB := json.Marshal([]any{o.tools, o.resources, o.templates, o.prompts})
	return errA == nil && errB == nil && string(a) == string(b)
}

// fetchCatalogue lists everything the upstream advertises, following cursors.
func fetchCatalogue(ctx context.Context, cli *client.Client) (*catalogue, error) {
	caps := cli.GetServerCapabilities()
	cat := &catalogue{}
	if caps.Tools != nil {
		pages := &rawPages{}
		res, err := cli.ListTools(context.WithValue(ctx, rawPagesKey{}, pages), mcp.ListToolsRequest{})
		if err != nil {
			return nil, fmt.Errorf("tools/list: %w", err)
		}
		cat.tools = withRawSchemas(res.Tools, pages.schemas())
	}
	if caps.Resources != nil {
		res, err := cli.ListResources(ctx, mcp.ListResourcesRequest{})
		if err != nil {
			return nil, fmt.Errorf("resources/list: %w", err)
		}
		cat.resources = res.Resources
		tpl, err := cli.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{})
		if err != nil {
			return nil, fmt.Errorf("resources/templates/list: %w", err)
		}
		cat.templates = tpl.ResourceTemplates
	}
	if caps.Prompts != nil {
		res, err := cli.ListPrompts(ctx, mcp.ListPromptsRequest{})
		if err != nil {
			return nil, fmt.Errorf("prompts/list: %w", err)
		}
		cat.prompts = res.Prompts
	}
	return cat, nil
}

// rawSchemas are a tool's schemas exactly as the upstream sent them.
type rawSchemas struct {
	input, output json.RawMessage
}

// withRawSchemas replaces each tool's typed schemas by the raw ones.
func withRawSchemas(tools []mcp.Tool, raw map[string]rawSchemas) []mcp.Tool {
	out := make([]mcp.Tool, 0, len(tools))
	for _, t := range tools {
		if r, ok := raw[t.Name]; ok {
			if len(r.input) > 0 {
				t.InputSchema = mcp.ToolInputSchema{}
				t.RawInputSchema = r.input
			}
			if len(r.output) > 0 {
				t.OutputSchema = mcp.ToolOutputSchema{}
				t.RawOutputSchema = r.output
			}
		}
		out = append(out, t)
	}
	return out
}

// rawPagesKey marks a tools/list whose raw result pages should be kept.
type rawPagesKey struct{}

// rawPages collects the raw results of one paginated tools/list.
type rawPages struct {
	mu    sync.Mutex
	pages []json.RawMessage
}

func (p *rawPages) schemas() map[string]rawSchemas {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]rawSchemas{}
	for _, page := range p.pages {
		var res struct {
			Tools []struct {
				Name         string          `json:"name"`
				InputSchema  json.RawMessage `json:"inputSchema"`
				OutputSchema json.RawMessage `json:"outputSchema"`
			} `json:"tools"`
		}
		if json.Unmarshal(page, &res) != nil {
			continue
		}
		for _, t := range res.Tools {
			out[t.Name] = rawSchemas{input: t.InputSchema, output: t.OutputSchema}
		}
	}
	return out
}

func capturePage(ctx context.Context, req transport.JSONRPCRequest, resp *transport.JSONRPCResponse) {
	if resp == nil || resp.Error != nil || req.Method != string(mcp.MethodToolsList) {
		return
	}
	if p, ok := ctx.Value(rawPagesKey{}).(*rawPages); ok {
		p.mu.Lock()
		p.pages = append(p.pages, append(json.RawMessage(nil), resp.Result...))
		p.mu.Unlock()
	}
}

// httpTransport, sseTransport and stdioTransport embed the concrete transports so every
// optional interface the client probes for (HTTPConnection, bidirectional
// requests) stays visible; only SendRequest is wrapped, to see raw pages and
// to hide the upstream's secrets in its answers.
type httpTransport struct {
	*transport.StreamableHTTP
	secrets *governance.Redactor
	// offer declares relayedCapabilities in the handshake (client_requests).
	offer bool
}

func (t httpTransport) SendRequest(ctx context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	if t.offer && req.Method == string(mcp.MethodInitialize) {
		// Only the 2025-11-25 handshake: a 2026-07-28 server is not offered
		// them (see relayedCapabilities).
		req.Params = withCapabilities(req.Params, relayedCapabilities)
	}
	resp, err := t.StreamableHTTP.SendRequest(ctx, req)
	return answered(ctx, req, resp, err, t.secrets)
}

type stdioTransport struct {
	*transport.Stdio
	proc    *stdioProcess
	secrets *governance.Redactor
}

// Close ends the transport, which closes the server's stdin, and then the
// process.
func (t stdioTransport) Close() error {
	err := t.Stdio.Close()
	t.proc.stop()
	return err
}

func (t stdioTransport) SendRequest(ctx context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	resp, err := t.Stdio.SendRequest(ctx, req)
	return answered(ctx, req, resp, err, t.secrets)
}

type sseTransport struct {
	*transport.SSE
	secrets *governance.Redactor
}

func (t sseTransport) SendRequest(ctx context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	resp, err := t.SSE.SendRequest(ctx, req)
	return answered(ctx, req, resp, err, t.secrets)
}

// answered is what every transport's SendRequest returns to the client: the
// answer with secrets hidden (its error message, error data and result
// bytes), its tools/list page captured.
func answered(ctx context.Context, req transport.JSONRPCRequest, resp *transport.JSONRPCResponse, err error, secrets *governance.Redactor) (*transport.JSONRPCResponse, error) {
	if err != nil {
		return resp, secrets.Error(err)
	}
	if resp != nil && secrets != nil {
		resp.Result = secrets.JSON(resp.Result)
		if resp.Error != nil {
			resp.Error.Message = secrets.String(resp.Error.Message)
			if data, changed := redactValue(secrets, resp.Error.Data); changed {
				resp.Error.Data = data
			}
		}
	}
	capturePage(ctx, req, resp)
	if resp != nil {
		captureRPCError(ctx, resp.Error)
	}
	return resp, err
}
