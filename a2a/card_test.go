package a2a_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

// legacyCard is a pure 0.3 card (url + preferredTransport, 0.3-shaped
// security) for an upstream at base.
func legacyCard(base string) string {
	return `{"name":"legacy","description":"a 0.3 agent","version":"1","protocolVersion":"0.3.0",` +
		`"url":"` + base + `","preferredTransport":"JSONRPC",` +
		`"additionalInterfaces":[{"url":"` + base + `","transport":"JSONRPC"}],` +
		`"capabilities":{"streaming":true},"defaultInputModes":["text/plain"],"defaultOutputModes":["text/plain"],` +
		`"skills":[{"id":"echo","name":"Echo","description":"echo","tags":["t"],"security":[{"up":[]}]}],` +
		`"securitySchemes":{"up":{"type":"http","scheme":"bearer"}},"security":[{"up":[]}]}`
}

func TestCardRewrite(t *testing.T) {
	t.Parallel()
	up := startMockAgent(t, mock.A2AOptions{Name: "upstream"})
	h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{
		{Name: "fetched", CardURL: cardURL(up)},
		{Name: "legacy", Card: legacyCard(up.URL)},
	}})
	tests := []struct {
		agent, version string
		v1Shape        bool
	}{
		{"fetched", "1.0", true},
		{"fetched", "", false},
		{"fetched", "0.3", false},
		{"legacy", "1.0", true},
		{"legacy", "0.3", false},
	}
	for _, tt := range tests {
		t.Run(tt.agent+"/"+tt.version, func(t *testing.T) {
			t.Parallel()
			status, hdr, body := h.get("/a2a/"+tt.agent+"/.well-known/agent-card.json", keyAlice, tt.version)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			if !strings.Contains(hdr.Get("Vary"), "A2A-Version") {
				t.Errorf("Vary = %q", hdr.Get("Vary"))
			}
			if strings.Contains(body, up.Addr) {
				t.Errorf("card leaks the upstream address: %s", body)
			}
			endpoint := h.URL + "/a2a/" + tt.agent
			var card struct {
				URL                  *string `json:"url"`
				ProtocolVersion      string  `json:"protocolVersion"`
				SupportedInterfaces  []struct{ URL, ProtocolVersion string }
				AdditionalInterfaces []struct{ URL string }
				SecuritySchemes      map[string]json.RawMessage
			}
			if err := json.Unmarshal([]byte(body), &card); err != nil {
				t.Fatal(err)
			}
			if tt.v1Shape != (card.URL == nil) {
				t.Errorf("1.0 shape = %v, but top-level url present = %v", tt.v1Shape, card.URL != nil)
			}
			if !tt.v1Shape && (*card.URL != endpoint || card.ProtocolVersion != "0.3") {
				t.Errorf("0.3 url = %q, protocolVersion %q", *card.URL, card.ProtocolVersion)
			}
			if len(card.SupportedInterfaces) != 2 {
				t.Errorf("interfaces = %+v", card.SupportedInterfaces)
			}
			for _, iface := range card.SupportedInterfaces {
				if iface.URL != endpoint {
					t.Errorf("interface url = %q, want %q", iface.URL, endpoint)
				}
			}
			for _, iface := range card.AdditionalInterfaces {
				if iface.URL != endpoint {
					t.Errorf("additional interface url = %q, want %q", iface.URL, endpoint)
				}
			}
			if _, ok := card.SecuritySchemes["switchboard"]; !ok || len(card.SecuritySchemes) != 1 {
				t.Errorf("security schemes = %v, want only the gateway's", card.SecuritySchemes)
			}
		})
	}
}

// Without public_url, a forged Host header must not steer card URLs.
func TestCardIgnoresSpoofedHost(t *testing.T) {
	t.Parallel()
	up := startMockAgent(t, mock.A2AOptions{})
	h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "echo", CardURL: cardURL(up)}}})
	req, err := http.NewRequest(http.MethodGet, h.URL+"/a2a/echo/.well-known/agent-card.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "evil.example"
	req.Header.Set("Authorization", "Bearer "+keyAlice)
	req.Header.Set("A2A-Version", "1.0")
	_, _, body := h.do(req)
	if strings.Contains(body, "evil.example") || !strings.Contains(body, h.URL+"/a2a/echo") {
		t.Fatalf("card: %s", body)
	}
}

