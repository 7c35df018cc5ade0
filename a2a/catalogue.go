package a2a

import (
	"encoding/json"
	"strings"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-gw/switchboard/governance"
)

// baseURL is where clients reach the gateway. With public_url unset it is
// the local address the client's connection actually arrived on, never the
// Host header: a spoofed Host could otherwise make the gateway hand out
// cards (possibly cached by a shared proxy) that send other clients, with
// their keys, to a host of the attacker's choosing.
func (g *Gateway) baseURL(c *fiber.Ctx) string {
	if pub := g.config().PublicURL; pub != "" {
		return strings.TrimRight(pub, "/")
	}
	scheme := "http"
	if c.Context().IsTLS() {
		scheme = "https"
	}
	return scheme + "://" + c.Context().LocalAddr().String()
}

// card serves one agent's rewritten card to a key allowed to call it, in
// the shape the client's A2A-Version asks for.
func (g *Gateway) card(c *fiber.Ctx) error {
	name := c.Params("agent")
	p, err := g.gov.Authenticate(governance.KeyFromHeaders(c.Get(fiber.HeaderAuthorization), c.Get("x-api-key")))
	if err != nil {
		g.gov.Denied(governance.RequestDenial(c, nil, governance.KindAgent, name, err))
		return sendError(c, err)
	}
	if d := g.gov.Authorize(p, governance.KindAgent, name); !d.Allowed {
		g.gov.Denied(governance.RequestDenial(c, p, governance.KindAgent, name, d.Err()))
		return sendError(c, d.Err())
	}
	ag := g.agents.get(name)
	if ag == nil {
		return sendError(c, errAgentNotFound)
	}
	up, err := ag.upstream(c.UserContext())
	if err != nil {
		return sendError(c, err)
	}
	body, err := renderCard(c.UserContext(), rewriteCard(up.card, agentEndpoint(g.baseURL(c), name), ag.cfg.PushNotifications), c.Get(a2a.SvcParamVersion))
	if err != nil {
		g.log.Error("a2a: rendering card", "agent", name, "err", err, governance.LogRequestID(c.Context()))
		return sendError(c, a2a.ErrInternalError)
	}
	setCardHeaders(c)
	// The card was redacted as fetched, but not a credential in it that only decoding revealed.
	return c.Send(ag.secrets.Bytes(body))
}

type catalogueEntry struct {
	Name  string          `json:"name"`
	URL   string          `json:"url"`
	Card  json.RawMessage `json:"card,omitempty"`
	Error string          `json:"error,omitempty"`
}

// catalogue lists the agents the key may call, each with its rewritten
// card. An agent whose card has not been fetched yet is listed without one
// (the catalogue never waits on an upstream).
func (g *Gateway) catalogue(c *fiber.Ctx) error {
	p, err := g.gov.Authenticate(governance.KeyFromHeaders(c.Get(fiber.HeaderAuthorization), c.Get("x-api-key")))
	if err != nil {
		g.gov.Denied(governance.RequestDenial(c, nil, "", "", err))
		return sendError(c, err)
	}
	base, version := g.baseURL(c), c.Get(a2a.SvcParamVersion)
	entries := []catalogueEntry{}
	for _, name := range g.agents.names() {
		if !g.gov.Authorize(p, governance.KindAgent, name).Allowed {
			continue
		}
		ag := g.agents.get(name)
		if ag == nil {
			continue // removed by a concurrent reload
		}
		e := catalogueEntry{Name: name, URL: agentEndpoint(base, name)}
		if up := ag.current.Load(); up == nil {
			e.Error = "card unavailable"
		} else if body, err := renderCard(c.UserContext(), rewriteCard(up.card, e.URL, ag.cfg.PushNotifications), version); err != nil {
			e.Error = "card unavailable"
		} else {
			e.Card = ag.secrets.Bytes(body)
		}
		entries = append(entries, e)
	}
	body, err := json.Marshal(struct {
		Agents []catalogueEntry `json:"agents"`
	}{entries})
	if err != nil {
		return sendError(c, a2a.ErrInternalError)
	}
	setCardHeaders(c)
	return c.Send(body)
}

// Cards depend on the caller's key (ACL) and A2A-Version.
func setCardHeaders(c *fiber.Ctx) {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Set(fiber.HeaderVary, "A2A-Version, Authorization, X-Api-Key")
	c.Set(fiber.HeaderCacheControl, "private, max-age=60")
}

func sendError(c *fiber.Ctx, err error) error {
	status, body := errorResponse(nil, err, func(k, v string) { c.Set(k, v) })
	return c.Status(status).Send(body)
}
