package a2a

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/valyala/fasthttp"
)

const (
	cardFetchTimeout = 10 * time.Second
	maxCardBytes     = 1 << 20
	// retryGap stops a down upstream from being hit by a card fetch on every
	// call while it has no card yet.
	retryGap = 2 * time.Second
)

// upstream is the current view of one agent: its card and a client for it.
type upstream struct {
	card   *a2a.AgentCard
	client *a2aclient.Client
	// sendURL is where the client sends a 1.0 SendMessage when that is a
	// JSON-RPC interface the fast path can forward bytes to ("" otherwise).
	sendURL string
}

// agent is one configured upstream agent.
type agent struct {
	name    string
	cfg     AgentConfig
	cost    int64 // nano-USD per message sent
	secrets *governance.Redactor
	limit   int64 // bytes of one answer (a2a.max_response_bytes)
	http    *http.Client
	send    *fasthttp.Client // the send fast path's, bounded by limit
	log     *slog.Logger

	current atomic.Pointer[upstream]

	fetchMu     sync.Mutex
	lastAttempt time.Time

	stop chan struct{}
	done chan struct{}
}

// registry holds the configured agents; Reload swaps them by name.
type registry struct {
	log       *slog.Logger
	transport http.RoundTripper
	onError   func(agent string)
	limit     int64 // a2a.max_response_bytes of the agents in use

	mu     sync.RWMutex
	agents map[string]*agent
}

func newRegistry(log *slog.Logger, onError func(string)) *registry {
	return &registry{
		log:       log,
		transport: newUpstreamTransport(),
		onError:   onError,
		agents:    make(map[string]*agent),
	}
}

// newUpstreamTransport has no overall timeout: streams may last as long as
// the task, and non-streaming calls are bounded per call by the agent's
// timeout through their context.
func newUpstreamTransport() *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
	}
}

// headerTransport adds the configured upstream headers (its credentials)
// to every request, card fetches included.
type headerTransport struct {
	base    http.RoundTripper
	headers map[string]string
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(t.headers) == 0 {
		return t.base.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	for k, v := range t.headers {
		r.Header.Set(k, v)
	}
	return t.base.RoundTrip(r)
}

func (r *registry) get(name string) *agent {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.agents[name]
}

func (r *registry) names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.agents))
	for n := range r.agents {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// apply makes the registry match cfgs: new and changed agents are built and
// their cards fetched (concurrently, failures logged and retried later),
// removed ones stopped. Unchanged agents keep their card and client, unless
// limit changed: then each is built anew with its current card, which a
// fetched one replaces.
func (r *registry) apply(ctx context.Context, cfgs []AgentConfig, limit int64) {
	r.mu.Lock()
	// Every agent's clients hold the limit: a new one replaces them all.
	relimit := limit != r.limit
	r.limit = limit
	next := make(map[string]*agent, len(cfgs))
	var started, stopped []*agent
	for _, c := range cfgs {
		old, ok := r.agents[c.Name]
		same := ok && sameAgent(old.cfg, c)
		if same && !relimit {
			next[c.Name] = old
			continue
		}
		a := r.newAgent(c)
		if same {
			// Renewed for the limit only: it keeps serving with the card it
			// has if the fetch below fails.
			if up := old.current.Load(); up != nil {
				_ = a.use(ctx, up.card)
			}
		}
		next[c.Name] = a
		started = append(started, a)
	}
	for name, old := range r.agents {
		if next[name] != old {
			stopped = append(stopped, old)
		}
	}
	r.agents = next
	r.mu.Unlock()

	for _, a := range stopped {
		a.close()
	}
	var wg sync.WaitGroup
	for _, a := range started {
		wg.Go(func() {
			if err := a.refresh(ctx); err != nil {
				r.log.Warn("a2a: agent card unavailable; will retry", "agent", a.name, "err", err)
				r.onError(a.name)
			}
		})
	}
	wg.Wait()
	for _, a := range started {
		if a.cfg.CardURL != "" {
			go a.refreshLoop(r.onError)
		} else {
			close(a.done)
		}
	}
}

func (r *registry) close() {
	r.mu.Lock()
	agents := r.agents
	r.agents = map[string]*agent{}
	r.mu.Unlock()
	for _, a := range agents {
		a.close()
	}
}

func sameAgent(a, b AgentConfig) bool {
	if a.CardURL != b.CardURL || a.CostPerCallUSD != b.CostPerCallUSD || a.Refresh != b.Refresh ||
		a.Timeout != b.Timeout || a.PushNotifications != b.PushNotifications || len(a.Headers) != len(b.Headers) {
		return false
	}
	for k, v := range a.Headers {
		if bv, ok := b.Headers[k]; !ok || bv != v {
			return false
		}
	}
	ac, _ := a.inlineCardJSON()
	bc, _ := b.inlineCardJSON()
	return string(ac) == string(bc)
}

// newAgent builds an agent for c; a changed configuration (headers
// included, see sameAgent) gets a new agent, so its redactor always knows
// the headers in use.
func (r *registry) newAgent(c AgentConfig) *agent {
	cost, _ := parseUSD(c.CostPerCallUSD) // Validate has run
	secrets := governance.NewRedactor(slices.Collect(maps.Values(c.Headers))...)
	// Replayed fast-path exchanges go through answerTransport too: their
	// error bodies become a2a-go error strings like any other.
	rt := answerTransport{
		base:    replayTransport{headerTransport{base: r.transport, headers: c.Headers}},
		secrets: secrets,
		limit:   r.limit,
	}
	return &agent{
		name:    c.Name,
		cfg:     c,
		cost:    cost,
		secrets: secrets,
		limit:   r.limit,
		http:    &http.Client{Transport: rt, CheckRedirect: governance.SameOriginRedirect},
		send:    newSendClient(r.limit),
		log:     r.log.With("agent", c.Name),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

func (a *agent) close() {
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	<-a.done
	a.send.CloseIdleConnections()
}

func (a *agent) refreshLoop(onError func(string)) {
	defer close(a.done)
	t := time.NewTicker(a.cfg.refresh())
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), cardFetchTimeout)
			if err := a.refresh(ctx); err != nil {
				a.log.Warn("a2a: card refresh failed; keeping the previous card", "err", err)
				onError(a.name)
			}
			cancel()
		}
	}
}