func TestPublicURLSetsCardBase(t *testing.T) {
	t.Parallel()
	up := startMockAgent(t, mock.A2AOptions{})
	h := startGateway(t, sba2a.Config{PublicURL: "https://gw.example.com/", Agents: []sba2a.AgentConfig{{Name: "echo", CardURL: cardURL(up)}}})
	_, _, body := h.get("/a2a/echo/.well-known/agent-card.json", keyAlice, "1.0")
	if !strings.Contains(body, `"https://gw.example.com/a2a/echo"`) {
		t.Fatalf("card: %s", body)
	}
}

func TestCatalogueListsOnlyAllowedAgents(t *testing.T) {
	t.Parallel()
	h, _, _ := twoAgents(t)
	tests := []struct {
		key  string
		want []string
	}{
		{keyAlice, []string{"echo", "slow"}},
		{keyCarol, nil},
	}
	for _, tt := range tests {
		status, _, body := h.get("/a2a", tt.key, "1.0")
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
		var cat struct {
			Agents []struct {
				Name, URL string
				Card      json.RawMessage
			}
		}
		if err := json.Unmarshal([]byte(body), &cat); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, a := range cat.Agents {
			names = append(names, a.Name)
			if a.URL != h.URL+"/a2a/"+a.Name || !strings.Contains(string(a.Card), a.URL) {
				t.Errorf("entry %s: url %s card %s", a.Name, a.URL, a.Card)
			}
		}
		if strings.Join(names, ",") != strings.Join(tt.want, ",") {
			t.Errorf("catalogue = %v, want %v", names, tt.want)
		}
	}
	if status, _, _ := h.get("/a2a", "", ""); status != http.StatusUnauthorized {
		t.Errorf("catalogue without a key: %d", status)
	}
	if status, _, _ := h.get("/a2a/echo/.well-known/agent-card.json", keyCarol, ""); status != http.StatusNotFound {
		t.Errorf("card for a key without the agent: %d", status)
	}
}

func TestReloadAddsAndRemovesAgents(t *testing.T) {
	t.Parallel()
	up := startMockAgent(t, mock.A2AOptions{})
	one := sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "echo", CardURL: cardURL(up)}}}
	two := sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "echo", CardURL: cardURL(up)}, {Name: "added", CardURL: cardURL(up)}}}
	h := startGateway(t, one)
	cardStatus := func(agent string) int {
		s, _, _ := h.get("/a2a/"+agent+"/.well-known/agent-card.json", keyAlice, "1.0")
		return s
	}
	if got := cardStatus("added"); got != http.StatusNotFound {
		t.Fatalf("before reload: %d", got)
	}
	if err := h.GW.Reload(two); err != nil {
		t.Fatal(err)
	}
	if got := cardStatus("added"); got != http.StatusOK {
		t.Fatalf("after adding: %d", got)
	}
	if err := h.GW.Reload(sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "bad name!"}}}); err == nil {
		t.Fatal("invalid config accepted")
	}
	if got := cardStatus("added"); got != http.StatusOK {
		t.Fatalf("after a rejected reload: %d", got)
	}
	if err := h.GW.Reload(one); err != nil {
		t.Fatal(err)
	}
	if got := cardStatus("added"); got != http.StatusNotFound {
		t.Fatalf("after removing: %d", got)
	}
}

