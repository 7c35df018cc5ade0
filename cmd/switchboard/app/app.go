// Package app builds the whole gateway from a config: one fiber app on one port with every package mounted.
// It is importable so end-to-end tests start the real gateway in-process on a loopback port.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/storage"
)

// Version is set at build time with -ldflags "-X .../cmd/switchboard/app.Version=...".
var Version = "dev"

// App is a running gateway: the HTTP front door, its metrics and the readiness of what it depends on.
type App struct {
	fiber    *fiber.App
	log      *slog.Logger
	level    *slog.LevelVar
	registry *prometheus.Registry
	httpm    *httpMetrics
	streams  *streamLimiter

	cfg      atomic.Pointer[config.Config]
	draining atomic.Bool

	parts components

	mu      sync.Mutex
	checks  []readinessCheck
	closers []func(context.Context) error
}

type readinessCheck struct {
	name  string
	check func(context.Context) error
}

// New builds the gateway. level, when given, is the level the logger obeys; Reload changes it.
func New(cfg *config.Config, log *slog.Logger, level *slog.LevelVar) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if level == nil {
		level = new(slog.LevelVar)
	}
	a := &App{log: log, level: level, registry: prometheus.NewRegistry()}
	a.cfg.Store(cfg)
	a.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "switchboard_build_info",
			Help:        "Always 1; the version label tells which build is running.",
			ConstLabels: prometheus.Labels{"version": Version},
		}, func() float64 { return 1 }),
	)
	a.httpm = newHTTPMetrics(a.registry)

	s := cfg.Server
	a.fiber = fiber.New(fiber.Config{
		AppName:               "switchboard",
		DisableStartupMessage: true,
		BodyLimit:             s.MaxBodyBytes,
		ReadBufferSize:        s.MaxHeaderBytes,
		ReadTimeout:           s.ReadTimeout,
		IdleTimeout:           s.IdleTimeout,
		Concurrency:           s.Concurrency,
		// Streams may run for minutes: a write timeout would cut them; idle and read timeouts bound slow clients.
		WriteTimeout: 0,
		ErrorHandler: a.handleError,
	})
	srv := a.fiber.Server()
	srv.MaxConnsPerIP = s.MaxConnsPerIP
	a.streams = newStreamLimiter(s.MaxConcurrentStreams, s.MaxStreamDuration, a.registry)
	a.streams.prevHook, srv.ConnState = srv.ConnState, a.streams.connState
	// Metrics sit outside recovery so a recovered panic is still counted, as a 500.
	a.fiber.Use(requestID, a.httpm.middleware, a.recoverPanic, a.streams.middleware)
	a.fiber.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	a.fiber.Get("/readyz", a.readyz)
	if err := a.mount(cfg); err != nil {
		// Release what was opened before the failure (the store, the recorder).
		return nil, errors.Join(err, a.close(context.Background()))
	}
	return a, nil
}

// Fiber is the router every package mounts its routes on.
func (a *App) Fiber() *fiber.App { return a.fiber }

// Registry is where packages register their Prometheus metrics.
func (a *App) Registry() *prometheus.Registry { return a.registry }

// Store is where spans, spend and runtime keys live.
func (a *App) Store() storage.Store { return a.parts.store }

// Logger is the gateway's structured logger.
func (a *App) Logger() *slog.Logger { return a.log }

// Config is the config in force.
func (a *App) Config() *config.Config { return a.cfg.Load() }

// AddReadiness makes /readyz answer 503 while check fails.
func (a *App) AddReadiness(name string, check func(context.Context) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks = append(a.checks, readinessCheck{name, check})
}

// OnShutdown registers work to do after the last request drained (flush spans, close stores); it runs in
// reverse order of registration.
func (a *App) OnShutdown(fn func(context.Context) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closers = append(a.closers, fn)
}

// Reload applies a new config and audits the outcome. Fields that need a new listener are reported, not applied.
func (a *App) Reload(cfg *config.Config) error {
	err := a.reload(cfg)
	a.auditReload(err)
	return err
}

// ReloadRejected audits a config file that could not be read, parsed or validated: such a file never reaches
// Reload, and the audit log must still show the attempt. Config errors name fields and environment variables,
// never a secret's value.
func (a *App) ReloadRejected(err error) { a.auditReload(err) }

func (a *App) auditReload(err error) {
	w := a.parts.audit
	if w == nil {
		return
	}
	e := governance.AuditEvent{Time: time.Now().UTC(), Actor: "system", Action: governance.ActionConfigReload,
		Status: governance.AuditOK}
	if err != nil {
		e.Status, e.Detail = governance.AuditFailed, err.Error()
	}
	w.Append(e)
}

