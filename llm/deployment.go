package llm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-gw/switchboard/governance"
)

// deployment is one upstream of a model group, built from config. Its
// runtime state lives in st, which survives reloads.
type deployment struct {
	id string // shown in spans and metrics; never holds a secret
	// label names the deployment in what a client reads: its model and place in the config, not the upstream
	// host its id holds, which is the operator's topology.
	label         string
	group         string // the model group it serves
	provider      Provider
	upstreamModel string
	apiKey        string
	chatURL       string
	embeddingsURL string
	responsesURL  string // empty: the provider does not speak the Responses API
	// countTokensURL is Anthropic's token counting endpoint; empty for other providers.
	countTokensURL string
	// account is the provider account the Responses API stores this deployment's responses in: its URL and a
	// digest of its key. Deployments of one account share them, whatever their model or place in the config.
	account     string
	weight      int
	timeout     time.Duration
	maxParallel int
	headers     [][2]string
	// secrets hides the API key and the configured header values in text
	// from the upstream that is relayed to the client.
	secrets *governance.Redactor
	// sendHeaders are credentials plus configured headers, built once for
	// every call but Anthropic-ingress ones, which add the client's version.
	sendHeaders [][2]string
	// quotedModel is upstreamModel as a JSON string, spliced into bodies.
	quotedModel []byte
	attemptName string // the attempt span's name
	price       Price
	priced      bool // false: no configured or built-in price, so calls cost $0
	st          *deploymentState
	okAttempts  prometheus.Counter // see bindMetrics
	// completionTokens sends an Anthropic request's max_tokens upstream as
	// max_completion_tokens; settled at load so no call reads the model name.
	completionTokens bool
}

// deploymentState is what the router learns about a deployment at run time.
type deploymentState struct {
	inFlight atomic.Int64
	latency  atomic.Int64 // EWMA of successful call latency (TTFT for streams), ns
	breaker  breaker
}

// observeLatency folds d into the EWMA with weight 1/5.
func (s *deploymentState) observeLatency(d time.Duration) {
	for {
		old := s.latency.Load()
		next := int64(d)
		if old != 0 {
			next = old + (int64(d)-old)/5
		}
		if s.latency.CompareAndSwap(old, next) {
			return
		}
	}
}

// group is a public model name and its deployments.
type group struct {
	name string
	// chatSpan, embeddingsSpan, responsesSpan and countTokensSpan are the call span names, built once rather
	// than per request.
	chatSpan, embeddingsSpan, responsesSpan, countTokensSpan string
	strategy                                                 Strategy
	deployments                                              []*deployment
	// responses and countTokens are the group as a Responses call that relies on the provider's conversation
	// store and Anthropic's token counting see it: only the deployments that speak them natively. They share
	// their state with the group; only routing reads them.
	responses, countTokens *group
	fallbacks              []string
	ctxFallbacks           []string
	// The metric series of an answered call, looked up once per table by
	// bindMetrics rather than by label values on every call.
	okCalls       prometheus.Counter
	latency, ttft prometheus.Observer
}

// table is one immutable routing configuration; Reload swaps it whole.
type table struct {
	router RouterConfig
	groups map[string]*group
	order  []string // model names in config order, for /v1/models
	// created is when the table was built, the "created" time /v1/models shows.
	created int64
}

// stateKey identifies a deployment across reloads: same group, provider,
// endpoint and model means same upstream, so its cooldown and latency carry over.
func stateKey(groupName string, d DeploymentConfig) string {
	return strings.Join([]string{groupName, string(d.Provider), d.BaseURL, d.Model, d.Deployment, d.APIVersion}, "\x00")
}

func buildTable(cfg Config, old map[string]*deploymentState) (*table, map[string]*deploymentState, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	t := &table{router: cfg.Router.withDefaults(), groups: make(map[string]*group, len(cfg.Models)), created: time.Now().Unix()}
	states := make(map[string]*deploymentState)
	for _, m := range cfg.Models {
		g := &group{name: m.Name, strategy: m.Strategy, fallbacks: m.Fallbacks, ctxFallbacks: m.ContextWindowFallbacks,
			chatSpan: kindChat.spanName(m.Name), embeddingsSpan: kindEmbeddings.spanName(m.Name),
			responsesSpan: kindResponses.spanName(m.Name), countTokensSpan: kindCountTokens.spanName(m.Name)}
		if g.strategy == "" {
			g.strategy = t.router.Strategy
		}
		ids := map[string]int{}
		for i, dc := range m.Deployments {
			d, err := newDeployment(m, dc, t.router)
			if err != nil {
				return nil, nil, err
			}
			d.label = fmt.Sprintf("%s#%d", m.Name, i+1)
			// Two deployments on the same endpoint and model get #2, #3...
			if n := ids[d.id]; n > 0 {
				ids[d.id] = n + 1
				d.id = fmt.Sprintf("%s#%d", d.id, n+1)
			} else {
				ids[d.id] = 1
			}
			d.attemptName = "attempt " + d.id
			key := stateKey(m.Name, dc)
			st := old[key]
			if st == nil {
				st = states[key]
			}
			if st == nil {
				st = &deploymentState{}
			}
			states[key] = st
			d.st = st
			g.deployments = append(g.deployments, d)
		}
		g.responses = g.only(func(d *deployment) bool { return d.responsesURL != "" })
		g.countTokens = g.only(func(d *deployment) bool { return d.countTokensURL != "" })
		t.groups[m.Name] = g
		t.order = append(t.order, m.Name)
	}
	return t, states, nil
}

