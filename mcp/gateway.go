package mcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/mark3labs/mcp-go/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/trace"
)

// Governor is the part of governance the gateway uses.
type Governor interface {
	Authenticate(rawKey string) (*governance.Principal, error)
	Authorize(p *governance.Principal, kind governance.Kind, name string) governance.Decision
	Reserve(p *governance.Principal, r governance.Request) (*governance.Reservation, error)
	// Denied audits a refusal; it must not block.
	Denied(d governance.Denial)
}

// Tracer starts spans.
type Tracer interface {
	Start(parent trace.SpanContext, layer trace.Layer, name string) *trace.Span
}

// Deps are the gateway's collaborators. Metrics may be nil.
type Deps struct {
	Governor Governor
	Tracer   Tracer
	Logger   *slog.Logger
	Metrics  prometheus.Registerer
	// SessionSecret keys the 2025-11-25 session IDs: replicas given the
	// same one serve each other's sessions. Empty, the gateway keys them
	// with random bytes of its own.
	SessionSecret []byte
}

// Gateway federates the configured MCP servers.
type Gateway struct {
	gov     Governor
	tracer  Tracer
	log     *slog.Logger
	metrics *metrics
	http    *http.Client
	workers *workers
	// maxResponse is mcp.max_response_bytes, shared with every upstream's
	// HTTP client so that Reload changes it in place.
	maxResponse atomic.Int64
	// logLevels are the log levels 2025-11-25 sessions set.
	logLevels sessionLevels
	sessions  *sessionIDs
	// listeners are the open GET streams, where sampling requests go.
	listeners listeners

	mu        sync.RWMutex // guards cfg, ups, order, views
	cfg       Config
	ups       map[string]*upstream
	order     []string // configuration order: it decides URI collisions
	views     map[string]*view
	federated *view
	closed    bool

	syncMu sync.Mutex // serialises catalogue → view syncs
}

// New starts connecting to every configured server; it does not wait for
// them (a server that is down is retried in the background).
func New(cfg Config, deps Deps) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Governor == nil || deps.Tracer == nil || deps.Logger == nil {
		return nil, errors.New("mcp: Governor, Tracer and Logger are required")
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		gov:     deps.Governor,
		tracer:  deps.Tracer,
		log:     deps.Logger,
		metrics: m,
		http: &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		}},
		workers:  newWorkers(),
		sessions: newSessionIDs(deps.SessionSecret),
		cfg:      cfg.withDefaults(),
		ups:      map[string]*upstream{},
		views:    map[string]*view{},
	}
	g.maxResponse.Store(g.cfg.MaxResponseBytes)
	g.federated = g.newView("")
	g.mu.Lock()
	for _, s := range g.cfg.Servers {
		g.addLocked(s)
		g.order = append(g.order, s.Name)
	}
	g.mu.Unlock()
	g.resyncAll()
	return g, nil
}

// addLocked starts an upstream, and its view unless a replaced upstream
// left one (its sessions carry on); g.mu must be held.
func (g *Gateway) addLocked(s ServerConfig) {
	name := s.Name
	if _, ok := g.views[name]; !ok {
		g.views[name] = g.newView(name)
	}
	g.ups[name] = newUpstream(s, g.log, g.http, &g.maxResponse, func() { g.resync(name) })
}

// Reload applies a new configuration: servers are added, removed or, when
// their connection settings changed, replaced; costs and timeouts of the
// others change in place. Sessions on unaffected servers continue.
func (g *Gateway) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	var stale []*upstream
	var staleViews []*view
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errors.New("mcp: gateway closed")
	}
	want := map[string]ServerConfig{}
	for _, s := range cfg.Servers {
		want[s.Name] = s
	}
	for name, u := range g.ups {
		s, keep := want[name]
		if keep && s.sameConnection(u.cfg.Load()) {
			u.setConfig(s)
			continue
		}
		stale = append(stale, u)
		delete(g.ups, name)
		if !keep {
			staleViews = append(staleViews, g.views[name])
			delete(g.views, name)
		}
	}
	g.order = g.order[:0]
	for _, s := range cfg.Servers {
		if _, ok := g.ups[s.Name]; !ok {
			g.addLocked(s)
		}
		g.order = append(g.order, s.Name)
	}
	g.cfg = cfg
	g.maxResponse.Store(cfg.MaxResponseBytes)
	g.mu.Unlock()

	// Closing waits for the upstream's goroutine, which may be resyncing:
	// never under g.mu.
	for _, u := range stale {
		u.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, v := range staleViews {
		_ = v.stream.Shutdown(ctx)
	}
	g.resyncAll()
	return nil
}

