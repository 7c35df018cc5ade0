package mcp

import (
	"strings"

	"github.com/gofiber/fiber/v2"
)

// oauthFallbacks are the endpoints an MCP client's OAuth flow falls back to
// at the resource's origin when it finds no authorization server metadata
// (MCP 2025-03-26, "Fallbacks for Servers without Metadata Discovery").
// Claude Code and the Codex CLI go there when /mcp answers 401 to a server
// configured without a key: they register at POST /register first. The
// gateway issues no tokens, but a 404 in its own error shape is not an OAuth
// error either, so they showed "Invalid OAuth error response: ZodError" or
// a raw body instead of what the user has to do.
var oauthFallbacks = []struct{ method, path string }{
	{fiber.MethodPost, "/register"},
	{fiber.MethodGet, "/authorize"},
	{fiber.MethodPost, "/token"},
}

// notAnAuthorizationServer answers an oauthFallbacks endpoint with an OAuth
// error (RFC 6749 §5.2, RFC 7591 §3.2.2), whose error_description the
// clients show, saying how to authenticate instead. It names no "Bearer
// <key>": Claude Code's log redacts what follows "Bearer".
func notAnAuthorizationServer(c *fiber.Ctx) error {
	return c.Status(fiber.StatusNotFound).JSON(fiber.Map{
		"error": "invalid_request",
		"error_description": "Switchboard is not an OAuth authorization server: configure this MCP server with " +
			"a Switchboard API key in its Authorization header",
	})
}

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
