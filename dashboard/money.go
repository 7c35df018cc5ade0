package dashboard

import (
	"errors"
	"math"

	"github.com/shopspring/decimal"
)

// nanoPerUSD is how many nano-USD make one USD.
const nanoPerUSD = 1_000_000_000

// formatUSD writes nano-USD as an exact decimal string ("0.000123", "-1.5").
func formatUSD(nano int64) string { return decimal.New(nano, -9).String() }

// parseUSD reads a decimal USD amount exactly; more than nine fractional
// digits cannot be represented in nano-USD and are refused, not rounded.
func parseUSD(s string) (int64, error) {
	v, err := decimal.NewFromString(s)
	if err != nil {
		return 0, errors.New("want a decimal amount in USD")
	}
	n := v.Mul(decimal.NewFromInt(nanoPerUSD))
	if !n.IsInteger() {
		return 0, errors.New("more than 9 decimal places")
	}
	if n.GreaterThan(decimal.NewFromInt(math.MaxInt64)) || n.LessThan(decimal.NewFromInt(math.MinInt64)) {
		return 0, errors.New("out of range")
	}
	return n.IntPart(), nil
}

// amount is the measured part of a spend row or total; cost appears both as
// the exact integer and as its decimal USD string.
type amount struct {
	CostNanoUSD  int64   `json:"cost_nano_usd"`
	CostUSD      string  `json:"cost_usd"`
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"`
	ErrorRate    float64 `json:"error_rate"` // errors / requests; a ratio, never summed
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	CachedTokens int64   `json:"cached_tokens"`
}

func (a *amount) add(cost, requests, errs, in, out, cached int64) {
	a.CostNanoUSD += cost
	a.Requests += requests
	a.Errors += errs
	a.InputTokens += in
	a.OutputTokens += out
	a.CachedTokens += cached
}

// finish fills the derived fields once the sums are complete.
func (a *amount) finish() {
	a.CostUSD = formatUSD(a.CostNanoUSD)
	a.ErrorRate = 0
	if a.Requests > 0 {
		a.ErrorRate = float64(a.Errors) / float64(a.Requests)
	}
}