// Close stops every upstream (stdio processes exit) and ends sessions.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	ups := g.ups
	views := append([]*view{g.federated}, mapValues(g.views)...)
	g.ups, g.views, g.order = map[string]*upstream{}, map[string]*view{}, nil
	g.mu.Unlock()
	// All at once: a stdio server may take its grace periods to stop.
	for _, u := range ups {
		u.cancel()
	}
	for _, u := range ups {
		<-u.done
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, v := range views {
		_ = v.stream.Shutdown(ctx)
	}
	g.http.CloseIdleConnections()
	g.workers.close()
	return nil
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// Ready reports an error until every configured server has had its first connection attempt, so a gateway
// that says it is ready never answers "tool not found" for a tool it is still loading. A server that is down
// counts as settled: its calls fail as unavailable, which is the truth.
func (g *Gateway) Ready(context.Context) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, name := range g.order {
		select {
		case <-g.ups[name].settled:
		default:
			return fmt.Errorf("mcp server %s: first connection still in progress", name)
		}
	}
	return nil
}

// upstreamsFor returns the upstreams behind a view in configuration order.
func (g *Gateway) upstreamsFor(server string) []*upstream {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if server != "" {
		if u, ok := g.ups[server]; ok {
			return []*upstream{u}
		}
		return nil
	}
	out := make([]*upstream, 0, len(g.order))
	for _, name := range g.order {
		if u, ok := g.ups[name]; ok {
			out = append(out, u)
		}
	}
	return out
}

// resync mirrors one server's catalogue into its view and the federated one.
func (g *Gateway) resync(server string) {
	g.syncMu.Lock()
	defer g.syncMu.Unlock()
	g.mu.RLock()
	v := g.views[server]
	g.mu.RUnlock()
	if v != nil {
		v.sync(g.upstreamsFor(server))
	}
	g.federated.sync(g.upstreamsFor(""))
}

func (g *Gateway) resyncAll() {
	g.syncMu.Lock()
	defer g.syncMu.Unlock()
	g.mu.RLock()
	names := slices.Clone(g.order)
	g.mu.RUnlock()
	for _, name := range names {
		g.mu.RLock()
		v := g.views[name]
		g.mu.RUnlock()
		if v != nil {
			v.sync(g.upstreamsFor(name))
		}
	}
	g.federated.sync(g.upstreamsFor(""))
}

