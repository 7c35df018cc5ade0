package llm

import (
	"math/bits"
	"strings"

	"github.com/switchboard-gw/switchboard/trace"
)

// Price is what one million tokens cost, in nano-USD. A zero CachedInput, CacheWrite or CacheWrite1h means
// those tokens cost the same as other input tokens.
type Price struct {
	Input, Output, CachedInput int64
	// CacheWrite and CacheWrite1h are Anthropic's 5-minute and 1-hour prompt cache writes.
	CacheWrite, CacheWrite1h int64
	// Long prices every token of a call whose prompt (Usage.Input) is over LongAbove tokens; nil: one tier.
	Long      *Price
	LongAbove int64
}

// Usage is the token count of one call. Input includes Cached, CacheWrite and CacheWrite1h, as OpenAI's
// prompt_tokens includes cached tokens: they are the parts of the prompt priced apart.
type Usage struct {
	Input, Output, Cached    int64
	CacheWrite, CacheWrite1h int64
}

// check rejects negative counts from decoded replies: they would lower the
// tokens charged to the key's limits and the spend rows' token sums.
func (u Usage) check() (Usage, error) {
	if u.Input < 0 || u.Output < 0 || u.Cached < 0 || u.CacheWrite < 0 || u.CacheWrite1h < 0 {
		return Usage{}, errUsageShape
	}
	return u, nil
}

// Total is the token count governance limits use.
func (u Usage) Total() int64 { return u.Input + u.Output }

// Cost returns the exact cost in nano-USD, rounded half up once on the whole
// sum so many small calls don't each lose a fraction.
func (p Price) Cost(u Usage) int64 {
	if p.Long != nil && u.Input > p.LongAbove {
		return p.Long.Cost(u)
	}
	var hi, lo uint64
	add := func(tokens, price int64) {
		if tokens <= 0 || price <= 0 {
			return
		}
		h, l := bits.Mul64(uint64(tokens), uint64(price))
		var carry uint64
		lo, carry = bits.Add64(lo, l, 0)
		hi += h + carry
	}
	// Each priced part of the prompt is taken out of what is left of it, so parts that claim more than the prompt
	// never bill more tokens than it had.
	plain := max(u.Input, 0)
	for _, part := range [...]struct{ tokens, price int64 }{
		{u.Cached, p.CachedInput}, {u.CacheWrite, p.CacheWrite}, {u.CacheWrite1h, p.CacheWrite1h},
	} {
		n := min(max(part.tokens, 0), plain)
		plain -= n
		if part.price == 0 {
			part.price = p.Input
		}
		add(n, part.price)
	}
	add(plain, p.Input)
	add(u.Output, p.Output)
	const perMTok = 1_000_000
	lo, carry := bits.Add64(lo, perMTok/2, 0)
	hi += carry
	if hi >= perMTok {
		return 1<<63 - 1 // saturate: an absurd count must not wrap into a refund
	}
	q, _ := bits.Div64(hi, lo, perMTok)
	if q > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(q)
}

// FormatUSD renders nano-USD as a decimal USD string without trailing zeros,
// e.g. 1500 -> "0.0000015".
func FormatUSD(nano int64) string {
	var buf [maxUSDLen]byte
	return string(appendUSD(buf[:0], nano))
}

// maxUSDLen fits any int64 nano-USD amount written by appendUSD.
const maxUSDLen = 32

// appendUSD appends FormatUSD's text to b; every JSON reply's cost header is
// written with it from a stack buffer.
func appendUSD(b []byte, nano int64) []byte { return trace.AppendUSD(b, nano) }

type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// parse reads the prices; an anthropic deployment's unset cache write prices are Anthropic's rule for every
// model, 1.25 times the input price for 5-minute writes and twice it for 1-hour ones.
func (pc PricingConfig) parse(provider Provider) (Price, *fieldError) {
	p, err := pc.parseTier(provider)
	if err != nil || pc.LongPrompt == nil {
		return p, err
	}
	lp := pc.LongPrompt
	if lp.AboveTokens <= 0 {
		return Price{}, &fieldError{"long_prompt.above_tokens", "must be a positive token count"}
	}
	long, err := PricingConfig{InputPerMTok: lp.InputPerMTok, OutputPerMTok: lp.OutputPerMTok, CachedInputPerMTok: lp.CachedInputPerMTok,
		CacheWritePerMTok: lp.CacheWritePerMTok, CacheWrite1hPerMTok: lp.CacheWrite1hPerMTok}.parseTier(provider)
	if err != nil {
		return Price{}, &fieldError{"long_prompt." + err.field, err.msg}
	}
	p.Long, p.LongAbove = &long, lp.AboveTokens
	return p, nil
}

