package a2a

import (
	"testing"

	"github.com/a2aproject/a2a-go/v2/a2a"
)

func TestParseCardDetectsTheVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw   string
		wantURL     string
		wantVersion a2a.ProtocolVersion
		bad         bool
	}{
		{"1.0", `{"name":"n","supportedInterfaces":[{"url":"http://h:1/rpc","protocolBinding":"JSONRPC","protocolVersion":"1.0"}],` +
			`"securitySchemes":{"s":{"httpAuthSecurityScheme":{"scheme":"bearer"}}}}`, "http://h:1/rpc", "1.0", false},
		{"0.3", `{"name":"n","protocolVersion":"0.3.0","url":"http://h:2/","preferredTransport":"JSONRPC",` +
			`"securitySchemes":{"s":{"type":"http","scheme":"bearer"}}}`, "http://h:2/", "0.3.0", false},
		{"no interface", `{"name":"n"}`, "", "", true},
		{"bad interface url", `{"supportedInterfaces":[{"url":"javascript:x","protocolBinding":"JSONRPC"}]}`, "", "", true},
		{"not an object", `[1]`, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			card, err := parseCard([]byte(tt.raw))
			if tt.bad {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := card.SupportedInterfaces[0]; got.URL != tt.wantURL || got.ProtocolVersion != tt.wantVersion {
				t.Fatalf("interface = %+v", got)
			}
		})
	}
}

func TestRewriteCardLeavesTheUpstreamCardAlone(t *testing.T) {
	t.Parallel()
	up := &a2a.AgentCard{
		Name:                "n",
		SupportedInterfaces: []*a2a.AgentInterface{{URL: "http://up", ProtocolBinding: a2a.TransportProtocolGRPC, ProtocolVersion: "1.0"}},
		Signatures:          []a2a.AgentCardSignature{{Protected: "p", Signature: "s"}},
		Skills:              []a2a.AgentSkill{{ID: "s", SecurityRequirements: a2a.SecurityRequirementsOptions{{"up": nil}}}},
	}
	got := rewriteCard(up, "http://gw/a2a/n", true)
	if got.Signatures != nil || got.Skills[0].SecurityRequirements != nil || len(got.SecurityRequirements) != 1 {
		t.Fatalf("rewritten card keeps upstream auth or signatures: %+v", got)
	}
	for _, iface := range got.SupportedInterfaces {
		if iface.URL != "http://gw/a2a/n" || iface.ProtocolBinding != a2a.TransportProtocolJSONRPC {
			t.Fatalf("interface %+v", iface)
		}
	}
	if up.SupportedInterfaces[0].URL != "http://up" || up.Signatures == nil || up.Skills[0].SecurityRequirements == nil {
		t.Fatal("the upstream card was modified")
	}
}

// Links into the agent's own hosts leave the card; links elsewhere stay.
func TestRewriteCardDropsLinksToTheAgentsHost(t *testing.T) {
	t.Parallel()
	cases := []struct{ link, want string }{
		{"http://agent.internal:9000/docs", ""},
		{"http://AGENT.internal/icon.png", ""},
		{"http://10.0.0.7:8080/org", ""},
		{"https://docs.example.com/agent", "https://docs.example.com/agent"},
		{"", ""},
	}
	for _, tc := range cases {
		up := &a2a.AgentCard{
			Name: "n",
			SupportedInterfaces: []*a2a.AgentInterface{
				{URL: "http://agent.internal:9000/a2a", ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: "1.0"},
				{URL: "grpc://10.0.0.7:50051", ProtocolBinding: a2a.TransportProtocolGRPC, ProtocolVersion: "1.0"},
			},
			DocumentationURL: tc.link, IconURL: tc.link, Provider: &a2a.AgentProvider{Org: "o", URL: tc.link},
		}
		got := rewriteCard(up, "http://gw/a2a/n", true)
		if got.DocumentationURL != tc.want || got.IconURL != tc.want || got.Provider.URL != tc.want || got.Provider.Org != "o" {
			t.Errorf("%q: documentation %q, icon %q, provider %+v; want %q", tc.link, got.DocumentationURL, got.IconURL, got.Provider, tc.want)
		}
		if up.Provider.URL != tc.link {
			t.Errorf("%q: the upstream card's provider was modified", tc.link)
		}
	}
}
