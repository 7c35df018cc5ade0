package a2a

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"
)

// gatewaySchemeName names the gateway's own auth in every served card.
const gatewaySchemeName a2a.SecuritySchemeName = "switchboard"

// parseCard reads an A2A 1.0 card (supportedInterfaces) or a 0.3 card (url,
// preferredTransport, additionalInterfaces). 0.3 cards carry a top-level url
// or protocolVersion, which 1.0 moved into the interfaces; their security
// schemes have a different JSON shape, so the two need different parsers.
func parseCard(raw []byte) (*a2a.AgentCard, error) {
	var probe struct {
		URL             *string `json:"url"`
		ProtocolVersion *string `json:"protocolVersion"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	var card *a2a.AgentCard
	var err error
	if probe.URL != nil || probe.ProtocolVersion != nil {
		card, err = a2av0.NewAgentCardParser()(raw)
	} else {
		card = &a2a.AgentCard{}
		err = json.Unmarshal(raw, card)
	}
	if err != nil {
		return nil, fmt.Errorf("not an agent card: %w", err)
	}
	if err := checkInterfaces(card); err != nil {
		return nil, err
	}
	return card, nil
}

func checkInterfaces(card *a2a.AgentCard) error {
	if len(card.SupportedInterfaces) == 0 {
		return errors.New("card lists no interface")
	}
	for i, iface := range card.SupportedInterfaces {
		if iface == nil {
			return fmt.Errorf("interface %d is null", i)
		}
		if err := checkHTTPURL(iface.URL); err != nil {
			return fmt.Errorf("interface %d url: %w", i, err)
		}
	}
	return nil
}

// rewriteCard returns the card clients see: the upstream's description and
// skills, reachable only through the gateway. The gateway serves JSON-RPC in
// both protocol versions at one URL whatever the upstream speaks, so those
// two interfaces replace the upstream's list (its REST or gRPC endpoints are
// not served here). Signatures covered the upstream's bytes and would no
// longer verify, so they are dropped; the upstream's security schemes are
// replaced by the gateway's bearer key, since the gateway holds the
// upstream credentials itself. push is whether the gateway lets callers
// register push notification webhooks with this agent; without it the card
// does not offer them.
func rewriteCard(up *a2a.AgentCard, endpoint string, push bool) *a2a.AgentCard {
	card := *up
	card.Capabilities.PushNotifications = up.Capabilities.PushNotifications && push
	// Links into the agent's own hosts would show every client where the
	// agent runs; links elsewhere (a docs site, the provider's home page)
	// stay.
	hosts := agentHosts(up)
	if hosts[hostOf(card.DocumentationURL)] {
		card.DocumentationURL = ""
	}
	if hosts[hostOf(card.IconURL)] {
		card.IconURL = ""
	}
	if card.Provider != nil && hosts[hostOf(card.Provider.URL)] {
		provider := *card.Provider
		provider.URL = ""
		card.Provider = &provider
	}
	card.SupportedInterfaces = []*a2a.AgentInterface{
		{URL: endpoint, ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: a2a.Version},
		{URL: endpoint, ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: a2av0.Version},
	}
	card.SecuritySchemes = a2a.NamedSecuritySchemes{
		gatewaySchemeName: a2a.HTTPAuthSecurityScheme{
			Scheme:      "Bearer",
			Description: gatewaySchemeDescription,
		},
	}
	card.SecurityRequirements = a2a.SecurityRequirementsOptions{{gatewaySchemeName: a2a.SecuritySchemeScopes{}}}
	card.Signatures = nil
	card.Skills = make([]a2a.AgentSkill, len(up.Skills))
	for i, s := range up.Skills {
		s.SecurityRequirements = nil
		card.Skills[i] = s
	}
	return &card
}

// agentHosts are the hosts the agent's interfaces are served from.
func agentHosts(card *a2a.AgentCard) map[string]bool {
	hosts := map[string]bool{}
	for _, iface := range card.SupportedInterfaces {
		if iface != nil {
			if h := hostOf(iface.URL); h != "" {
				hosts[h] = true
			}
		}
	}
	return hosts
}

// hostOf is the lowercased host (without port) of an absolute URL, "" for
// anything else.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// renderCard writes the card in the shape the client's A2A-Version asks for.
// Without the header a client is treated as 0.3, as the official JS SDK does;
// the 0.3 shape also lists supportedInterfaces, so 1.0 parsers read it too.
func renderCard(ctx context.Context, card *a2a.AgentCard, version string) ([]byte, error) {
	if isV1(version) {
		return json.Marshal(card)
	}
	producer, ok := a2av0.NewStaticAgentCardProducer(card).(interface {
		CardJSON(context.Context) ([]byte, error)
	})
	if !ok {
		return nil, errors.New("a2a-go's 0.3 card producer no longer renders JSON")
	}
	raw, err := producer.CardJSON(ctx)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, err
	}
	fields["securitySchemes"] = dualSecuritySchemes
	return json.Marshal(fields)
}

// dualSecuritySchemes states the gateway's bearer auth in the 0.3 shape
// ("type": "http") and the 1.0 shape ("httpAuthSecurityScheme") at once.
// Clients that send no A2A-Version get the 0.3 card, and 1.0 parsers (a2a-go's
// default among them) reject a 0.3-only scheme; each parser ignores the
// other's keys.
var dualSecuritySchemes = func() json.RawMessage {
	bearer := map[string]string{"scheme": "Bearer", "description": gatewaySchemeDescription}
	raw, err := json.Marshal(map[a2a.SecuritySchemeName]map[string]any{gatewaySchemeName: {
		"type": "http", "scheme": "Bearer", "description": gatewaySchemeDescription,
		"httpAuthSecurityScheme": bearer,
	}})
	if err != nil {
		panic(err) // a constant value: cannot fail
	}
	return raw
}()

const gatewaySchemeDescription = "Switchboard API key, as Authorization: Bearer <key> or x-api-key: <key>"

// isV1 reports whether an A2A-Version value selects protocol 1.x.
func isV1(version string) bool {
	return version == "1" || strings.HasPrefix(version, "1.")
}

// isV0 reports whether an A2A-Version value selects protocol 0.x (or none).
func isV0(version string) bool {
	return version == "" || strings.HasPrefix(version, "0.")
}

// agentEndpoint is the gateway URL of one agent under base.
func agentEndpoint(base, agent string) string {
	return strings.TrimRight(base, "/") + "/a2a/" + url.PathEscape(agent)
}

// legacyExtendedCardMethod is 0.3's name for GetExtendedAgentCard.
const legacyExtendedCardMethod = "agent/getAuthenticatedExtendedCard"

// withLegacyCard puts card, rendered as the public 0.3 card is, in place of
// the result of a 0.3 extended card answer. a2a-go's 0.3 handler converts
// the card with a simplified mapping that names the first interface's
// version (1.0) as the card's protocolVersion and drops the security
// schemes: a 0.3 client would read a card that speaks another version and
// needs no key. An answer without a result (an error) stays as it is.
func withLegacyCard(answer []byte, card *a2a.AgentCard) []byte {
	var fields map[string]json.RawMessage
	if card == nil || json.Unmarshal(answer, &fields) != nil || fields["result"] == nil {
		return answer
	}
	rendered, err := renderCard(context.Background(), card, string(a2av0.Version))
	if err != nil {
		return answer
	}
	fields["result"] = rendered
	out, err := json.Marshal(fields)
	if err != nil {
		return answer
	}
	return append(out, '\n')
}
