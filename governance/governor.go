// Package governance decides, for every model, tool and agent call whatever
// its protocol, who is calling (API keys of teams and orgs), whether they may
// (allow/deny lists), whether they may now (rate and concurrency limits) and
// whether they can afford it (budgets held before the call, settled after).
// It also serves the admin API that manages keys and teams at run time.
package governance

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Governor is the one decision API every protocol calls:
// Authenticate → Authorize → Reserve → Settle.
type Governor struct {
	log      *slog.Logger
	store    Store
	counters Counters
	now      func() time.Time
	metrics  *metrics

	// state is swapped whole on reload and admin changes, so the request path
	// reads one pointer and never locks.
	state atomic.Pointer[snapshot]

	// mu serialises writers: Reload and the admin API.
	mu           sync.Mutex
	cfg          Config
	runtimeKeys  map[string]keyRecord  // by id
	runtimeTeams map[string]teamRecord // by name
	spendSrc     SpendSource           // where RebuildSpend found spend; nil before it ran

	misses missCache // unknown keys recently looked up in a shared store
	// exhausted holds, per budgetKey, the last period whose 100% alert was given.
	exhausted sync.Map

	audit *AuditWriter // nil: nothing is audited
}

// Option adjusts a Governor built by New.
type Option func(*Governor)

// WithCounters replaces the in-memory counters, e.g. with a shared store.
func WithCounters(c Counters) Option { return func(g *Governor) { g.counters = c } }

// WithClock replaces time.Now (tests, simulations).
func WithClock(now func() time.Time) Option { return func(g *Governor) { g.now = now } }

// storeTimeout bounds each store call made by New and the admin API.
const storeTimeout = 10 * time.Second

// New validates cfg, loads runtime-created keys and teams from store (which
// may be nil: then they live in memory only) and registers metrics on reg
// (nil: not registered).
func New(cfg Config, store Store, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Governor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	g := &Governor{
		log:          log,
		store:        store,
		counters:     NewMemoryCounters(),
		now:          time.Now,
		metrics:      m,
		cfg:          cfg,
		runtimeKeys:  map[string]keyRecord{},
		runtimeTeams: map[string]teamRecord{},
	}
	for _, o := range opts {
		o(g)
	}
	if store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		if err := g.loadRecords(ctx); err != nil {
			return nil, err
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.state.Store(g.build(g.log.Warn))
	return g, nil
}

// Reload swaps in a new config atomically. Counters (rate limits, in-flight,
// spend) are keyed by ids that survive reloads, so they carry over. On error
// the old config stays in force.
func (g *Governor) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if cfg.Secret != g.cfg.Secret && len(g.runtimeKeys) > 0 {
		g.log.Warn("governance secret changed: runtime-created keys no longer authenticate until rotated",
			"runtime_keys", len(g.runtimeKeys))
	}
	if !sameRedis(cfg.Redis, g.cfg.Redis) {
		g.log.Warn("governance.redis changed: it applies at the next start")
	}
	g.cfg = cfg
	g.publish(g.build(g.log.Warn))
	return nil
}

func sameRedis(a, b *RedisConfig) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// KeyByName is the id and team of the live key named name, for reads that
// name a key rather than give its id.
func (g *Governor) KeyByName(name string) (id, team string, ok bool) {
	e := g.state.Load().byName[name]
	if e == nil {
		return "", "", false
	}
	return e.rec.ID, e.principal.Team, true
}

// Authenticate maps a raw key to its principal with one HMAC and one map
// lookup. Wrong, missing, expired and disabled keys get an Unauthenticated
// *Error whose message never contains the key.
func (g *Governor) Authenticate(rawKey string) (*Principal, error) {
	p, failure, err := g.identify(rawKey)
	if err != nil {
		g.metrics.authFailures[failure].Inc()
		return nil, err
	}
	return p, nil
}

