package app

import (
	"crypto/sha256"
	"crypto/subtle"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
	"github.com/switchboard-gw/switchboard/governance"
)

// mountMetrics serves /metrics: public by default, as Prometheus expects, or, with server.metrics_auth, only to
// a scrape that sends server.metrics_token or the admin key as its Bearer. The series name models, deployments
// (whose ids hold upstream hosts), MCP servers, agents and spend, which a network that reaches the port need
// not read.
func (a *App) mountMetrics(s config.ServerConfig, gov *governance.Governor) {
	serve := adaptor.HTTPHandler(promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{Registry: a.registry}))
	if !s.MetricsAuth {
		a.fiber.Get("/metrics", serve)
		return
	}
	// Compared as hashes, so the comparison takes the same time whatever the length of what was sent.
	var token [sha256.Size]byte
	if s.MetricsToken != "" {
		token = sha256.Sum256([]byte(s.MetricsToken))
	}
	a.fiber.Get("/metrics", func(c *fiber.Ctx) error {
		sent := governance.KeyFromHeaders(c.Get(fiber.HeaderAuthorization), c.Get("x-api-key"))
		if sent != "" && s.MetricsToken != "" {
			if h := sha256.Sum256([]byte(sent)); subtle.ConstantTimeCompare(h[:], token[:]) == 1 {
				return c.Next()
			}
		}
		if sent != "" {
			if p, err := gov.Authenticate(sent); err == nil && p.Admin {
				return c.Next()
			}
		}
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="switchboard metrics"`)
		return c.Status(fiber.StatusUnauthorized).JSON(fiber.Map{"error": fiber.Map{
			"message": "/metrics needs server.metrics_token or the admin key as Bearer (server.metrics_auth)",
			"type":    "authentication_error", "request_id": c.GetRespHeader(fiber.HeaderXRequestID),
		}})
	}, serve)
}