func (pc PricingConfig) parseTier(provider Provider) (Price, *fieldError) {
	var p Price
	for _, f := range []struct {
		name string
		text string
		dst  *int64
	}{
		{"input_per_mtok", pc.InputPerMTok, &p.Input},
		{"output_per_mtok", pc.OutputPerMTok, &p.Output},
		{"cached_input_per_mtok", pc.CachedInputPerMTok, &p.CachedInput},
		{"cache_write_per_mtok", pc.CacheWritePerMTok, &p.CacheWrite},
		{"cache_write_1h_per_mtok", pc.CacheWrite1hPerMTok, &p.CacheWrite1h},
	} {
		if f.text == "" {
			continue
		}
		v, ok := parseUSD(f.text)
		if !ok {
			return Price{}, &fieldError{f.name, "must be a non-negative USD amount with at most 9 decimals, e.g. \"0.15\""}
		}
		*f.dst = v
	}
	if provider == ProviderAnthropic {
		if pc.CacheWritePerMTok == "" {
			p.CacheWrite = p.Input + p.Input/4
		}
		if pc.CacheWrite1hPerMTok == "" {
			p.CacheWrite1h = 2 * p.Input
		}
	}
	return p, nil
}

// parseUSD turns a plain decimal ("0.15", "2", "1e-1" is refused) into
// nano-USD exactly.
func parseUSD(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" || len(frac) > 9 || len(whole) > 9 {
		return 0, false
	}
	for _, part := range []string{whole, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return 0, false
			}
		}
	}
	var n int64
	for _, c := range whole {
		n = n*10 + int64(c-'0')
	}
	for i := range 9 {
		n *= 10
		if i < len(frac) {
			n += int64(frac[i] - '0')
		}
	}
	return n, true
}

