package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
	"github.com/switchboard-gw/switchboard/dashboard"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/governance/redisgov"
	"github.com/switchboard-gw/switchboard/llm"
	"github.com/switchboard-gw/switchboard/mcp"
	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/trace"
)

// startupTimeout bounds opening the store and rebuilding spend at start-up; spillReplayWait, within it, bounds
// the wait for spans an earlier run spilled.
const (
	startupTimeout  = 30 * time.Second
	spillReplayWait = 15 * time.Second
)

// components are the packages a gateway is made of, in the order they are built.
type components struct {
	store    storage.Store
	recorder *trace.Recorder
	audit    *governance.AuditWriter
	tracer   *trace.Tracer
	governor *governance.Governor
	llm      *llm.Gateway
	mcp      *mcp.Gateway
	a2a      *a2a.Gateway
}

// mount builds storage, tracing, governance and the protocol gateways from cfg and mounts their routes.
// Shutdown runs in reverse: spans are flushed (or spilled) before the store closes.
func (a *App) mount(cfg *config.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), startupTimeout)
	defer cancel()
	var c components
	var err error

	if c.store, err = storage.Open(ctx, cfg.Storage, a.log); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	a.OnShutdown(func(context.Context) error { return c.store.Close() })
	a.AddReadiness("storage", c.store.Ping)

	traceCfg := cfg.Trace
	if traceCfg.FlushInterval == 0 {
		traceCfg.FlushInterval = cfg.Storage.SpanFlushInterval()
	}
	if c.recorder, err = trace.NewRecorder(traceCfg, c.store, a.registry, a.log); err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	a.OnShutdown(c.recorder.Close)
	c.tracer = trace.NewTracer(c.recorder)

	// Registered after the store, so it is flushed before the store closes.
	if c.audit, err = governance.NewAuditWriter(auditSink{c.store}, a.registry, a.log); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	a.OnShutdown(c.audit.Close)

	var records governance.Store = recordStore{c.store}
	gopts := []governance.Option{governance.WithAudit(c.audit)}
	var owners a2a.OwnerStore
	var shared *redisgov.Shared
	if rc := cfg.Governance.Redis; rc != nil {
		// Several replicas: counters, runtime keys and teams, and A2A task owners live in Redis.
		if shared, err = redisgov.Open(ctx, *rc, a.log, a.registry); err != nil {
			return fmt.Errorf("governance.redis: %w", err)
		}
		a.OnShutdown(shared.Close)
		a.AddReadiness("redis", shared.Ping)
		records = shared.Store()
		gopts = append(gopts, governance.WithCounters(shared.Counters()))
		owners = shared.Owners(cfg.A2AConfig().TaskTTL)
	}
	if c.governor, err = governance.New(cfg.Governance, records, a.log, a.registry, gopts...); err != nil {
		return fmt.Errorf("governance: %w", err)
	}
	a.streams.gov = c.governor
	// Spans spilled by an earlier run (store down, process killed) hold spend the store has not seen yet: let the
	// recorder replay them first, or a restart forgets that spend.
	waitCtx, stopWaiting := context.WithTimeout(ctx, spillReplayWait)
	for c.recorder.Stats().SpillBytes > 0 && waitCtx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	stopWaiting()
	if n := c.recorder.Stats().SpillBytes; n > 0 {
		a.log.Warn("spend rebuilt before every spilled span was replayed: budgets undercount until the next restart", "spill_bytes", n)
	}
	// With Redis this only seeds the periods Redis does not count yet: its counters are the truth.
	if err := c.governor.RebuildSpend(ctx, spendSource{c.store}); err != nil {
		return fmt.Errorf("governance: rebuilding spend from storage: %w", err)
	}
	if shared != nil {
		watchCtx, stopWatch := context.WithCancel(context.Background())
		watched := make(chan struct{})
		go func() { defer close(watched); shared.Store().Watch(watchCtx, c.governor.ReloadRecords) }()
		a.OnShutdown(func(context.Context) error { stopWatch(); <-watched; return nil })
	}

	if c.llm, err = llm.New(cfg.LLM(), llm.Deps{Governor: c.governor, Tracer: c.tracer, Logger: a.log, Metrics: a.registry}); err != nil {
		return fmt.Errorf("llm: %w", err)
	}
	if c.mcp, err = mcp.New(cfg.MCPConfig(), mcp.Deps{Governor: c.governor, Tracer: c.tracer, Logger: a.log, Metrics: a.registry,
		SessionSecret: mcpSessionSecret(cfg.Governance.Secret)}); err != nil {
		return fmt.Errorf("mcp: %w", err)
	}
	a.OnShutdown(func(context.Context) error { return c.mcp.Close() })
	a.AddReadiness("mcp", c.mcp.Ready)
	if c.a2a, err = a2a.New(cfg.A2AConfig(), a2a.Deps{Governor: c.governor, Tracer: c.tracer, Logger: a.log, Metrics: a.registry, Owners: owners}); err != nil {
		return fmt.Errorf("a2a: %w", err)
	}
	a.OnShutdown(func(context.Context) error { return c.a2a.Close() })

	a.mountMetrics(cfg.Server, c.governor)
	a.mountProfiling(c.governor)
	dashboard.New(dashboard.Deps{Store: c.store, Governor: c.governor, Logger: a.log, PublicURL: cfg.Server.PublicURL}).Register(a.fiber)
	c.governor.RegisterAdmin(a.fiber.Group("/admin"))
	c.llm.Register(a.fiber)
	c.mcp.Register(a.fiber)
	c.a2a.Register(a.fiber)
	a.parts = c
	return nil
}

