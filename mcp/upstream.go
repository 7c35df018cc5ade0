package mcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/switchboard-gw/switchboard/governance"
)

// Reconnect/restart backoff bounds for an upstream that is down.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// errUnavailable is what a call gets while its upstream is not connected.
var errUnavailable = errors.New("upstream unavailable")

// upstream is one configured MCP server: a supervised client connection and
// the catalogue it last listed. A dead connection or process is replaced with
// exponential backoff; calls meanwhile fail fast with errUnavailable.
type upstream struct {
	name     string
	cfg      atomic.Pointer[ServerConfig] // timeout and costs may change on reload
	prices   atomic.Pointer[costs]
	log      *slog.Logger // hides secrets
	onChange func()       // the catalogue changed: views must resync
	http     *http.Client // bounded by maxResponse
	// secrets hides the configured header values in what the upstream
	// answers. Headers are part of sameConnection, so a reload that changes
	// them creates a new upstream and with it a new redactor.
	secrets     *governance.Redactor
	maxResponse *atomic.Int64
	// streamTrips counts answers over maxResponse that no call owned (see
	// limitTransport); a call failing meanwhile failed because of one.
	streamTrips atomic.Uint64

	cli atomic.Pointer[client.Client] // nil while down
	// lostAt is when the last live connection was lost (unix nanoseconds),
	// 0 while connected: calls in the moments after wait for the
	// reconnect (see awaitClient).
	lostAt atomic.Int64
	// rel carries tools/call on a Streamable HTTP connection (nil while
	// down, and for the other transports).
	rel atomic.Pointer[relay]
	cat atomic.Pointer[catalogue]

	refresh chan struct{} // upstream said list_changed
	broken  chan struct{} // a request failed at the transport level

	// settled closes after the first connection attempt ended: with the catalogue published, or failed.
	settled    chan struct{}
	settleOnce sync.Once

	calls inflight

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// newUpstream connects to one server. Its HTTP client shares httpClient's
// connection pool, with answers bounded by maxResponse.
func newUpstream(cfg ServerConfig, log *slog.Logger, httpClient *http.Client, maxResponse *atomic.Int64, onChange func()) *upstream {
	ctx, cancel := context.WithCancel(context.Background())
	secrets := governance.NewRedactor(slices.Collect(maps.Values(cfg.Headers))...)
	// The log hides a stdio server's env values too: they are often
	// credentials, which a failing server may print on stderr. Answers do
	// not, because env also holds the paths and names a tool may rightly
	// answer with.
	logSecrets := governance.NewRedactor(slices.Concat(slices.Collect(maps.Values(cfg.Headers)), slices.Collect(maps.Values(cfg.Env)))...)
	u := &upstream{
		name:        cfg.Name,
		log:         redactLogger(log.With("mcp_server", cfg.Name), logSecrets),
		onChange:    onChange,
		secrets:     secrets,
		maxResponse: maxResponse,
		refresh:     make(chan struct{}, 1),
		broken:      make(chan struct{}, 1),
		settled:     make(chan struct{}),
		ctx:         ctx,
		cancel:      cancel,
		done:        make(chan struct{}),
	}
	u.http = &http.Client{Transport: &limitTransport{base: httpClient.Transport, limit: maxResponse, trips: &u.streamTrips},
		CheckRedirect: governance.SameOriginRedirect}
	u.calls.tokens = map[string]*call{}
	u.setConfig(cfg)
	u.cat.Store(&catalogue{})
	go u.run()
	return u
}

func (u *upstream) setConfig(cfg ServerConfig) {
	p := cfg.costs()
	u.cfg.Store(&cfg)
	u.prices.Store(&p)
}

func (u *upstream) close() {
	u.cancel()
	<-u.done
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (u *upstream) settle() { u.settleOnce.Do(func() { close(u.settled) }) }

// run keeps the upstream connected until close.
func (u *upstream) run() {
	defer close(u.done)
	backoff := minBackoff
	for u.ctx.Err() == nil {
		cli, rel, stopListen, err := u.connect()
		if err != nil {
			u.settle()
			u.log.Warn("mcp upstream connect failed", "err", err, "retry_in", backoff)
			if !sleep(u.ctx, backoff) {
				return
			}
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		backoff = minBackoff
		u.rel.Store(rel)
		u.cli.Store(cli)
		u.lostAt.Store(0)
		u.log.Info("mcp upstream connected", "protocol", cli.ProtocolVersion())
		u.serve(cli)
		u.lostAt.Store(time.Now().UnixNano())
		u.cli.Store(nil)
		u.rel.Store(nil)
		stopListen()
		_ = cli.Close()
		if u.ctx.Err() == nil {
			u.log.Warn("mcp upstream lost; reconnecting")
		}
	}
}

// serve refreshes the catalogue and watches the connection until it breaks.
func (u *upstream) serve(cli *client.Client) {
	// Drain signals that belong to the previous connection.
	select {
	case <-u.broken:
	default:
	}
	loaded := u.reload(cli)
	u.settle()
	if !loaded {
		return
	}
	tick := time.NewTicker(u.cfg.Load().HealthInterval)
	defer tick.Stop()
	for {
		select {
		case <-u.ctx.Done():
			return
		case <-u.broken:
			return
		case <-u.refresh:
			if !u.reload(cli) {
				return
			}
		case <-tick.C:
			// A re-list is the health check: ping is a no-op on the
			// stateless protocol, and servers that never send list_changed
			// still get their catalogue refreshed.
			if !u.reload(cli) {
				return
			}
		}
	}
}

// reload lists the catalogue and publishes it if it changed.
func (u *upstream) reload(cli *client.Client) bool {
	ctx, cancel := context.WithTimeout(u.ctx, u.cfg.Load().Timeout)
	defer cancel()
	cat, err := fetchCatalogue(ctx, cli)
	if err != nil {
		u.log.Warn("mcp upstream list failed", "err", err)
		return false
	}
	if !cat.equal(u.cat.Swap(cat)) {
		u.onChange()
	}
	return true
}

// connect opens and initialises a client, and for Streamable HTTP the relay
// that carries tools/call on the same session. stopListen ends the
// subscription stream that carries list_changed on the stateless protocol.
func (u *upstream) connect() (cli *client.Client, rel *relay, stopListen func(), err error) {
	cfg := u.cfg.Load()
	var tr transport.Interface
	var streamable *transport.StreamableHTTP
	switch {
	case cfg.URL != "" && cfg.transport() == TransportSSE:
		sse, err := transport.NewSSE(cfg.URL,
			transport.WithHTTPClient(u.http),
			transport.WithHeaders(cfg.Headers),
			transport.WithHeaderFunc(headersFromContext),
			transport.WithSSELogger(u.log),
			transport.WithEndpointTimeout(cfg.Timeout),
			// Each request is bounded by its context (the server's timeout
			// for tools/call); the transport's own 60s cap would cut longer
			// ones short.
			transport.WithResponseTimeout(cfg.Timeout),
		)
		if err != nil {
			return nil, nil, nil, err
		}
		// The event stream carries every response: once it is gone the
		// connection is useless.
		sse.SetConnectionLostHandler(func(error) { signal(u.broken) })
		tr = sseTransport{sse, u.secrets}
	case cfg.URL != "":
		h, err := transport.NewStreamableHTTP(cfg.URL,
			transport.WithHTTPBasicClient(u.http),
			transport.WithHTTPHeaders(cfg.Headers),
			transport.WithHTTPHeaderFunc(headersFromContext),
			transport.WithHTTPLogger(u.log),
		)
		if err != nil {
			return nil, nil, nil, err
		}
		tr, streamable = httpTransport{h, u.secrets, cfg.ClientRequests}, h
	default:
		stdio, proc, err := startStdio(cfg, u.maxResponse, u.lineTooLong, u.log)
		if err != nil {
			return nil, nil, nil, err
		}
		tr = stdioTransport{stdio, proc, nil}
	}
	cli = client.NewClient(tr)
	cli.OnNotification(u.onClientNotification)
	// The connection lives as long as u.ctx, not as long as this call.
	if err := cli.Start(u.ctx); err != nil {
		_ = cli.Close() // a stdio server is running already
		return nil, nil, nil, fmt.Errorf("start: %w", err)
	}
	ctx, cancel := context.WithTimeout(u.ctx, cfg.Timeout)
	defer cancel()
	req := mcp.InitializeRequest{}
	req.Params.ClientInfo = mcp.Implementation{Name: "switchboard", Version: "1"}
	if _, err := cli.Initialize(ctx, req); err != nil {
		_ = cli.Close()
		return nil, nil, nil, fmt.Errorf("initialize: %w", err)
	}
	if !mcp.IsModernProtocol(cli.ProtocolVersion()) && cli.GetServerCapabilities().Logging != nil {
		// One session carries every caller's calls, and callers differ in
		// the level they want: take all messages, each caller gets those at
		// its own level (inflight.logMessage). The server's default is
		// often error.
		//lint:ignore SA1019 the session-era call, which 2025-11-25 servers need
		if err := cli.SetLevel(ctx, mcp.SetLevelRequest{Params: mcp.SetLevelParams{Level: mcp.LoggingLevelDebug}}); err != nil {
			u.log.Warn("mcp upstream refused logging/setLevel; its log messages may not reach clients", "err", err)
		}
	}
	if streamable != nil {
		rel = newRelay(cfg.URL, u.http, cfg.Headers, u.secrets, cli.ProtocolVersion(), streamable.GetSessionId())
	}
	stopListen = func() {}
	if mcp.IsModernProtocol(cli.ProtocolVersion()) {
		caps := cli.GetServerCapabilities()
		filter := mcp.SubscriptionFilter{
			ToolsListChanged:     caps.Tools != nil && caps.Tools.ListChanged,
			PromptsListChanged:   caps.Prompts != nil && caps.Prompts.ListChanged,
			ResourcesListChanged: caps.Resources != nil && caps.Resources.ListChanged,
		}
		if !filter.IsEmpty() {
			stop, err := cli.ListenAsync(u.ctx, filter, func(err error) {
				u.log.Warn("mcp upstream subscription ended", "err", err)
				signal(u.broken)
			})
			if err == nil {
				stopListen = stop
			}
		}
	}
	return cli, rel, stopListen, nil
}

// onNotification handles what the upstream pushes: list changes refresh the
// catalogue; progress and log messages go to the callers they concern.
func (u *upstream) onNotification(n mcp.JSONRPCNotification) {
	switch n.Method {
	case mcp.MethodNotificationToolsListChanged, mcp.MethodNotificationPromptsListChanged,
		mcp.MethodNotificationResourcesListChanged:
		signal(u.refresh)
	case string(mcp.MethodNotificationProgress):
		u.calls.progress(n.Params.AdditionalFields)
	case string(mcp.MethodNotificationMessage):
		u.calls.logMessage(n.Params.AdditionalFields)
	}
}

// onClientNotification is onNotification for what mcp-go's client decoded;
// the relay hides secrets in the raw bytes before decoding.
func (u *upstream) onClientNotification(n mcp.JSONRPCNotification) {
	if params, changed := redactValue(u.secrets, n.Params.AdditionalFields); changed {
		n.Params.AdditionalFields = params.(map[string]any)
	}
	u.onNotification(n)
}

// client returns the live client or errUnavailable.
func (u *upstream) client() (*client.Client, error) {
	if cli := u.cli.Load(); cli != nil {
		return cli, nil
	}
	return nil, errUnavailable
}

// reconnectWait bounds how long a call waits for a connection that was
// lost moments ago: a server that restarted is back within milliseconds,
// while one that stays down must fail calls fast.
const reconnectWait = 2 * time.Second

// awaitClient returns a live client other than old (nil: any). It waits,
// at most reconnectWait and ctx, only when a connection was lost less than
// reconnectWait ago or old just failed because its session is gone;
// otherwise an upstream that is down gives errUnavailable at once.
func (u *upstream) awaitClient(ctx context.Context, old *client.Client) (*client.Client, *relay, error) {
	var deadline time.Time
	for {
		// cli is stored after rel and cleared before it: a client seen here
		// comes with its own relay.
		if cli := u.cli.Load(); cli != nil && cli != old {
			return cli, u.rel.Load(), nil
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(reconnectWait)
			if lost := u.lostAt.Load(); old == nil && (lost == 0 || now.Sub(time.Unix(0, lost)) > reconnectWait) {
				return nil, nil, errUnavailable
			}
		}
		if now.After(deadline) {
			return nil, nil, errUnavailable
		}
		select {
		case <-ctx.Done():
			return nil, nil, errUnavailable
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// failed inspects an upstream error: a transport failure means the
// connection is gone and the supervisor must reconnect.
func (u *upstream) failed(err error) {
	var te *transport.Error
	var big *responseTooLargeError
	// An answer over the limit dropped its own HTTP connection; the session
	// is fine (a legacy SSE stream that broke reports itself).
	if errors.As(err, &te) && !errors.As(err, &big) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		signal(u.broken)
	}
}

// lineTooLong is a stdio server's message over mcp.max_response_bytes: its
// transport has stopped reading, so the calls waiting on it fail as answers
// too large, and the supervisor restarts the server.
func (u *upstream) lineTooLong() {
	u.log.Warn("mcp stdio server wrote a message over max_response_bytes; restarting it", "limit", u.maxResponse.Load())
	u.streamTrips.Add(1)
	signal(u.broken)
}

// timeout returns ctx bounded by the server's request timeout.
func (u *upstream) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, u.cfg.Load().Timeout)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// headersKey carries per-request headers for an HTTP upstream (trace context,
// a forwarded client Authorization).
type headersKey struct{}

func withHeaders(ctx context.Context, h map[string]string) context.Context {
	return context.WithValue(ctx, headersKey{}, h)
}

func headersFromContext(ctx context.Context) map[string]string {
	h, _ := ctx.Value(headersKey{}).(map[string]string)
	return h
}

// inflight tracks the tool calls running on one upstream so that its
// progress and log notifications reach the right clients.
type inflight struct {
	mu     sync.Mutex
	seq    uint64
	tokens map[string]*call // gateway progress token -> call
}

// call is one in-flight tool call: where its notifications go.
type call struct {
	token    string            // the token the upstream sees ("" without progress)
	client   mcp.ProgressToken // the token the client chose
	logLevel mcp.LoggingLevel  // the least severe log message the client wants; "" for none
	keyID    string            // the caller's key
	notify   func(method string, params map[string]any)
}

// add registers a call. Each call gets its own token upstream, because two
// clients may pick the same progress token.
func (f *inflight) add(clientToken mcp.ProgressToken, keyID string, logLevel mcp.LoggingLevel, notify func(string, map[string]any)) *call {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	c := &call{token: "sb-" + strconv.FormatUint(f.seq, 10), client: clientToken, keyID: keyID, logLevel: logLevel, notify: notify}
	f.tokens[c.token] = c
	return c
}

func (f *inflight) remove(c *call) {
	f.mu.Lock()
	delete(f.tokens, c.token)
	f.mu.Unlock()
}

func (f *inflight) progress(params map[string]any) {
	tok := fmt.Sprint(params["progressToken"])
	f.mu.Lock()
	c := f.tokens[tok]
	f.mu.Unlock()
	if c == nil || c.client == nil {
		return
	}
	out := make(map[string]any, len(params))
	for k, v := range params {
		out[k] = v
	}
	out["progressToken"] = c.client
	c.notify(string(mcp.MethodNotificationProgress), out)
}

// logMessage relays a log message that no call's answer stream carried (a
// 2025-11-25 session's, an HTTP+SSE or stdio upstream's) to the callers with
// a call in flight on that upstream: nothing ties it to one of them, and only
// they are known to be allowed to see the server. A message may quote a
// call's arguments, so it goes nowhere while calls of more than one key are
// in flight. Each caller gets it if it asked for its level.
func (f *inflight) logMessage(params map[string]any) {
	f.mu.Lock()
	targets := make([]*call, 0, len(f.tokens))
	for _, c := range f.tokens {
		if len(targets) > 0 && c.keyID != targets[0].keyID {
			f.mu.Unlock()
			return
		}
		targets = append(targets, c)
	}
	f.mu.Unlock()
	for _, c := range targets {
		c.logMessage(params)
	}
}

// logMessage sends the caller a log message at or above the level it asked
// for.
func (c *call) logMessage(params map[string]any) {
	level, _ := params["level"].(string)
	if c.logLevel != "" && mcp.LoggingLevel(level).ShouldSendTo(c.logLevel) {
		c.notify(string(mcp.MethodNotificationMessage), params)
	}
}