// view returns the endpoint for /mcp ("") or /mcp/<server>.
func (g *Gateway) view(server string) *view {
	if server == "" {
		return g.federated
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.views[server]
}

// principalKey carries the authenticated principal in the request context.
type principalKey struct{}

// originKey carries the caller's address, request id and route (a
// governance.Denial without its error) to tools/call, for the audit log.
type originKey struct{}

func principalFrom(ctx context.Context) *governance.Principal {
	p, _ := ctx.Value(principalKey{}).(*governance.Principal)
	return p
}

// Register mounts /mcp, /mcp/:server and the OAuth protected-resource
// metadata on r.
func (g *Gateway) Register(r fiber.Router) {
	r.Get(metadataPath, g.serveMetadata)
	r.Get(metadataPath+"/mcp", g.serveMetadata)
	r.Get(metadataPath+"/mcp/:server", g.serveMetadata)
	for _, route := range oauthFallbacks {
		r.Add(route.method, route.path, notAnAuthorizationServer)
	}
	r.All("/mcp", g.serve)
	r.All("/mcp/:server", g.serve)
}

// serve is the HTTP edge: size check, authentication, then the view (mcp-go)
// does the protocol; tools/call continues in callTool.
func (g *Gateway) serve(c *fiber.Ctx) error {
	if int64(len(c.BodyRaw())) > g.maxMessageBytes() {
		return rpcError(c, fiber.StatusRequestEntityTooLarge, codeInvalidRequest,
			fmt.Sprintf("message larger than %d bytes", g.maxMessageBytes()))
	}
	key := governance.KeyFromHeaders(c.Get(fiber.HeaderAuthorization), c.Get("x-api-key"))
	p, err := g.gov.Authenticate(key)
	if err != nil {
		return g.unauthorized(c, err, key != "")
	}
	name := c.Params("server")
	v := g.view(name)
	if v != nil && name != "" && !g.mayUse(p, name) {
		// Answered as an unknown server, so a key cannot find out which servers exist; audited as the refusal
		// it is.
		all := name + nameSeparator + "*"
		g.gov.Denied(governance.RequestDenial(c, p, governance.KindTool, all, g.gov.Authorize(p, governance.KindTool, all).Err()))
		v = nil
	}
	if v == nil {
		return rpcError(c, fiber.StatusNotFound, codeInvalidParams, fmt.Sprintf("unknown MCP server %q", name))
	}
	if c.Method() == fiber.MethodDelete {
		// The session ends; mcp-go forgets its own copy of the level too.
		g.logLevels.forget(p.KeyID, c.Get(server.HeaderKeySessionID))
	}
	if v.directCall(c, p) {
		return nil
	}
	c.Context().SetUserValue(principalKey{}, p)
	c.Context().SetUserValue(originKey{}, governance.RequestDenial(c, p, "", "", nil))
	c.Context().SetUserValue(streamKey{}, c.UserContext())
	v.serve(c.Context())
	return nil
}

// mayUse reports whether a key can see /mcp/<server>: some item of it is
// allowed, or a pattern allows the whole server (while it is down and lists
// nothing). Unknown and forbidden servers answer alike.
func (g *Gateway) mayUse(p *governance.Principal, server string) bool {
	if g.gov.Authorize(p, governance.KindTool, server+nameSeparator+"*").Allowed {
		return true
	}
	g.mu.RLock()
	u := g.ups[server]
	g.mu.RUnlock()
	if u == nil {
		return false
	}
	cat := u.cat.Load()
	names := make([]string, 0, len(cat.tools)+len(cat.prompts)+len(cat.resources)+len(cat.templates))
	for _, t := range cat.tools {
		names = append(names, t.Name)
	}
	for _, x := range cat.prompts {
		names = append(names, x.Name)
	}
	for _, x := range cat.resources {
		names = append(names, x.Name)
	}
	for _, x := range cat.templates {
		names = append(names, x.Name)
	}
	for _, n := range names {
		if g.gov.Authorize(p, governance.KindTool, server+nameSeparator+n).Allowed {
			return true
		}
	}
	return false
}

func (g *Gateway) maxMessageBytes() int64 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.cfg.MaxMessageBytes
}

// JSON-RPC error codes used at the HTTP edge.
const (
	codeInvalidRequest = -32600
	codeInvalidParams  = -32602
	codeUnauthorized   = -32001
)

func rpcError(c *fiber.Ctx, status, code int, msg string) error {
	return c.Status(status).JSON(fiber.Map{
		"jsonrpc": "2.0",
		"id":      nil,
		"error":   fiber.Map{"code": code, "message": msg},
	})
}

// unauthorized answers a request whose key was refused. A 401's challenge
// names the metadata of the very resource asked for (/mcp or /mcp/<server>):
// RFC 9728 §3.3 has a client drop metadata reached through the challenge
// unless its resource is the URL it called, and the root metadata declares
// /mcp.
// When the request sent a key, the challenge also says why it was refused
// (RFC 6750 §3): the Codex CLI shows the user this header and nothing of the
// body, so without it "invalid API key" never reaches anyone.
func (g *Gateway) unauthorized(c *fiber.Ctx, err error, sentKey bool) error {
	status, msg := fiber.StatusUnauthorized, "authentication required"
	var ge *governance.Error
	if errors.As(err, &ge) {
		status, msg = ge.HTTPStatus(), ge.Message
		g.gov.Denied(governance.RequestDenial(c, nil, "", "", err))
	}
	if status == fiber.StatusUnauthorized {
		resource := "/mcp"
		if s := c.Params("server"); serverNameRE.MatchString(s) {
			resource += "/" + s
		}
		challenge := fmt.Sprintf(`Bearer resource_metadata="%s%s%s"`, g.baseURL(c), metadataPath, resource)
		if sentKey {
			challenge += `, error="invalid_token", error_description="` + challengeText(msg) + `"`
		}
		c.Set(fiber.HeaderWWWAuthenticate, challenge)
	}
	return rpcError(c, status, codeUnauthorized, msg)
}

// challengeText keeps the characters RFC 6750 §3 allows in error_description
// (printable ASCII but '"' and '\'), so a message cannot break the header.
func challengeText(msg string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, msg)
}