// mcpSessionSecret keys MCP session IDs with governance.secret, which every replica shares, so that any replica
// serves a session another one opened. A key derived for that use alone: the secret itself keys the stored API keys.
// Without a secret the MCP gateway keys them with random bytes of its own.
func mcpSessionSecret(secret string) []byte {
	if secret == "" {
		return nil
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("switchboard mcp session ids"))
	return mac.Sum(nil)
}

// reload hands each package its part of a new config; the first refusal stops the reload.
func (a *App) reloadParts(cfg *config.Config) error {
	if err := a.parts.governor.Reload(cfg.Governance); err != nil {
		return fmt.Errorf("governance: %w", err)
	}
	if err := a.parts.llm.Reload(cfg.LLM()); err != nil {
		return fmt.Errorf("llm: %w", err)
	}
	if err := a.parts.mcp.Reload(cfg.MCPConfig()); err != nil {
		return fmt.Errorf("mcp: %w", err)
	}
	if err := a.parts.a2a.Reload(cfg.A2AConfig()); err != nil {
		return fmt.Errorf("a2a: %w", err)
	}
	return nil
}

// recordStore adapts storage records to governance's own record type, so governance needs no storage import.
type recordStore struct{ s storage.Store }

func (r recordStore) PutRecord(ctx context.Context, kind, id string, data []byte) error {
	return r.s.PutRecord(ctx, kind, id, data)
}

func (r recordStore) DeleteRecord(ctx context.Context, kind, id string) error {
	return r.s.DeleteRecord(ctx, kind, id)
}

func (r recordStore) ListRecords(ctx context.Context, kind string) ([]governance.Record, error) {
	recs, err := r.s.ListRecords(ctx, kind)
	if err != nil {
		return nil, err
	}
	out := make([]governance.Record, len(recs))
	for i, rec := range recs {
		out[i] = governance.Record{Kind: rec.Kind, ID: rec.ID, Data: rec.Data, UpdatedAt: rec.UpdatedAt}
	}
	return out, nil
}

// auditSink adapts storage's audit table to governance's event type.
type auditSink struct{ s storage.Store }

func (a auditSink) AppendAudit(ctx context.Context, events []governance.AuditEvent) error {
	out := make([]storage.AuditEvent, len(events))
	for i, e := range events {
		out[i] = storage.AuditEvent{Time: e.Time, Actor: e.Actor, ActorName: e.ActorName, Team: e.Team, Action: e.Action,
			Target: e.Target, Rule: e.Rule, Status: e.Status, RemoteAddr: e.RemoteAddr, RequestID: e.RequestID, Detail: e.Detail}
	}
	return a.s.AppendAudit(ctx, out)
}

type spendSource struct{ s storage.Store }

func (s spendSource) SpendSince(ctx context.Context, scope, id string, since time.Time) (int64, error) {
	return s.s.SpendSince(ctx, storage.Scope(scope), id, since)
}
