package llm

import (
	"math/bits"
	"strconv"
	"strings"
)

const nanoPerUSD = 1_000_000_000

// Price is what one million tokens cost, in nano-USD. A zero CachedInput
// means cached prompt tokens cost the same as other input tokens.
type Price struct {
	Input, Output, CachedInput int64
}

// Usage is the token count of one call. Input includes Cached, as in
// OpenAI's prompt_tokens.
type Usage struct {
	Input, Output, Cached int64
}

// check rejects negative counts from decoded replies: they would lower the
// tokens charged to the key's limits and the spend rows' token sums.
func (u Usage) check() (Usage, error) {
	if u.Input < 0 || u.Output < 0 || u.Cached < 0 {
		return Usage{}, errUsageShape
	}
	return u, nil
}

// Total is the token count governance limits use.
func (u Usage) Total() int64 { return u.Input + u.Output }

// Cost returns the exact cost in nano-USD, rounded half up once on the whole
// sum so many small calls don't each lose a fraction.
func (p Price) Cost(u Usage) int64 {
	cachedPrice := p.CachedInput
	if cachedPrice == 0 {
		cachedPrice = p.Input
	}
	cached := min(max(u.Cached, 0), max(u.Input, 0))
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
	add(u.Input-cached, p.Input)
	add(cached, cachedPrice)
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
func appendUSD(b []byte, nano int64) []byte {
	u := uint64(nano)
	if nano < 0 {
		b = append(b, '-')
		u = uint64(-nano)
	}
	b = strconv.AppendUint(b, u/nanoPerUSD, 10)
	if frac := u % nanoPerUSD; frac != 0 {
		var f [9]byte
		for i := len(f) - 1; i >= 0; i-- {
			f[i] = byte('0' + frac%10)
			frac /= 10
		}
		end := len(f)
		for f[end-1] == '0' {
			end--
		}
		b = append(append(b, '.'), f[:end]...)
	}
	return b
}

type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func (pc PricingConfig) parse() (Price, *fieldError) {
	var p Price
	for _, f := range []struct {
		name string
		text string
		dst  *int64
	}{
		{"input_per_mtok", pc.InputPerMTok, &p.Input},
		{"output_per_mtok", pc.OutputPerMTok, &p.Output},
		{"cached_input_per_mtok", pc.CachedInputPerMTok, &p.CachedInput},
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

// builtinPrices are list prices (USD per million tokens) of common models,
// used when the config gives none. Keys are prefixes of the upstream model
// name so dated snapshots ("gpt-4o-mini-2024-07-18") match; the longest
// prefix wins.
var builtinPrices = map[string]PricingConfig{
	"gpt-4o":                 {"2.50", "10.00", "1.25"},
	"gpt-4o-mini":            {"0.15", "0.60", "0.075"},
	"gpt-4.1":                {"2.00", "8.00", "0.50"},
	"gpt-4.1-mini":           {"0.40", "1.60", "0.10"},
	"gpt-4.1-nano":           {"0.10", "0.40", "0.025"},
	"gpt-4-turbo":            {"10.00", "30.00", ""},
	"gpt-3.5-turbo":          {"0.50", "1.50", ""},
	"o1":                     {"15.00", "60.00", "7.50"},
	"o1-mini":                {"1.10", "4.40", "0.55"},
	"o3":                     {"2.00", "8.00", "0.50"},
	"o3-mini":                {"1.10", "4.40", "0.55"},
	"o4-mini":                {"1.10", "4.40", "0.275"},
	"text-embedding-3-small": {"0.02", "", ""},
	"text-embedding-3-large": {"0.13", "", ""},
	"text-embedding-ada-002": {"0.10", "", ""},
	"claude-3-haiku":         {"0.25", "1.25", "0.03"},
	"claude-3-5-haiku":       {"0.80", "4.00", "0.08"},
	"claude-haiku-4-5":       {"1.00", "5.00", "0.10"},
	"claude-3-5-sonnet":      {"3.00", "15.00", "0.30"},
	"claude-3-7-sonnet":      {"3.00", "15.00", "0.30"},
	"claude-sonnet-4":        {"3.00", "15.00", "0.30"},
	"claude-opus-4":          {"15.00", "75.00", "1.50"},
}

// builtinPrice finds the list price for an upstream model name.
func builtinPrice(model string) (Price, bool) {
	best := ""
	for prefix := range builtinPrices {
		if strings.HasPrefix(model, prefix) && len(prefix) > len(best) {
			best = prefix
		}
	}
	if best == "" {
		return Price{}, false
	}
	p, err := builtinPrices[best].parse()
	return p, err == nil
}