// upstream returns the agent's card and client, fetching the card first if
// start-up could not (at most once per retryGap).
func (a *agent) upstream(ctx context.Context) (*upstream, error) {
	if u := a.current.Load(); u != nil {
		return u, nil
	}
	a.fetchMu.Lock()
	recent := time.Since(a.lastAttempt) < retryGap
	a.fetchMu.Unlock()
	if recent {
		return nil, errUpstreamUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, cardFetchTimeout)
	defer cancel()
	if err := a.refresh(ctx); err != nil {
		a.log.Warn("a2a: agent card unavailable", "err", err)
		return nil, errUpstreamUnavailable
	}
	return a.current.Load(), nil
}

// refresh loads the card (from card_url or the inline config) and builds a
// client for it.
func (a *agent) refresh(ctx context.Context) error {
	a.fetchMu.Lock()
	defer a.fetchMu.Unlock()
	a.lastAttempt = time.Now()
	raw, err := a.cardJSON(ctx)
	if err != nil {
		return err
	}
	card, err := parseCard(raw)
	if err != nil {
		return err
	}
	return a.use(ctx, card)
}

// use makes card the agent's, with a client over the agent's own HTTP
// client.
func (a *agent) use(ctx context.Context, card *a2a.AgentCard) error {
	client, err := a2aclient.NewFactory(
		a2aclient.WithDefaultsDisabled(),
		a2aclient.WithJSONRPCTransport(a.http),
		a2aclient.WithRESTTransport(a.http),
		a2av0.WithJSONRPCTransport(a2av0.JSONRPCTransportConfig{Client: a.http}),
		a2av0.WithRESTTransport(a2av0.RESTTransportConfig{Client: a.http}),
	).CreateFromCard(ctx, card)
	if err != nil {
		return fmt.Errorf("no usable interface on the card: %w", err)
	}
	a.current.Store(&upstream{card: card, client: client, sendURL: fastSendURL(card)})
	return nil
}

func (a *agent) cardJSON(ctx context.Context) ([]byte, error) {
	if a.cfg.CardURL == "" {
		return a.cfg.inlineCardJSON()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.cfg.CardURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, redactURLError(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("card fetch: HTTP %d", resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxCardBytes+1))
	if err != nil {
		return nil, fmt.Errorf("card fetch: %w", err)
	}
	if len(raw) > maxCardBytes {
		return nil, fmt.Errorf("card larger than %d bytes", maxCardBytes)
	}
	return raw, nil
}

// redactURLError keeps the cause of a failed fetch but drops the URL, whose
// query could hold a token.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("card fetch: %w", ue.Err)
	}
	return fmt.Errorf("card fetch: %w", err)
}
