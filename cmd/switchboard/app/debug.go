package app

import (
	"net/http/pprof"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/switchboard-gw/switchboard/governance"
)

// mountProfiling serves Go's pprof under /admin/debug/pprof for the admin key only: profiles reveal internals
// and a CPU profile costs the server while it runs.
func (a *App) mountProfiling(gov *governance.Governor) {
	admin := func(c *fiber.Ctx) error {
		p, err := gov.Authenticate(governance.KeyFromHeaders(c.Get(fiber.HeaderAuthorization), c.Get("x-api-key")))
		if err != nil || !p.Admin {
			return c.Status(fiber.StatusUnauthorized).JSON(fiber.Map{"error": fiber.Map{
				"message": "the admin key is required", "type": "authentication_error"}})
		}
		return c.Next()
	}
	r := a.fiber.Group("/admin/debug/pprof", admin)
	r.Get("/", adaptor.HTTPHandlerFunc(pprof.Index))
	r.Get("/cmdline", adaptor.HTTPHandlerFunc(pprof.Cmdline))
	r.Get("/profile", adaptor.HTTPHandlerFunc(pprof.Profile))
	r.Get("/symbol", adaptor.HTTPHandlerFunc(pprof.Symbol))
	r.Get("/trace", adaptor.HTTPHandlerFunc(pprof.Trace))
	r.Get("/:name", func(c *fiber.Ctx) error {
		return adaptor.HTTPHandler(pprof.Handler(c.Params("name")))(c)
	})
}