// identify is Authenticate without the metrics, for a check that runs
// before the handler's own Authenticate, which counts a refused key once.
// failure is the refusal's metric label.
func (g *Governor) identify(rawKey string) (p *Principal, failure string, err *Error) {
	if rawKey == "" {
		return nil, "missing", unauthenticated("missing_key", "missing API key: send Authorization: Bearer <key> or x-api-key")
	}
	s := g.state.Load()
	if len(rawKey) > maxRawKeyLen || s.hasher == nil {
		return nil, "invalid", unauthenticated("unknown_key", "invalid API key")
	}
	h := s.hasher.sum(rawKey)
	if s.admin != nil && subtle.ConstantTimeCompare(h[:], s.adminHash[:]) == 1 {
		return s.admin, "", nil
	}
	e := s.byHash[h]
	if e == nil {
		e = g.lookupMissing(h)
	}
	if e == nil || subtle.ConstantTimeCompare(e.hash[:], h[:]) != 1 {
		return nil, "invalid", unauthenticated("unknown_key", "invalid API key")
	}
	if e.disabled {
		return nil, "disabled", unauthenticated("key_disabled", "API key disabled")
	}
	if !e.expires.IsZero() && !g.now().Before(e.expires) {
		return nil, "expired", unauthenticated("key_expired", "API key expired")
	}
	return &e.principal, "", nil
}

const maxRawKeyLen = 512

// adminKeyID is the admin principal's KeyID; generated ids start with "key_".
const adminKeyID = "admin"

// snapshot is an immutable view of every key, team and org.
type snapshot struct {
	counters  Counters
	hasher    *keyHasher
	byHash    map[[32]byte]*keyEntry
	byID      map[string]*keyEntry
	byName    map[string]*keyEntry
	teams     map[string]*teamEntry
	orgs      map[string]*orgEntry
	admin     *Principal
	adminHash [32]byte
}

type budgetRule struct {
	limit  int64 // nano-USD; 0 = no cap
	period Period
}

type orgEntry struct {
	name   string
	budget budgetRule
	spend  SpendCounter
}

type teamEntry struct {
	name    string
	org     *orgEntry
	acl     acl
	limits  limitSet
	budget  budgetRule
	spend   SpendCounter
	rec     teamRecord
	runtime bool
}

type keyEntry struct {
	principal Principal
	hash      [32]byte
	expires   time.Time
	disabled  bool
	acl       acl
	limits    limitSet
	budget    budgetRule
	spend     SpendCounter
	team      *teamEntry
	rec       keyRecord
	runtime   bool
}

// limitSet is one level's compiled rate limits with their counters resolved;
// a zero limit has a nil counter and is skipped.
type limitSet struct {
	reqLimit       [numKinds]int64
	reqRate        [numKinds]RateCounter
	reqDenial      [numKinds]rateDenial
	tpm            int64
	tokRate        RateCounter
	tokDenial      rateDenial
	maxParallel    int64
	parallel       ConcurrencyCounter
	parallelDenial rateDenial
	maxStreams     int64
	streams        ConcurrencyCounter
	streamDenial   rateDenial
	perModel       []modelLimit  // most specific first
	modelDenial    [2]rateDenial // requests, tokens
}

// rateDenial is what a refusal by one rate or concurrency limit says: the
// client's message and the rule the audit log records.
type rateDenial struct{ msg, rule string }

func newRateDenial(level, what, rule string) rateDenial {
	return rateDenial{msg: "rate limit exceeded: " + level + " " + what, rule: "rate_limit." + level + "." + rule}
}

type modelLimit struct {
	glob             glob
	pattern          string
	rpm, tpm         int64
	rpmRate, tpmRate RateCounter
}