func (a *App) reload(cfg *config.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	old := a.cfg.Load()
	for section, changed := range map[string]bool{
		"server":  old.Server != cfg.Server,
		"storage": !reflect.DeepEqual(old.Storage, cfg.Storage),
		"trace":   !reflect.DeepEqual(old.Trace, cfg.Trace),
		// The handler is built once; only its level is a variable.
		"log.format": old.Log.Format != cfg.Log.Format,
	} {
		if changed {
			a.log.Warn("config reload: this section changes only on restart", "section", section)
		}
	}
	if err := a.reloadParts(cfg); err != nil {
		return err
	}
	level, _ := config.ParseLevel(cfg.Log.Level)
	a.level.Set(level)
	a.cfg.Store(cfg)
	return nil
}

// Serve answers requests on ln until ctx ends, then stops accepting and drains: streams that never end by
// themselves are ended at once, other requests and streams may finish until shutdownMargin before
// server.shutdown_timeout, when the streams still running are ended with their protocol's final error event.
// Then the shutdown hooks run (spans flushed, stores closed) with what is left of the timeout, and never less
// than the margin.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	served := make(chan error, 1)
	go func() { served <- a.fiber.Listener(ln) }()
	a.log.Info("switchboard listening", "addr", ln.Addr().String(), "version", Version)

	select {
	case err := <-served:
		// The listener failed under the gateway. Requests on connections it accepted before may still run: they
		// end first (within the shutdown timeout), then what New opened, which holds spans, audit events and stdio
		// servers, is closed.
		closeCtx, cancel := context.WithTimeout(context.Background(), a.cfg.Load().Server.ShutdownTimeout)
		defer cancel()
		a.draining.Store(true)
		drainErr := a.fiber.ShutdownWithContext(closeCtx)
		if drainErr != nil {
			drainErr = fmt.Errorf("drain: %w", drainErr)
		}
		return errors.Join(err, drainErr, a.close(closeCtx))
	case <-ctx.Done():
	}
	a.draining.Store(true)
	timeout := a.cfg.Load().Server.ShutdownTimeout
	margin := shutdownMargin(timeout)
	a.log.Info("shutting down: draining in-flight requests", "timeout", timeout)
	deadline := time.Now().Add(timeout)
	drainCtx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	// Half the margin for a stream to write its final event, the rest for its connection to be closed and its
	// writer to settle before the drain's deadline.
	a.streams.endStreams(false, margin/2)
	endAll := time.AfterFunc(timeout-margin, func() { a.streams.endStreams(true, margin/2) })
	defer endAll.Stop()
	err := a.fiber.ShutdownWithContext(drainCtx)
	if err != nil {
		err = fmt.Errorf("drain: %w", err)
	}
	if serveErr := <-served; serveErr != nil && !errors.Is(serveErr, net.ErrClosed) {
		err = errors.Join(err, serveErr)
	}
	// The span flush must not inherit an exhausted drain: what the streams recorded as they ended would go to
	// the spill instead of the store.
	closeCtx, cancelClose := context.WithTimeout(context.Background(), max(time.Until(deadline), margin))
	defer cancelClose()
	return errors.Join(err, a.close(closeCtx))
}

// shutdownMargin is how long before server.shutdown_timeout a shutdown ends the streams still running: a
// quarter of it, so a short timeout still lets most streams finish by themselves, but at least a second, which
// a stream needs to write its final event and settle and the recorder to flush its spans to the store, and at
// most five seconds, which is ample for that and leaves long timeouts to the streams. A timeout under a second
// ends streams at once.
func shutdownMargin(timeout time.Duration) time.Duration {
	return min(max(timeout/4, time.Second), 5*time.Second, timeout)
}

// Close releases what New opened for a gateway that will not serve (its listener could not be opened): the span
// recorder and audit writer write what they hold, the store closes, MCP sessions end and stdio servers, child
// processes of the gateway, stop. Serve does this itself on its way out.
func (a *App) Close(ctx context.Context) error { return a.close(ctx) }

func (a *App) close(ctx context.Context) error {
	a.mu.Lock()
	closers := a.closers
	a.closers = nil
	a.mu.Unlock()
	var errs []error
	for i := len(closers) - 1; i >= 0; i-- {
		errs = append(errs, closers[i](ctx))
	}
	return errors.Join(errs...)
}

func (a *App) readyz(c *fiber.Ctx) error {
	if a.draining.Load() {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "draining"})
	}
	a.mu.Lock()
	checks := a.checks
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	failing := fiber.Map{}
	for _, rc := range checks {
		if err := rc.check(ctx); err != nil {
			failing[rc.name] = err.Error()
		}
	}
	if len(failing) > 0 {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "not ready", "failing": failing})
	}
	return c.JSON(fiber.Map{"status": "ready"})
}