// The workflow: a client calls agent "caller" through the gateway; that
// agent, with the traceparent it received, calls agent "echo" through the
// gateway too. Both spans share the trace, the second a child of the first.
func TestDelegatedCallJoinsTheCallersTrace(t *testing.T) {
	t.Parallel()
	echo := startMockAgent(t, mock.A2AOptions{Name: "echo"})
	var gatewayURL atomic.Value
	caller := startMockAgent(t, mock.A2AOptions{Name: "caller", OnMessage: func(ctx context.Context, text, traceparent string) (string, error) {
		hc := &http.Client{Transport: authTransport{key: keyBob, traceparent: traceparent}}
		card := &a2a.AgentCard{SupportedInterfaces: []*a2a.AgentInterface{{
			URL: gatewayURL.Load().(string) + "/a2a/echo", ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: a2a.Version,
		}}}
		c, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithDefaultsDisabled(), a2aclient.WithJSONRPCTransport(hc))
		if err != nil {
			return "", err
		}
		res, err := c.SendMessage(ctx, textMessage("nested "+text))
		if err != nil {
			return "", err
		}
		return "relayed " + res.(*a2a.Task).Artifacts[0].Parts[0].Text(), nil
	}})
	h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{
		{Name: "caller", CardURL: cardURL(caller)},
		{Name: "echo", CardURL: cardURL(echo)},
	}})
	gatewayURL.Store(h.URL)

	res, err := h.client(keyAlice, "caller", a2a.Version).SendMessage(testCtx(t), textMessage("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if got := artifactText(t, res.(*a2a.Task)); got != "relayed echo: nested hello" {
		t.Fatalf("reply = %q", got)
	}
	outer := h.Sink.waitSpans(t, 1, func(s trace.Span) bool { return s.Name == "invoke_agent caller" })[0]
	inner := h.Sink.waitSpans(t, 1, func(s trace.Span) bool { return s.Name == "invoke_agent echo" })[0]
	if inner.TraceID != outer.TraceID || inner.ParentSpanID != outer.SpanID {
		t.Fatalf("outer %s/%s, inner %s parent %s", outer.TraceID, outer.SpanID, inner.TraceID, inner.ParentSpanID)
	}
	if outer.KeyName != "alice" || inner.KeyName != "bob" {
		t.Fatalf("keys: outer %s, inner %s", outer.KeyName, inner.KeyName)
	}
}

// An upstream whose card offers only 0.3 is reached by clients of both
// versions; a2a-go translates on each side of the gateway.
func TestClientsOfBothVersionsReachA0_3OnlyUpstream(t *testing.T) {
	t.Parallel()
	up := startMockAgent(t, mock.A2AOptions{Name: "upstream"})
	h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "legacy", Card: legacyCard(up.URL)}}})
	for _, v := range versions {
		t.Run(string(v), func(t *testing.T) {
			ctx := testCtx(t)
			c := h.client(keyAlice, "legacy", v)
			res, err := c.SendMessage(ctx, textMessage("old "+string(v)))
			if err != nil {
				t.Fatal(err)
			}
			if got := artifactText(t, res.(*a2a.Task)); got != "echo: old "+string(v) {
				t.Fatalf("artifact = %q", got)
			}
			var last a2a.Event
			for ev, err := range c.SendStreamingMessage(ctx, textMessage("stream")) {
				if err != nil {
					t.Fatal(err)
				}
				last = ev
			}
			if st, ok := last.(*a2a.TaskStatusUpdateEvent); !ok || st.Status.State != a2a.TaskStateCompleted {
				t.Fatalf("last event = %#v", last)
			}
		})
	}
}

// A client that sends no A2A-Version gets the 0.3 card; a2a-go's 1.0 parser
// and its 0.3 parser must both read it, security schemes included.
func TestCardWithoutVersionHeaderParsesInBothVersions(t *testing.T) {
	t.Parallel()
	up := startMockAgent(t, mock.A2AOptions{})
	h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "echo", CardURL: cardURL(up)}}})
	_, _, body := h.get("/a2a/echo/.well-known/agent-card.json", keyAlice, "")
	parsers := map[string]agentcard.Parser{"1.0": agentcard.DefaultCardParser, "0.3": a2av0.NewAgentCardParser()}
	for name, parse := range parsers {
		card, err := parse([]byte(body))
		if err != nil {
			t.Fatalf("%s parser: %v", name, err)
		}
		scheme, ok := card.SecuritySchemes["switchboard"].(a2a.HTTPAuthSecurityScheme)
		if !ok || !strings.EqualFold(scheme.Scheme, "bearer") {
			t.Errorf("%s parser: security schemes %#v", name, card.SecuritySchemes)
		}
		if len(card.SupportedInterfaces) != 2 || card.SupportedInterfaces[0].URL != h.URL+"/a2a/echo" {
			t.Errorf("%s parser: interfaces %+v", name, card.SupportedInterfaces)
		}
	}
}
