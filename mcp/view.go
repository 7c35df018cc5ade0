package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// catchAllTemplate routes every resource URI that matches nothing else to
// the view's read handler, so that a hidden resource and one that does not
// exist fail with the same error. It is never listed.
const catchAllTemplate = "switchboard-any-resource"

// catchAllPattern is the catch-all template's URI template: any URI.
const catchAllPattern = "{+uri}"

// view is one MCP endpoint: /mcp (federated, server == "") or /mcp/<server>.
// It is an mcp-go server whose catalogue mirrors the upstreams', so mcp-go
// speaks both protocol versions, sessions, pagination and list_changed.
type view struct {
	g      *Gateway
	server string
	srv    *server.MCPServer
	stream *server.StreamableHTTPServer
	serve  fasthttp.RequestHandler

	// last synced JSON per kind: unchanged kinds are not re-set, because
	// every Set sends list_changed to all clients.
	synced [4]string
	// syncedUps are the upstreams the handlers of the last sync call.
	syncedUps []*upstream
	// prompts are the listed prompts' handlers, for the edge (see prefetch).
	prompts atomic.Pointer[map[string]server.PromptHandlerFunc]

	requests requests // in flight, for notifications/cancelled
	// askable are the sessions registered with srv whose client can be
	// asked (it declared elicitation or sampling): their calls must stream,
	// so they skip directCall.
	askable sync.Map // session ID -> struct{}
}

func (g *Gateway) newView(serverName string) *view {
	v := &view{g: g, server: serverName}
	hooks := &server.Hooks{}
	hooks.AddAfterListResources(func(ctx context.Context, _ any, _ *mcp.ListResourcesRequest, res *mcp.ListResourcesResult) {
		if res != nil {
			res.Resources = keep(res.Resources, func(r mcp.Resource) bool { return v.allowed(ctx, r.Name) })
		}
	})
	hooks.AddAfterListResourceTemplates(func(ctx context.Context, _ any, _ *mcp.ListResourceTemplatesRequest, res *mcp.ListResourceTemplatesResult) {
		if res != nil {
			res.ResourceTemplates = keep(res.ResourceTemplates, func(t mcp.ResourceTemplate) bool {
				return t.Name != catchAllTemplate && v.allowed(ctx, t.Name)
			})
		}
	})
	hooks.AddOnRegisterSession(func(_ context.Context, s server.ClientSession) {
		if info, ok := s.(server.SessionWithClientInfo); ok {
			if caps := info.GetClientCapabilities(); caps.Elicitation != nil || caps.Sampling != nil {
				v.askable.Store(s.SessionID(), struct{}{})
			}
		}
	})
	hooks.AddOnUnregisterSession(func(_ context.Context, s server.ClientSession) { v.askable.Delete(s.SessionID()) })
	hooks.AddAfterSetLevel(func(ctx context.Context, _ any, req *mcp.SetLevelRequest, _ *mcp.EmptyResult) {
		if p, s := principalFrom(ctx), server.ClientSessionFromContext(ctx); p != nil && s != nil {
			g.logLevels.set(p.KeyID, s.SessionID(), req.Params.Level)
		}
	})
	opts := []server.ServerOption{
		server.WithToolCapabilities(true),
		server.WithResourceCapabilities(false, true),
		server.WithPromptCapabilities(true),
		server.WithLogging(),
		server.WithHooks(hooks),
		server.WithToolFilter(func(ctx context.Context, tools []mcp.Tool) []mcp.Tool {
			return keep(tools, func(t mcp.Tool) bool { return v.allowed(ctx, t.Name) })
		}),
		server.WithPromptFilter(func(ctx context.Context, prompts []mcp.Prompt) []mcp.Prompt {
			return keep(prompts, func(p mcp.Prompt) bool { return v.allowed(ctx, p.Name) })
		}),
		server.WithRecovery(),
	}
	if g.cfg.PageSize > 0 {
		opts = append(opts, server.WithPaginationLimit(g.cfg.PageSize))
	}
	v.srv = server.NewMCPServer(implName, implVersion, opts...)
	v.srv.AddResourceTemplate(mcp.NewResourceTemplate(catchAllPattern, catchAllTemplate), v.readResource)
	v.stream = server.NewStreamableHTTPServer(v.srv,
		// The gateway authenticates every request; the Host check would
		// refuse clients that reach it through a proxy on the same host.
		server.WithDisableLocalhostProtection(true),
		server.WithSessionIdManagerResolver(g.sessions),
		// Its info records are about features the gateway does not use, and
		// one per session the sweeper drops: a busy gateway would log them
		// by the thousand.
		server.WithStreamableHTTPLogger(slog.New(atLeast{g.log.Handler(), slog.LevelWarn})),
		// The detached request context never sees a client hang up, so an
		// abandoned GET stream (and its session) ends only when a write to
		// it fails: heartbeats make that write happen.
		server.WithHeartbeatInterval(listenHeartbeat),
		// mcp-go keeps a session's logging/setLevel until a DELETE that
		// many clients never send; its sweeper drops what idle sessions
		// left. An open GET stream counts as use (each heartbeat).
		server.WithSessionIdleTTL(mcpGoSessionIdle),
	)
	v.serve = fasthttpadaptor.NewFastHTTPHandler(http.HandlerFunc(v.edge))
	return v
}

