package governance

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Config is the YAML under the top-level `governance:` key.
type Config struct {
	// AdminKey guards /admin and authenticates as the admin principal.
	AdminKey string `yaml:"admin_key" mapstructure:"admin_key"`
	// Secret keys the HMAC-SHA-256 under which API keys are stored. Changing it
	// invalidates every key_hash and every runtime-created key.
	Secret string       `yaml:"secret" mapstructure:"secret"`
	Orgs   []OrgConfig  `yaml:"orgs" mapstructure:"orgs"`
	Teams  []TeamConfig `yaml:"teams" mapstructure:"teams"`
	Keys   []KeyConfig  `yaml:"keys" mapstructure:"keys"`
	// Redis, when set, shares counters, runtime keys and teams (and A2A task
	// ownership) between replicas; unset, everything lives in this process.
	Redis *RedisConfig `yaml:"redis" mapstructure:"redis"`
}

// OrgConfig is an organisation above teams; it only carries a budget.
type OrgConfig struct {
	Name   string       `yaml:"name" mapstructure:"name" json:"name"`
	Budget BudgetConfig `yaml:"budget" mapstructure:"budget" json:"budget"`
}

// TeamConfig is a team of keys with shared limits, budget and ACLs.
type TeamConfig struct {
	Name   string       `yaml:"name" mapstructure:"name" json:"name"`
	Org    string       `yaml:"org" mapstructure:"org" json:"org,omitempty"`
	Budget BudgetConfig `yaml:"budget" mapstructure:"budget" json:"budget"`
	Limits LimitsConfig `yaml:"limits" mapstructure:"limits" json:"limits"`
	Allow  ACLConfig    `yaml:"allow" mapstructure:"allow" json:"allow"`
	Deny   ACLConfig    `yaml:"deny" mapstructure:"deny" json:"deny"`
}

// KeyConfig declares a virtual API key. Exactly one of Key (the raw key,
// usually written as env:NAME) and KeyHash (see HashKey) is set.
type KeyConfig struct {
	Name    string `yaml:"name" mapstructure:"name"`
	Key     string `yaml:"key" mapstructure:"key"`
	KeyHash string `yaml:"key_hash" mapstructure:"key_hash"`
	Team    string `yaml:"team" mapstructure:"team"`
	User    string `yaml:"user" mapstructure:"user"`
	// Expires is RFC 3339 ("2027-01-31T00:00:00Z") or a UTC date ("2027-01-31").
	Expires  string       `yaml:"expires" mapstructure:"expires"`
	Disabled bool         `yaml:"disabled" mapstructure:"disabled"`
	Allow    ACLConfig    `yaml:"allow" mapstructure:"allow"`
	Deny     ACLConfig    `yaml:"deny" mapstructure:"deny"`
	Limits   LimitsConfig `yaml:"limits" mapstructure:"limits"`
	Budget   BudgetConfig `yaml:"budget" mapstructure:"budget"`
}

// ACLConfig lists names or globs (`*` matches any run of characters) per kind.
// An empty list allows everything; a non-empty list denies what it doesn't match.
type ACLConfig struct {
	Models []string `yaml:"models" mapstructure:"models" json:"models,omitempty"`
	Tools  []string `yaml:"tools" mapstructure:"tools" json:"tools,omitempty"`
	Agents []string `yaml:"agents" mapstructure:"agents" json:"agents,omitempty"`
}

// LimitsConfig holds per-minute and concurrency limits; zero means unlimited.
type LimitsConfig struct {
	RPM         int64 `yaml:"rpm" mapstructure:"rpm" json:"rpm,omitempty"`
	TPM         int64 `yaml:"tpm" mapstructure:"tpm" json:"tpm,omitempty"`
	MaxParallel int64 `yaml:"max_parallel" mapstructure:"max_parallel" json:"max_parallel,omitempty"`
	// MaxStreams caps the streams (LLM, MCP and A2A) held open at once, so
	// one key or team cannot take every server.max_concurrent_streams slot.
	MaxStreams int64 `yaml:"max_streams" mapstructure:"max_streams" json:"max_streams,omitempty"`
	ToolRPM    int64 `yaml:"tool_rpm" mapstructure:"tool_rpm" json:"tool_rpm,omitempty"`
	AgentRPM   int64 `yaml:"agent_rpm" mapstructure:"agent_rpm" json:"agent_rpm,omitempty"`
	// PerModel maps a model name or glob to its own rpm/tpm. All models
	// matching one pattern share its bucket; the most specific pattern applies.
	PerModel map[string]ModelLimits `yaml:"per_model" mapstructure:"per_model" json:"per_model,omitempty"`
}

// ModelLimits is the rpm/tpm of one per_model pattern.
type ModelLimits struct {
	RPM int64 `yaml:"rpm" mapstructure:"rpm" json:"rpm,omitempty"`
	TPM int64 `yaml:"tpm" mapstructure:"tpm" json:"tpm,omitempty"`
}