func compileLimits(c Counters, scope Scope, id string, l LimitsConfig) limitSet {
	level := scope.String()
	s := limitSet{
		reqLimit:    [numKinds]int64{l.RPM, l.ToolRPM, l.AgentRPM},
		tpm:         l.TPM,
		maxParallel: l.MaxParallel,
		tokDenial:   newRateDenial(level, "tokens per minute", "tpm"),
		parallelDenial: rateDenial{msg: "rate limit exceeded: too many concurrent requests for this " + level,
			rule: "rate_limit." + level + ".max_parallel"},
		maxStreams: l.MaxStreams,
		streamDenial: rateDenial{msg: "rate limit exceeded: too many concurrent streams for this " + level,
			rule: "rate_limit." + level + ".max_streams"},
		modelDenial: [2]rateDenial{newRateDenial(level, "per-model requests per minute", "model_rpm"),
			newRateDenial(level, "per-model tokens per minute", "model_tpm")},
	}
	for i, n := range s.reqLimit {
		s.reqDenial[i] = newRateDenial(level, requestNoun[i]+" per minute", requestRule[i])
		if n > 0 {
			s.reqRate[i] = c.RateCounter(CounterKey{Scope: scope, Metric: requestMetric[i], ID: id})
		}
	}
	if l.TPM > 0 {
		s.tokRate = c.RateCounter(CounterKey{Scope: scope, Metric: MetricTokens, ID: id})
	}
	if l.MaxParallel > 0 {
		s.parallel = c.ConcurrencyCounter(CounterKey{Scope: scope, Metric: MetricParallel, ID: id})
	}
	if l.MaxStreams > 0 {
		s.streams = c.ConcurrencyCounter(CounterKey{Scope: scope, Metric: MetricStreams, ID: id})
	}
	for p, m := range l.PerModel {
		ml := modelLimit{glob: compileGlob(p, ""), pattern: p, rpm: m.RPM, tpm: m.TPM}
		if m.RPM > 0 {
			ml.rpmRate = c.RateCounter(CounterKey{Scope: scope, Metric: MetricRequests, ID: id, Pattern: p})
		}
		if m.TPM > 0 {
			ml.tpmRate = c.RateCounter(CounterKey{Scope: scope, Metric: MetricTokens, ID: id, Pattern: p})
		}
		s.perModel = append(s.perModel, ml)
	}
	sort.Slice(s.perModel, func(i, j int) bool {
		a, b := s.perModel[i], s.perModel[j]
		if (len(a.glob.parts) == 1) != (len(b.glob.parts) == 1) {
			return len(a.glob.parts) == 1 // exact names beat globs
		}
		if a.glob.literal != b.glob.literal {
			return a.glob.literal > b.glob.literal
		}
		return a.pattern < b.pattern
	})
	return s
}

func (l *limitSet) modelLimit(model string) *modelLimit {
	for i := range l.perModel {
		if l.perModel[i].glob.match(model) {
			return &l.perModel[i]
		}
	}
	return nil
}

func spendCounter(c Counters, scope Scope, id string) SpendCounter {
	return c.SpendCounter(CounterKey{Scope: scope, Metric: MetricSpend, ID: id})
}

func compileBudget(b BudgetConfig) budgetRule {
	// Validate ran before every build, so these parse.
	n, _ := b.USD.NanoUSD()
	p, _ := parsePeriod(b.Period)
	return budgetRule{limit: n, period: p}
}