// mcpGoSessionIdle is shorter than sessionLevelIdle: nothing the gateway
// reads lives in mcp-go's per-session state, and with the sweeper on mcp-go
// notes the last use of every session it serves, which a day of sessions
// would make large.
const mcpGoSessionIdle = time.Hour

// listenHeartbeat is how often an idle GET stream (2025-11-25 sessions) gets
// a ping.
const listenHeartbeat = 30 * time.Second

// keep returns the items ok accepts. When it accepts all of them (every
// tools/call runs the tool filter on its one tool) items itself is returned:
// no copy of the large tool structs per call.
func keep[T any](items []T, ok func(T) bool) []T {
	for i, it := range items {
		if ok(it) {
			continue
		}
		out := make([]T, i, len(items)-1)
		copy(out, items[:i])
		for _, rest := range items[i+1:] {
			if ok(rest) {
				out = append(out, rest)
			}
		}
		return out
	}
	return items
}

// fullName is the governance name of an item listed in this view.
func (v *view) fullName(name string) string {
	if v.server == "" {
		return name
	}
	return v.server + nameSeparator + name
}

// listedName is how this view names an upstream's item.
func (v *view) listedName(u *upstream, name string) string {
	if v.server == "" {
		return u.name + nameSeparator + name
	}
	return name
}

func (v *view) allowed(ctx context.Context, name string) bool {
	return v.permits(principalFrom(ctx), name)
}

// permits reports whether p may use the item this view lists as name.
func (v *view) permits(p *governance.Principal, name string) bool {
	return p != nil && v.g.gov.Authorize(p, governance.KindTool, v.fullName(name)).Allowed
}

// sync mirrors the upstreams' catalogues into the view.
func (v *view) sync(ups []*upstream) {
	if !slices.Equal(ups, v.syncedUps) {
		// The handlers call the upstream objects they were made with. A
		// server a reload re-created (new URL or headers) lists the same
		// definitions, which alone would leave every call on the closed one.
		v.synced = [4]string{}
		v.syncedUps = slices.Clone(ups)
	}
	var (
		tools     []server.ServerTool
		resources []server.ServerResource
		templates = []server.ServerResourceTemplate{{
			Template: mcp.NewResourceTemplate(catchAllPattern, catchAllTemplate), Handler: v.readResource,
		}}
		prompts []server.ServerPrompt
		uris    = map[string]string{}
		// mcp-go keys templates by their text, so a later server's copy
		// would replace the first's in the list while reads (route) go to
		// the first.
		patterns = map[string]string{catchAllPattern: "the gateway's catch-all"}
	)
	for _, u := range ups {
		cat := u.cat.Load()
		for _, t := range cat.tools {
			orig := t.Name
			t.Name = v.listedName(u, orig)
			// Task-augmented calls are not proxied: advertise plain calls only.
			t.Execution = nil
			if err := mcp.ValidateParamHeaderAnnotations(&t); err != nil {
				v.g.log.Warn("mcp tool skipped", "mcp_server", u.name, "tool", orig, "err", err)
				continue
			}
			tools = append(tools, server.ServerTool{Tool: t, Handler: v.g.toolHandler(u, orig)})
		}
		for _, r := range cat.resources {
			if other, dup := uris[r.URI]; dup {
				v.g.log.Warn("mcp resource URI served by two servers; first wins",
					"uri", r.URI, "mcp_server", u.name, "kept", other)
				continue
			}
			uris[r.URI] = u.name
			r.Name = v.listedName(u, r.Name)
			resources = append(resources, server.ServerResource{Resource: r, Handler: v.readResource})
		}
		for _, t := range cat.templates {
			pattern := t.URITemplate.Raw()
			if other, dup := patterns[pattern]; dup {
				v.g.log.Warn("mcp resource template served by two servers; first wins",
					"template", pattern, "mcp_server", u.name, "kept", other)
				continue
			}
			patterns[pattern] = u.name
			t.Name = v.listedName(u, t.Name)
			templates = append(templates, server.ServerResourceTemplate{Template: t, Handler: v.readResource})
		}
		for _, p := range cat.prompts {
			orig := p.Name
			p.Name = v.listedName(u, orig)
			prompts = append(prompts, server.ServerPrompt{Prompt: p, Handler: v.g.promptHandler(u, orig)})
		}
	}
	if v.changed(0, defs(tools, func(t server.ServerTool) any { return t.Tool })) {
		v.srv.SetTools(tools...)
	}
	if v.changed(1, defs(resources, func(r server.ServerResource) any { return r.Resource })) {
		v.srv.SetResources(resources...)
	}
	if v.changed(2, defs(templates, func(t server.ServerResourceTemplate) any { return t.Template })) {
		v.srv.SetResourceTemplates(templates...)
	}
	handlers := make(map[string]server.PromptHandlerFunc, len(prompts))
	for _, p := range prompts {
		handlers[p.Prompt.Name] = p.Handler
	}
	v.prompts.Store(&handlers)
	if v.changed(3, defs(prompts, func(p server.ServerPrompt) any { return p.Prompt })) {
		v.srv.SetPrompts(prompts...)
	}
}