// BudgetConfig is a spend cap. USD is an exact decimal ("12.5"); empty means
// no cap. Period is daily, weekly, monthly (calendar, UTC) or none; 1d, 7d/1w
// and 30d/1mo are accepted as aliases.
type BudgetConfig struct {
	USD    USD    `yaml:"usd" mapstructure:"usd" json:"usd,omitempty"`
	Period string `yaml:"period" mapstructure:"period" json:"period,omitempty"`
}

// USD is a dollar amount kept as its decimal text so it converts to nano-USD
// exactly. YAML numbers decode into it as written; JSON accepts a number or a string.
type USD string

// NanoUSD parses the amount exactly; more than 9 decimal places is an error.
func (u USD) NanoUSD() (int64, error) {
	s := strings.TrimSpace(string(u))
	if s == "" {
		return 0, nil
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return 0, fmt.Errorf("not a decimal number: %q", s)
	}
	if d.IsNegative() {
		return 0, fmt.Errorf("must not be negative")
	}
	n := d.Shift(9)
	if !n.IsInteger() {
		return 0, fmt.Errorf("more than 9 decimal places: %q", s)
	}
	if n.GreaterThan(decimal.New(maxBudgetNanoUSD, 0)) {
		return 0, fmt.Errorf("too large: %q", s)
	}
	return n.IntPart(), nil
}

// maxBudgetNanoUSD (one billion dollars) keeps every sum of spends far from int64 overflow.
const maxBudgetNanoUSD = 1_000_000_000 * nanoPerUSD

const nanoPerUSD = 1_000_000_000

// FormatUSD renders nano-USD as an exact decimal string ("0.000015").
func FormatUSD(nano int64) string { return decimal.New(nano, -9).String() }

// UnmarshalJSON accepts 12.5 or "12.5".
func (u *USD) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*u = USD(n.String())
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("usd: want a number or a decimal string")
	}
	*u = USD(s)
	return nil
}

// MarshalJSON writes the amount as a JSON number with its exact decimal text.
func (u USD) MarshalJSON() ([]byte, error) {
	nano, err := u.NanoUSD()
	if err != nil {
		return nil, err
	}
	return []byte(FormatUSD(nano)), nil
}

// maxLimit keeps rate-bucket arithmetic (units × 60e9) inside int64.
const maxLimit = 100_000_000

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)

// Validate names the first bad field by its path under `governance:`.
func (c *Config) Validate() error {
	// Every problem is reported, in the order of the file, so that one run of `config validate` shows them all.
	var errs []error
	// A secret set without keys still keys what the gateway signs (MCP session IDs), so it is held to the
	// same length.
	needSecret := c.AdminKey != "" || len(c.Keys) > 0
	if (needSecret || c.Secret != "") && len(c.Secret) < 16 {
		errs = append(errs, fmt.Errorf("secret: must be at least 16 characters (it keys the HMAC of every API key)"))
	}
	if c.AdminKey != "" && len(c.AdminKey) < 16 {
		errs = append(errs, fmt.Errorf("admin_key: must be at least 16 characters"))
	}
	orgs := make(map[string]bool, len(c.Orgs))
	for i, o := range c.Orgs {
		p := fmt.Sprintf("orgs[%d]", i)
		switch {
		case !nameRE.MatchString(o.Name):
			errs = append(errs, fmt.Errorf("%s.name: must match %s", p, nameRE))
		case orgs[o.Name]:
			errs = append(errs, fmt.Errorf("%s.name: duplicate org %q", p, o.Name))
		}
		orgs[o.Name] = true
		errs = append(errs, o.Budget.validate(p+".budget"))
	}
	teams := make(map[string]bool, len(c.Teams))
	for i, t := range c.Teams {
		p := fmt.Sprintf("teams[%d]", i)
		errs = append(errs, t.validate(p, orgs))
		if teams[t.Name] {
			errs = append(errs, fmt.Errorf("%s.name: duplicate team %q", p, t.Name))
		}
		teams[t.Name] = true
	}
	if c.Redis != nil {
		errs = append(errs, c.Redis.Validate())
	}
	names := make(map[string]bool, len(c.Keys))
	hashes := make(map[string]bool, len(c.Keys))
	for i, k := range c.Keys {
		p := fmt.Sprintf("keys[%d]", i)
		errs = append(errs, k.validate(p, teams))
		if names[k.Name] {
			errs = append(errs, fmt.Errorf("%s.name: duplicate key name %q", p, k.Name))
		}
		names[k.Name] = true
		if k.Key == "" && k.KeyHash == "" {
			continue // no key to compare; validate said so
		}
		if _, err := parseKeyHash(k.KeyHash); k.KeyHash != "" && err != nil {
			continue // unreadable, so no key either: every such hash would read as the same zero hash
		}
		h := k.hashHex(c.Secret)
		switch {
		case hashes[h]:
			errs = append(errs, fmt.Errorf("%s: same key as an earlier entry", p))
		case c.AdminKey != "" && h == HashKey(c.Secret, c.AdminKey):
			errs = append(errs, fmt.Errorf("%s.key: must differ from admin_key", p))
		}
		hashes[h] = true
	}
	return errors.Join(errs...)
}

