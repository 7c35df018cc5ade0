package governance

import (
	"errors"
	"testing"
)

func TestAcquireStreamCapsKeyAndTeam(t *testing.T) {
	t.Parallel()
	const (
		capped  = "sk-capped-0123456789abcdef"  // max_streams 2, team t
		capped2 = "sk-capped2-0123456789abcdef" // max_streams 2, team t
		mate    = "sk-mate-0123456789abcdef"    // team t, no limit of its own
		free    = "sk-free-0123456789abcdef"    // no team, no limits
		admin   = "sk-admin-streams-0123456789"
	)
	cfg := Config{Secret: "streams-secret-0123456789", AdminKey: admin,
		Teams: []TeamConfig{{Name: "t", Limits: LimitsConfig{MaxStreams: 3}}},
		Keys: []KeyConfig{
			{Name: "capped", Key: capped, Team: "t", Limits: LimitsConfig{MaxStreams: 2}},
			{Name: "capped2", Key: capped2, Team: "t", Limits: LimitsConfig{MaxStreams: 2}},
			{Name: "mate", Key: mate, Team: "t"},
			{Name: "free", Key: free},
		}}
	g, err := New(cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]*StreamHold{}
	steps := []struct {
		name    string
		key     string // acquire for this key, or
		release string // release this step's hold (twice: a second release gives back nothing)
		rule    string // the refusal's rule; "" admitted
		hold    bool   // admitted with places to give back
	}{
		{name: "a", key: capped, hold: true},
		{name: "b", key: capped, hold: true},
		{name: "over the key's limit", key: capped, rule: "rate_limit.key.max_streams"},
		{name: "c", key: mate, hold: true},
		{name: "over the team's limit, after the key's place was taken", key: capped2, rule: "rate_limit.team.max_streams"},
		{name: "a key without limits", key: free},
		{name: "the admin key", key: admin},
		{name: "an unknown key is left to the handler", key: "sk-nobody-0123456789abcdef"},
		{release: "a"},
		{name: "d", key: capped2, hold: true},
		{release: "b"},
		// The team refusal above gave capped2's key place back, or this would be its third.
		{name: "e", key: capped2, hold: true},
		{name: "the team is full again", key: mate, rule: "rate_limit.team.max_streams"},
		{release: "c"},
		{name: "f", key: mate, hold: true},
	}
	for _, st := range steps {
		if st.release != "" {
			held[st.release].Release()
			held[st.release].Release()
			continue
		}
		h, p, err := g.AcquireStream(st.key, KindTool)
		var ge *Error
		switch {
		case st.rule != "":
			if !errors.As(err, &ge) || ge.Kind != RateLimited || ge.Rule != st.rule || ge.RetryAfter <= 0 || h != nil || p == nil {
				t.Fatalf("%s: hold %v principal %v err %v, want a refusal by %s", st.name, h, p, err, st.rule)
			}
		case err != nil || (h != nil) != st.hold:
			t.Fatalf("%s: hold %v err %v, want admitted (hold %v)", st.name, h, err, st.hold)
		}
		held[st.name] = h
	}
}
