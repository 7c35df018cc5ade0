package dashboard

import (
	"errors"
	"math"

	"github.com/shopspring/decimal"

	"github.com/switchboard-gw/switchboard/storage"
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
//
// Latency percentiles cannot be added: an amount made of exactly one store
// row keeps that row's, one summed from several rows has none (the fields
// are then left out of the JSON, as they are for a row without calls).
type amount struct {
	CostNanoUSD  int64   `json:"cost_nano_usd"`
	CostUSD      string  `json:"cost_usd"`
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"`
	ErrorRate    float64 `json:"error_rate"` // errors / requests; a ratio, never summed
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	CachedTokens int64   `json:"cached_tokens"`
	LatencyP50NS int64   `json:"latency_p50_ns,omitempty"`
	LatencyP95NS int64   `json:"latency_p95_ns,omitempty"`
	LatencyP99NS int64   `json:"latency_p99_ns,omitempty"`

	rows int // store rows summed in
}

// addRow sums one store row in.
func (a *amount) addRow(r storage.SpendRow) {
	a.merge(amount{CostNanoUSD: r.CostNanoUSD, Requests: r.Requests, Errors: r.Errors, InputTokens: r.InputTokens,
		OutputTokens: r.OutputTokens, CachedTokens: r.CachedTokens, LatencyP50NS: int64(r.LatencyP50),
		LatencyP95NS: int64(r.LatencyP95), LatencyP99NS: int64(r.LatencyP99), rows: 1})
}

// merge sums b in.
func (a *amount) merge(b amount) {
	if a.rows == 0 {
		a.LatencyP50NS, a.LatencyP95NS, a.LatencyP99NS = b.LatencyP50NS, b.LatencyP95NS, b.LatencyP99NS
	}
	a.rows += b.rows
	a.CostNanoUSD += b.CostNanoUSD
	a.Requests += b.Requests
	a.Errors += b.Errors
	a.InputTokens += b.InputTokens
	a.OutputTokens += b.OutputTokens
	a.CachedTokens += b.CachedTokens
}

// finish fills the derived fields once the sums are complete.
func (a *amount) finish() {
	a.CostUSD = formatUSD(a.CostNanoUSD)
	a.ErrorRate = 0
	if a.Requests > 0 {
		a.ErrorRate = float64(a.Errors) / float64(a.Requests)
	}
	if a.rows != 1 {
		a.LatencyP50NS, a.LatencyP95NS, a.LatencyP99NS = 0, 0, 0
	}
}
