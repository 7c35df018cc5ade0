package mcp

import (
	"strings"

	"github.com/gofiber/fiber/v2"
)

// metadataPath is the RFC 9728 well-known location of the protected-resource
// metadata; the resource path may follow it (/.well-known/…/mcp).
const metadataPath = "/.well-known/oauth-protected-resource"

// serveMetadata tells clients that /mcp is a protected resource taking bearer
// tokens (Switchboard keys) in the Authorization header, and which
// authorization servers issue them when any are configured.
func (g *Gateway) serveMetadata(c *fiber.Ctx) error {
	g.mu.RLock()
	servers := append([]string{}, g.cfg.AuthorizationServers...)
	g.mu.RUnlock()
	resource := g.baseURL(c) + "/mcp"
	if s := c.Params("server"); s != "" {
		resource += "/" + s
	}
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	return c.JSON(fiber.Map{
		"resource":                 resource,
		"authorization_servers":    servers,
		"bearer_methods_supported": []string{"header"},
		"resource_name":            "Switchboard MCP gateway",
	})
}

// baseURL is the configured public URL, else the local address the client's
// connection arrived on, as for A2A cards. Never the Host or X-Forwarded-*
// headers, which any client sets: the metadata is publicly cacheable, so a
// shared cache would hand every client a resource on the attacker's host,
// and a 401 would point the client's OAuth discovery there.
func (g *Gateway) baseURL(c *fiber.Ctx) string {
	g.mu.RLock()
	public := g.cfg.PublicURL
	g.mu.RUnlock()
	if public != "" {
		return strings.TrimRight(public, "/")
	}
	scheme := "http"
	if c.Context().IsTLS() {
		scheme = "https"
	}
	return scheme + "://" + c.Context().LocalAddr().String()
}
