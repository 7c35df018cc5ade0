package governance_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/trace"
)

// recordStore adapts storage.Store to governance.Store, as the gateway's wiring does.
type recordStore struct{ storage.Store }

func (s recordStore) ListRecords(ctx context.Context, kind string) ([]governance.Record, error) {
	rs, err := s.Store.ListRecords(ctx, kind)
	out := make([]governance.Record, len(rs))
	for i, r := range rs {
		out[i] = governance.Record{Kind: r.Kind, ID: r.ID, Data: r.Data, UpdatedAt: r.UpdatedAt}
	}
	return out, err
}

type spendSource struct{ storage.Store }

func (s spendSource) SpendSince(ctx context.Context, scope, id string, since time.Time) (int64, error) {
	return s.Store.SpendSince(ctx, storage.Scope(scope), id, since)
}

const (
	adminKey = "sk-admin-0123456789abcdef"
	usd      = int64(1_000_000_000)
)

// boot opens the SQLite store at path and starts a Governor on it the way the
// gateway does at start-up: load runtime records, then rebuild spend.
func boot(t *testing.T, path string) (*governance.Governor, storage.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	st, err := storage.Open(ctx, storage.Config{SQLite: storage.SQLiteConfig{Path: path}}, log)
	if err != nil {
		t.Fatalf("storage.Open: %v", err)
	}
	cfg := governance.Config{AdminKey: adminKey, Secret: "test-secret-0123456789abcdef"}
	g, err := governance.New(cfg, recordStore{st}, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("governance.New: %v", err)
	}
	if err := g.RebuildSpend(ctx, spendSource{st}); err != nil {
		t.Fatalf("RebuildSpend: %v", err)
	}
	return g, st
}

func adminPost(t *testing.T, g *governance.Governor, path, body string) map[string]any {
	t.Helper()
	app := fiber.New()
	g.RegisterAdmin(app.Group("/admin"))
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := app.Test(req, 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	if err := json.Unmarshal(raw, &out); err != nil || resp.StatusCode >= 300 {
		t.Fatalf("POST %s: %d %s", path, resp.StatusCode, raw)
	}
	return out
}

func TestRuntimeKeysAndSpendPersistInSQLite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "switchboard.db")
	g, st := boot(t, path)
	adminPost(t, g, "/admin/teams", `{"name":"night","budget":{"usd":"5"}}`)
	created := adminPost(t, g, "/admin/keys", `{"name":"bot","team":"night","budget":{"usd":"1"}}`)
	raw := created["key"].(string)

	p, err := g.Authenticate(raw)
	if err != nil {
		t.Fatal(err)
	}
	r, err := g.Reserve(p, governance.Request{Kind: governance.KindModel, Name: "gpt-4o-mini", EstimatedCostNanoUSD: usd / 2})
	if err != nil {
		t.Fatal(err)
	}
	r.Settle(usd*6/10, 0)
	// What the trace recorder writes for this call.
	span := trace.Span{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, Layer: trace.LayerGateway, Name: "chat gpt-4o-mini",
		Start: time.Now(), KeyID: p.KeyID, KeyName: p.KeyName, Team: p.Team, Model: "gpt-4o-mini", CostNanoUSD: usd * 6 / 10}
	if err := st.WriteSpans(context.Background(), []trace.Span{span}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	g2, st2 := boot(t, path)
	defer st2.Close()
	p2, err := g2.Authenticate(raw)
	if err != nil {
		t.Fatalf("runtime key lost across restart: %v", err)
	}
	if p2.KeyID != p.KeyID || p2.Team != "night" {
		t.Fatalf("principal after restart: %+v", p2)
	}
	if _, err := g2.Reserve(p2, governance.Request{Kind: governance.KindModel, Name: "m", EstimatedCostNanoUSD: usd / 2}); err == nil {
		t.Fatal("spend lost across restart: $0.60 spent + $0.50 passed a $1 budget")
	}
	r2, err := g2.Reserve(p2, governance.Request{Kind: governance.KindModel, Name: "m", EstimatedCostNanoUSD: usd * 4 / 10})
	if err != nil {
		t.Fatalf("the remaining $0.40 should fit: %v", err)
	}
	r2.Settle(0, 0)
}