// builtinPrices are list prices (USD per million tokens) of common models, used when the config gives none. A
// model matches its own name, or its name with a snapshot suffix ("-2024-07-18", "-20241022", "-latest"); never a
// longer name that merely starts with it, since a newer model ("claude-opus-4-5" after "claude-opus-4", "o3-pro"
// after "o3") is often priced differently, and a price that is wrong is worse than none (see deploymentPrice).
// Anthropic's rows carry their 5-minute and 1-hour cache write prices, and Sonnet 4 and 4.5 their long-prompt tier.
var builtinPrices = map[string]PricingConfig{
	"gpt-4o":                 {InputPerMTok: "2.50", OutputPerMTok: "10.00", CachedInputPerMTok: "1.25"},
	"gpt-4o-2024-05-13":      {InputPerMTok: "5.00", OutputPerMTok: "15.00"},
	"gpt-4o-mini":            {InputPerMTok: "0.15", OutputPerMTok: "0.60", CachedInputPerMTok: "0.075"},
	"gpt-4.1":                {InputPerMTok: "2.00", OutputPerMTok: "8.00", CachedInputPerMTok: "0.50"},
	"gpt-4.1-mini":           {InputPerMTok: "0.40", OutputPerMTok: "1.60", CachedInputPerMTok: "0.10"},
	"gpt-4.1-nano":           {InputPerMTok: "0.10", OutputPerMTok: "0.40", CachedInputPerMTok: "0.025"},
	"gpt-4-turbo":            {InputPerMTok: "10.00", OutputPerMTok: "30.00"},
	"gpt-3.5-turbo":          {InputPerMTok: "0.50", OutputPerMTok: "1.50"},
	"gpt-5":                  {InputPerMTok: "1.25", OutputPerMTok: "10.00", CachedInputPerMTok: "0.125"},
	"gpt-5-mini":             {InputPerMTok: "0.25", OutputPerMTok: "2.00", CachedInputPerMTok: "0.025"},
	"gpt-5-nano":             {InputPerMTok: "0.05", OutputPerMTok: "0.40", CachedInputPerMTok: "0.005"},
	"o1":                     {InputPerMTok: "15.00", OutputPerMTok: "60.00", CachedInputPerMTok: "7.50"},
	"o1-mini":                {InputPerMTok: "1.10", OutputPerMTok: "4.40", CachedInputPerMTok: "0.55"},
	"o3":                     {InputPerMTok: "2.00", OutputPerMTok: "8.00", CachedInputPerMTok: "0.50"},
	"o3-mini":                {InputPerMTok: "1.10", OutputPerMTok: "4.40", CachedInputPerMTok: "0.55"},
	"o4-mini":                {InputPerMTok: "1.10", OutputPerMTok: "4.40", CachedInputPerMTok: "0.275"},
	"text-embedding-3-small": {InputPerMTok: "0.02"},
	"text-embedding-3-large": {InputPerMTok: "0.13"},
	"text-embedding-ada-002": {InputPerMTok: "0.10"},
	"claude-3-haiku":         anthropicPrice("0.25", "1.25", "0.03", "0.30", "0.50"),
	"claude-3-5-haiku":       anthropicPrice("0.80", "4.00", "0.08", "1.00", "1.60"),
	"claude-haiku-4-5":       anthropicPrice("1.00", "5.00", "0.10", "1.25", "2.00"),
	"claude-3-5-sonnet":      anthropicPrice("3.00", "15.00", "0.30", "3.75", "6.00"),
	"claude-3-7-sonnet":      anthropicPrice("3.00", "15.00", "0.30", "3.75", "6.00"),
	"claude-sonnet-4":        sonnet4,
	"claude-sonnet-4-0":      sonnet4,
	"claude-sonnet-4-5":      sonnet4,
	"claude-opus-4":          anthropicPrice("15.00", "75.00", "1.50", "18.75", "30.00"),
	"claude-opus-4-0":        anthropicPrice("15.00", "75.00", "1.50", "18.75", "30.00"),
	"claude-opus-4-1":        anthropicPrice("15.00", "75.00", "1.50", "18.75", "30.00"),
	"claude-opus-4-5":        anthropicPrice("5.00", "25.00", "0.50", "6.25", "10.00"),
}

// sonnet4 is Sonnet 4 and 4.5: a prompt over 200K tokens bills the whole call at the long-context rates.
var sonnet4 = func() PricingConfig {
	p := anthropicPrice("3.00", "15.00", "0.30", "3.75", "6.00")
	p.LongPrompt = &LongPromptPricing{AboveTokens: 200_000, InputPerMTok: "6.00", OutputPerMTok: "22.50", CachedInputPerMTok: "0.60",
		CacheWritePerMTok: "7.50", CacheWrite1hPerMTok: "12.00"}
	return p
}()

func anthropicPrice(input, output, cacheRead, cacheWrite, cacheWrite1h string) PricingConfig {
	return PricingConfig{InputPerMTok: input, OutputPerMTok: output, CachedInputPerMTok: cacheRead,
		CacheWritePerMTok: cacheWrite, CacheWrite1hPerMTok: cacheWrite1h}
}

// builtinPrice finds the list price for an upstream model name.
func builtinPrice(model string) (Price, bool) {
	pc, ok := builtinPrices[model]
	if !ok {
		pc, ok = builtinPrices[withoutSnapshot(model)]
	}
	if !ok {
		return Price{}, false
	}
	p, err := pc.parse("")
	return p, err == nil
}

// withoutSnapshot drops a snapshot suffix: "-latest", Anthropic's "-20241022" or OpenAI's "-2024-07-18".
func withoutSnapshot(model string) string {
	if base, ok := strings.CutSuffix(model, "-latest"); ok {
		return base
	}
	digits := func(s string) bool {
		for _, c := range s {
			if c < '0' || c > '9' {
				return false
			}
		}
		return s != ""
	}
	if i := strings.LastIndexByte(model, '-'); i > 0 && len(model)-i-1 == 8 && digits(model[i+1:]) {
		return model[:i]
	}
	if n := len(model); n > 11 && model[n-11] == '-' && model[n-6] == '-' && model[n-3] == '-' &&
		digits(model[n-10:n-6]) && digits(model[n-5:n-3]) && digits(model[n-2:]) {
		return model[:n-11]
	}
	return model
}
