package governance

import (
	"net/http"
	"sync/atomic"
	"testing"
)

func TestErrorKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind   ErrorKind
		status int
		typ    string
	}{
		{Unauthenticated, http.StatusUnauthorized, "authentication_error"},
		{Forbidden, http.StatusForbidden, "permission_error"},
		{RateLimited, http.StatusTooManyRequests, "rate_limit_exceeded"},
		{BudgetExceeded, http.StatusTooManyRequests, "budget_exceeded"},
		{ErrorKind(0), http.StatusInternalServerError, "governance_error"},
	}
	for _, tt := range tests {
		e := &Error{Kind: tt.kind, Message: "m"}
		if e.HTTPStatus() != tt.status || e.Type() != tt.typ || e.Error() != "m" {
			t.Errorf("kind %d: status %d type %q", tt.kind, e.HTTPStatus(), e.Type())
		}
	}
}

// countingCounters wraps MemoryCounters to prove New uses the Counters it is given.
type countingCounters struct {
	*MemoryCounters
	rates atomic.Int64
}

func (c *countingCounters) RateCounter(k CounterKey) RateCounter {
	c.rates.Add(1)
	return c.MemoryCounters.RateCounter(k)
}

func TestWithCounters(t *testing.T) {
	t.Parallel()
	c := &countingCounters{MemoryCounters: NewMemoryCounters()}
	g, _ := newGov(t, Config{Keys: []KeyConfig{{Name: "k", Key: rawKey("k"), Limits: LimitsConfig{RPM: 1}}}}, WithCounters(c))
	if c.rates.Load() == 0 {
		t.Fatal("custom counters not used")
	}
	p := mustAuth(t, g, "k")
	if _, err := g.Reserve(p, Request{Kind: KindModel, Name: "m"}); err != nil {
		t.Fatal(err)
	}
	// The state lives in the given counters: a second Governor on them shares it.
	g2, _ := newGov(t, Config{Keys: []KeyConfig{{Name: "k", Key: rawKey("k"), Limits: LimitsConfig{RPM: 1}}}}, WithCounters(c))
	if _, err := g2.Reserve(mustAuth(t, g2, "k"), Request{Kind: KindModel, Name: "m"}); err == nil {
		t.Fatal("second governor did not see the shared rpm counter")
	}
}