func (t *TeamConfig) validate(p string, orgs map[string]bool) error {
	var errs []error
	if !nameRE.MatchString(t.Name) {
		errs = append(errs, fmt.Errorf("%s.name: must match %s", p, nameRE))
	}
	if t.Org != "" && !orgs[t.Org] {
		errs = append(errs, fmt.Errorf("%s.org: unknown org %q", p, t.Org))
	}
	return errors.Join(append(errs, t.Budget.validate(p+".budget"), t.Limits.validate(p+".limits"),
		t.Allow.validate(p+".allow"), t.Deny.validate(p+".deny"))...)
}

func (k *KeyConfig) validate(p string, teams map[string]bool) error {
	var errs []error
	if !nameRE.MatchString(k.Name) {
		errs = append(errs, fmt.Errorf("%s.name: must match %s", p, nameRE))
	}
	switch {
	case k.Key != "" && k.KeyHash != "":
		errs = append(errs, fmt.Errorf("%s: set key or key_hash, not both", p))
	case k.Key == "" && k.KeyHash == "":
		errs = append(errs, fmt.Errorf("%s.key: required (or key_hash)", p))
	case k.Key != "" && len(k.Key) < 16:
		errs = append(errs, fmt.Errorf("%s.key: must be at least 16 characters", p))
	case k.KeyHash != "":
		if _, err := parseKeyHash(k.KeyHash); err != nil {
			errs = append(errs, fmt.Errorf("%s.key_hash: %v", p, err))
		}
	}
	if k.Team != "" && !teams[k.Team] {
		errs = append(errs, fmt.Errorf("%s.team: unknown team %q", p, k.Team))
	}
	if len(k.User) > 256 {
		errs = append(errs, fmt.Errorf("%s.user: longer than 256 characters", p))
	}
	if _, err := parseExpires(k.Expires); err != nil {
		errs = append(errs, fmt.Errorf("%s.expires: %v", p, err))
	}
	return errors.Join(append(errs, k.Budget.validate(p+".budget"), k.Limits.validate(p+".limits"),
		k.Allow.validate(p+".allow"), k.Deny.validate(p+".deny"))...)
}

func (k *KeyConfig) hashHex(secret string) string {
	if k.KeyHash != "" {
		h, _ := parseKeyHash(k.KeyHash)
		return hex.EncodeToString(h[:])
	}
	return HashKey(secret, k.Key)
}

func (b *BudgetConfig) validate(p string) error {
	var errs []error
	if _, err := b.USD.NanoUSD(); err != nil {
		errs = append(errs, fmt.Errorf("%s.usd: %v", p, err))
	}
	if _, err := parsePeriod(b.Period); err != nil {
		errs = append(errs, fmt.Errorf("%s.period: %v", p, err))
	}
	return errors.Join(errs...)
}

func (l *LimitsConfig) validate(p string) error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int64
	}{{"rpm", l.RPM}, {"tpm", l.TPM}, {"max_parallel", l.MaxParallel}, {"max_streams", l.MaxStreams}, {"tool_rpm", l.ToolRPM}, {"agent_rpm", l.AgentRPM}} {
		if err := checkLimit(f.v); err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %v", p, f.name, err))
		}
	}
	// Map order is random; the config loader sorts what it reports by line.
	for _, pat := range slices.Sorted(maps.Keys(l.PerModel)) {
		m := l.PerModel[pat]
		if err := checkGlob(pat); err != nil {
			errs = append(errs, fmt.Errorf("%s.per_model[%q]: %v", p, pat, err))
		}
		if err := checkLimit(m.RPM); err != nil {
			errs = append(errs, fmt.Errorf("%s.per_model[%q].rpm: %v", p, pat, err))
		}
		if err := checkLimit(m.TPM); err != nil {
			errs = append(errs, fmt.Errorf("%s.per_model[%q].tpm: %v", p, pat, err))
		}
	}
	return errors.Join(errs...)
}

func checkLimit(v int64) error {
	if v < 0 || v > maxLimit {
		return fmt.Errorf("must be between 0 (unlimited) and %d", maxLimit)
	}
	return nil
}

func (a *ACLConfig) validate(p string) error {
	var errs []error
	for _, l := range []struct {
		name string
		v    []string
	}{{"models", a.Models}, {"tools", a.Tools}, {"agents", a.Agents}} {
		for i, g := range l.v {
			if err := checkGlob(g); err != nil {
				errs = append(errs, fmt.Errorf("%s.%s[%d]: %v", p, l.name, i, err))
			}
		}
	}
	return errors.Join(errs...)
}

func checkGlob(g string) error {
	if g == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(g) > 256 {
		return fmt.Errorf("longer than 256 characters")
	}
	return nil
}

func parseExpires(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("want RFC 3339 (2027-01-31T00:00:00Z) or a date (2027-01-31), got %q", s)
}