// build compiles config and runtime records into a snapshot. Runtime records
// that clash with config (same name) or lost their team are skipped, and
// reported to warn, rather than failing the reload. Only a new config can
// cause that, so admin changes pass noWarn. Callers hold g.mu.
func (g *Governor) build(warn func(msg string, args ...any)) *snapshot {
	cfg := g.cfg
	s := &snapshot{
		counters: g.counters,
		byHash:   map[[32]byte]*keyEntry{},
		byID:     map[string]*keyEntry{},
		byName:   map[string]*keyEntry{},
		teams:    map[string]*teamEntry{},
		orgs:     map[string]*orgEntry{},
	}
	if cfg.Secret != "" {
		s.hasher = newKeyHasher(cfg.Secret)
	}
	if cfg.AdminKey != "" {
		admin := &keyEntry{spend: spendCounter(g.counters, ScopeKey, adminKeyID)}
		admin.principal = Principal{KeyID: adminKeyID, KeyName: "admin", Admin: true, entry: admin}
		s.admin = &admin.principal
		s.adminHash = s.hasher.sum(cfg.AdminKey)
	}
	for _, o := range cfg.Orgs {
		s.orgs[o.Name] = &orgEntry{name: o.Name, budget: compileBudget(o.Budget), spend: spendCounter(g.counters, ScopeOrg, o.Name)}
	}
	for _, t := range cfg.Teams {
		s.addTeam(teamRecord{TeamConfig: t}, false)
	}
	for _, name := range sortedKeys(g.runtimeTeams) {
		t := g.runtimeTeams[name]
		if s.teams[t.Name] != nil {
			warn("runtime team shadowed by a config team of the same name; ignoring it", "team", t.Name)
			continue
		}
		if t.Org != "" && s.orgs[t.Org] == nil {
			warn("runtime team's org is no longer configured; the team has no org budget", "team", t.Name, "org", t.Org)
		}
		s.addTeam(t, true)
	}
	for _, k := range cfg.Keys {
		h, _ := parseKeyHash(k.hashHex(cfg.Secret))
		rec := keyRecord{ID: configKeyID(k.Name), Name: k.Name, Team: k.Team, User: k.User, Expires: k.Expires,
			Disabled: k.Disabled, Allow: k.Allow, Deny: k.Deny, Limits: k.Limits, Budget: k.Budget}
		s.addKey(rec, h, false)
	}
	for _, id := range sortedKeys(g.runtimeKeys) {
		rec := g.runtimeKeys[id]
		h, err := parseKeyHash(rec.Hash)
		switch {
		case err != nil:
			warn("runtime key has a malformed stored hash; ignoring it", "key_id", id)
		case s.byName[rec.Name] != nil:
			warn("runtime key shadowed by a config key of the same name; ignoring it", "key_id", id, "key_name", rec.Name)
		case s.byHash[h] != nil || (s.admin != nil && h == s.adminHash):
			warn("runtime key has the same value as another key; ignoring it", "key_id", id)
		case rec.Team != "" && s.teams[rec.Team] == nil:
			warn("runtime key's team no longer exists; the key is inactive", "key_id", id, "team", rec.Team)
		default:
			s.addKey(rec, h, true)
		}
	}
	return s
}

func (s *snapshot) addTeam(t teamRecord, runtime bool) {
	s.teams[t.Name] = &teamEntry{
		name:    t.Name,
		org:     s.orgs[t.Org],
		acl:     compileACL("team", t.Allow, t.Deny),
		limits:  compileLimits(s.counters, ScopeTeam, t.Name, t.Limits),
		budget:  compileBudget(t.Budget),
		spend:   spendCounter(s.counters, ScopeTeam, t.Name),
		rec:     t,
		runtime: runtime,
	}
}

func (s *snapshot) addKey(rec keyRecord, h [32]byte, runtime bool) {
	exp, _ := parseExpires(rec.Expires)
	e := &keyEntry{
		hash:     h,
		expires:  exp,
		disabled: rec.Disabled,
		acl:      compileACL("key", rec.Allow, rec.Deny),
		limits:   compileLimits(s.counters, ScopeKey, rec.ID, rec.Limits),
		budget:   compileBudget(rec.Budget),
		spend:    spendCounter(s.counters, ScopeKey, rec.ID),
		team:     s.teams[rec.Team],
		rec:      rec,
		runtime:  runtime,
	}
	e.principal = Principal{KeyID: rec.ID, KeyName: rec.Name, Team: rec.Team, User: rec.User, entry: e}
	if e.team != nil && e.team.org != nil {
		e.principal.Org = e.team.org.name
	}
	s.byHash[h] = e
	s.byID[rec.ID] = e
	s.byName[rec.Name] = e
}

func noWarn(string, ...any) {}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func hashHex(h [32]byte) string { return hex.EncodeToString(h[:]) }
