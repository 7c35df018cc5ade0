package a2a_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
)

// The extended card a client fetches over JSON-RPC is the agent's, rewritten
// like the public card, and in the shape of the client's version: a 0.3
// client must read a 0.3 card that asks for the gateway key.
func TestExtendedCardInTheCallersVersion(t *testing.T) {
	t.Parallel()
	up := startTaskAgent(t)
	h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "asker", CardURL: up.URL + "/.well-known/agent-card.json"}}})
	endpoint := h.URL + "/a2a/asker"
	tests := []struct {
		version, method string
		// the card's own protocolVersion (0.3) or none (1.0 keeps it per interface)
		cardVersion string
		// where the card names the gateway's bearer scheme
		scheme string
	}{
		{"1.0", "GetExtendedAgentCard", "", `"httpAuthSecurityScheme"`},
		{"0.3", "agent/getAuthenticatedExtendedCard", "0.3", `"type":"http"`},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			_, _, body := h.post("/a2a/asker", keyAlice, tt.version, `{"jsonrpc":"2.0","id":1,"method":"`+tt.method+`"}`)
			var resp struct {
				Result json.RawMessage `json:"result"`
			}
			if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Result == nil {
				t.Fatalf("no card: %s", body)
			}
			var card struct {
				ProtocolVersion     string                     `json:"protocolVersion"`
				URL                 string                     `json:"url"`
				SecuritySchemes     map[string]json.RawMessage `json:"securitySchemes"`
				Skills              []struct{ ID string }      `json:"skills"`
				SupportedInterfaces []struct{ URL string }     `json:"supportedInterfaces"`
			}
			if err := json.Unmarshal(resp.Result, &card); err != nil {
				t.Fatal(err)
			}
			if card.ProtocolVersion != tt.cardVersion {
				t.Errorf("protocolVersion %q, want %q", card.ProtocolVersion, tt.cardVersion)
			}
			if tt.cardVersion != "" && card.URL != endpoint {
				t.Errorf("url %q, want %q", card.URL, endpoint)
			}
			if scheme := card.SecuritySchemes["switchboard"]; !strings.Contains(string(scheme), tt.scheme) {
				t.Errorf("securitySchemes %s, want the gateway's bearer scheme with %s", resp.Result, tt.scheme)
			}
			if len(card.Skills) != 2 || card.Skills[1].ID != extendedSkill {
				t.Errorf("skills %+v, want the extended card's", card.Skills)
			}
			for _, iface := range card.SupportedInterfaces {
				if iface.URL != endpoint {
					t.Errorf("interface at %q, want %q", iface.URL, endpoint)
				}
			}
		})
	}

	// a2a-go's 0.3 client reads it back as a card it can reconnect with.
	t.Run("a2a-go 0.3 client", func(t *testing.T) {
		card, err := h.client(keyAlice, "asker", a2av0.Version).GetExtendedAgentCard(testCtx(t), &a2a.GetExtendedAgentCardRequest{})
		if err != nil {
			t.Fatal(err)
		}
		speaks03 := false
		for _, iface := range card.SupportedInterfaces {
			speaks03 = speaks03 || (iface.URL == endpoint && iface.ProtocolVersion == a2av0.Version)
		}
		if !speaks03 || len(card.SecuritySchemes) == 0 {
			t.Errorf("interfaces %+v, security schemes %v: want a 0.3 interface at the gateway and its key", card.SupportedInterfaces, card.SecuritySchemes)
		}
	})
}