// only is g reduced to the deployments serves accepts, for routing.
func (g *group) only(serves func(*deployment) bool) *group {
	sub := &group{name: g.name, strategy: g.strategy}
	for _, d := range g.deployments {
		if serves(d) {
			sub.deployments = append(sub.deployments, d)
		}
	}
	return sub
}

// serving is the part of g that can serve req, a call of kind k: all of it but for token counting, which only
// Anthropic has, and a Responses call that keeps or continues a conversation on the provider, or that the
// translation to Anthropic's Messages API refuses (OpenAI's built-in tools), which only openai and azure
// deployments can honour: picking an Anthropic deployment for it would answer 400 where its neighbour serves it.
func (g *group) serving(k callKind, req *request) *group {
	switch {
	case k == kindResponses && len(g.responses.deployments) == len(g.deployments):
		return g
	case k == kindResponses && (req.onProvider() || req.untranslatable() != nil):
		return g.responses
	case k == kindCountTokens:
		return g.countTokens
	}
	return g
}

// warnUnpriced names each deployment with no price: its calls are recorded at $0, so no budget limits them, and a
// platform team reading spend would not otherwise learn why a model costs nothing.
func (t *table) warnUnpriced(log *slog.Logger) {
	for _, name := range t.order {
		for _, d := range t.groups[name].deployments {
			if !d.priced {
				log.Warn("deployment has no price: its calls cost $0 and budgets do not limit them; set models[].pricing (a zero price is taken as meant)",
					"model", name, "deployment", d.id, "upstream_model", d.upstreamModel)
			}
		}
	}
}

// bindMetrics looks up the series every answered call adds to. Building
// them up front also shows each configured model and deployment in
// /metrics from the start, at zero.
func (t *table) bindMetrics(m *metrics) {
	for _, g := range t.groups {
		g.okCalls = m.requests.WithLabelValues(g.name, strconv.Itoa(http.StatusOK))
		g.latency, g.ttft = m.latency.WithLabelValues(g.name), m.ttft.WithLabelValues(g.name)
		for _, d := range g.deployments {
			d.okAttempts = m.attempts.WithLabelValues(d.id, outcomeLabel(outcomeOK))
		}
	}
}

func newDeployment(m ModelConfig, dc DeploymentConfig, r RouterConfig) (*deployment, error) {
	u, err := url.Parse(dc.BaseURL)
	if err != nil {
		return nil, err
	}
	d := &deployment{
		group:         m.Name,
		provider:      dc.Provider,
		upstreamModel: dc.Model,
		apiKey:        dc.APIKey,
		weight:        dc.Weight,
		timeout:       dc.Timeout,
		maxParallel:   dc.MaxParallel,
	}
	if d.upstreamModel == "" {
		d.upstreamModel = m.Name
	}
	for k, v := range dc.Headers {
		d.headers = append(d.headers, [2]string{k, v})
	}
	d.secrets = governance.NewRedactor(append([]string{dc.APIKey}, slices.Collect(maps.Values(dc.Headers))...)...)
	if d.weight == 0 {
		d.weight = 1
	}
	if d.timeout == 0 {
		d.timeout = r.Timeout
	}
	base := strings.TrimRight(dc.BaseURL, "/")
	switch dc.Provider {
	case ProviderAzure:
		d.upstreamModel = dc.Deployment
		d.chatURL, d.embeddingsURL = azureURLs(base, dc.Deployment, dc.APIVersion)
		d.responsesURL = azureResponsesURL(base)
	case ProviderAnthropic:
		d.chatURL = anthropicURL(base)
		d.countTokensURL = d.chatURL + "/count_tokens"
	default:
		d.chatURL, d.embeddingsURL, d.responsesURL = base+"/chat/completions", base+"/embeddings", base+"/responses"
	}
	if d.responsesURL != "" {
		digest := sha256.Sum256([]byte(d.apiKey))
		d.account = d.responsesURL + " " + hex.EncodeToString(digest[:8])
	}
	d.id = u.Host + "/" + d.upstreamModel
	d.completionTokens = dc.MaxTokensField.completionTokens(d.upstreamModel)
	d.quotedModel, _ = json.Marshal(d.upstreamModel)
	d.sendHeaders = append(credentialHeaders(kindChat, nil, d), d.headers...)
	d.price, d.priced, err = deploymentPrice(m, dc, d.upstreamModel)
	return d, err
}

// deploymentPrice: the deployment's own pricing, else the group's, else the
// built-in list price of the upstream model, else free.
// deploymentPrice is the deployment's price, else its group's, else the built-in list price of its upstream model
// or group name. priced is false when none of them has one: the calls then cost $0, which New and Reload warn of.
func deploymentPrice(m ModelConfig, dc DeploymentConfig, upstreamModel string) (p Price, priced bool, err error) {
	for _, pc := range []*PricingConfig{dc.Pricing, m.Pricing} {
		if pc != nil {
			p, ferr := pc.parse(dc.Provider)
			if ferr != nil {
				return Price{}, false, ferr
			}
			return p, true, nil
		}
	}
	for _, name := range []string{upstreamModel, m.Name} {
		if p, ok := builtinPrice(name); ok {
			return p, true, nil
		}
	}
	return Price{}, false, nil
}