// defs extracts the listed definitions (with the same upstreams, see sync,
// handlers are closures over the same upstream and name, so the definitions
// decide whether anything changed).
func defs[T any](items []T, def func(T) any) []any {
	out := make([]any, len(items))
	for i, it := range items {
		out[i] = def(it)
	}
	return out
}

// changed reports whether one kind's definitions differ from the last sync.
func (v *view) changed(kind int, items []any) bool {
	b, err := json.Marshal(items)
	if err != nil {
		return true
	}
	if string(b) == v.synced[kind] {
		return false
	}
	v.synced[kind] = string(b)
	return true
}

// resourceRoute is where a resources/read goes: the upstream, and its name
// for the resource or template that matched the URI.
type resourceRoute struct {
	u    *upstream
	name string
}

// route finds the upstream serving a resource URI for this caller: a listed
// resource first, then the first matching template, in configuration order.
func (v *view) route(ctx context.Context, uri string) *resourceRoute {
	return v.routeFor(uri, func(listed string) bool { return v.allowed(ctx, listed) })
}

// routeFor is route for a caller allowed the items whose listed names allowed
// accepts.
func (v *view) routeFor(uri string, allowed func(listed string) bool) *resourceRoute {
	ups := v.g.upstreamsFor(v.server)
	for _, u := range ups {
		for _, r := range u.cat.Load().resources {
			if r.URI == uri {
				if allowed(v.listedName(u, r.Name)) {
					return &resourceRoute{u, r.Name}
				}
				return nil
			}
		}
	}
	for _, u := range ups {
		for _, t := range u.cat.Load().templates {
			if t.URITemplate != nil && t.URITemplate.Regexp().MatchString(uri) && allowed(v.listedName(u, t.Name)) {
				return &resourceRoute{u, t.Name}
			}
		}
	}
	return nil
}

// readResource serves resources/read for every URI of the view. Its span
// is named after the resource or template, never the URI: a URI is as
// varied as the callers make it, and may carry a token.
func (v *view) readResource(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
	uri := req.Params.URI
	if pre := prefetchedFor(ctx, mcp.MethodResourcesRead, uri); pre != nil {
		return pre.contents, pre.err
	}
	to := v.route(ctx, uri)
	if to == nil {
		return nil, fmt.Errorf("resource %q not found", uri)
	}
	var contents []mcp.ResourceContents
	err := v.g.forward(ctx, to.u, mcp.MethodResourcesRead, to.name, req.Params.Meta, req.Header, uriSecrets(uri),
		func(ctx context.Context, cli *client.Client, meta *mcp.Meta) error {
			out := mcp.ReadResourceRequest{}
			out.Params.URI, out.Params.Meta = uri, meta
			res, err := cli.ReadResource(ctx, out)
			if err != nil {
				return err
			}
			contents = res.Contents
			return nil
		})
	return contents, err
}

// uriSecrets hides the parts of a resource URI that may hold a credential
// (userinfo, query and fragment, as a capability URL's token) wherever the
// upstream quotes them. Parts shorter than governance.MinSecretLen stay:
// hiding them would garble the rest, as for configured secrets.
func uriSecrets(uri string) *governance.Redactor {
	parsed, err := url.Parse(uri)
	if err != nil {
		if i := strings.IndexAny(uri, "?#"); i >= 0 {
			return governance.NewRedactor(uri[i+1:])
		}
		return nil
	}
	parts := []string{parsed.RawQuery, parsed.Fragment, parsed.EscapedFragment()}
	for _, pair := range strings.Split(parsed.RawQuery, "&") {
		_, value, _ := strings.Cut(pair, "=")
		parts = append(parts, value)
		if decoded, err := url.QueryUnescape(value); err == nil {
			parts = append(parts, decoded)
		}
	}
	if parsed.User != nil {
		password, _ := parsed.User.Password()
		parts = append(parts, parsed.User.String(), password)
	}
	return governance.NewRedactor(parts...)
}

// atLeast is a slog.Handler that passes on only records at level or above.
type atLeast struct {
	slog.Handler
	level slog.Level
}

func (h atLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h atLeast) WithAttrs(attrs []slog.Attr) slog.Handler {
	return atLeast{h.Handler.WithAttrs(attrs), h.level}
}

func (h atLeast) WithGroup(name string) slog.Handler {
	return atLeast{h.Handler.WithGroup(name), h.level}
}
