package dashboard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/trace"
)

// BenchmarkSpendView times the dashboard's spend queries through the API
// over many spans spread across 30 days: against the ClickHouse named by
// SWITCHBOARD_TEST_CLICKHOUSE (host:port, a throw-away database is created
// and dropped), otherwise against the embedded SQLite store.
// SWITCHBOARD_BENCH_SPANS sets the span count (default 1,000,000 on
// ClickHouse, 100,000 on SQLite).
func BenchmarkSpendView(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	store, n := benchStore(ctx, b)
	writeBenchSpans(ctx, b, store, n)
	gov, err := governance.New(governance.Config{AdminKey: adminKey, Secret: "bench-secret-0123456789abcdef"}, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	d := New(Deps{Store: store, Governor: gov})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	d.Register(app)
	for _, v := range []struct{ name, target string }{
		{"totals_30d", "/admin/spend?range=720h"},
		{"chart_30d_daily_by_layer", "/admin/spend?range=720h&bucket=day&group_by=layer"},
		{"chart_24h_hourly_by_layer", "/admin/spend?range=24h&bucket=hour&group_by=layer"},
		{"table_30d_by_model_top15", "/admin/spend?range=720h&group_by=model&top=15"},
		{"table_30d_by_key_top15", "/admin/spend?range=720h&group_by=key&top=15"},
		{"traces_30d_min_cost", "/admin/traces?range=720h&min_cost_usd=0.0001&limit=50"},
	} {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, v.target, nil)
				req.Header.Set("Authorization", "Bearer "+adminKey)
				resp, err := app.Test(req, -1)
				if err != nil {
					b.Fatal(err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}

func benchStore(ctx context.Context, b *testing.B) (storage.Store, int) {
	n := 100_000
	cfg := storage.Config{SQLite: storage.SQLiteConfig{Path: ":memory:"}}
	addr := os.Getenv("SWITCHBOARD_TEST_CLICKHOUSE")
	if addr != "" {
		n = 1_000_000
		buf := make([]byte, 6)
		_, _ = rand.Read(buf)
		db := "sbbench_" + hex.EncodeToString(buf)
		cfg = storage.Config{ClickHouse: &storage.ClickHouseConfig{Addr: addr, Database: db}}
		b.Cleanup(func() { dropBenchDatabase(b, addr, db) })
	}
	if s := os.Getenv("SWITCHBOARD_BENCH_SPANS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("SWITCHBOARD_BENCH_SPANS=%q: want a positive integer", s)
		}
		n = v
	}
	store, err := storage.Open(ctx, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	return store, n
}

func dropBenchDatabase(b *testing.B, addr, db string) {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 2 * time.Second})
	if err != nil {
		b.Logf("drop %s: %v", db, err)
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS `%s`", db)); err != nil {
		b.Logf("drop %s: %v", db, err)
	}
}

// writeBenchSpans writes n spans over the 30 days before now: traces of
// four spans (agent, model, tool, model) across 5 teams, 50 keys and 6 models.
func writeBenchSpans(ctx context.Context, b *testing.B, store storage.Store, n int) {
	b.Helper()
	models := []string{"gpt-4o-mini", "gpt-4o", "claude-haiku", "claude-sonnet", "llama-3-70b", "mistral-large"}
	layers := []trace.Layer{trace.LayerAgent, trace.LayerLLM, trace.LayerTool, trace.LayerLLM}
	start := time.Now().Add(-30 * 24 * time.Hour)
	step := 30 * 24 * time.Hour / time.Duration(n)
	const batch = 20_000
	spans := make([]trace.Span, 0, batch)
	for i := range n {
		tr, k := i/4, i%4
		sp := trace.Span{
			TraceID: trace.TraceID{1, byte(tr >> 24), byte(tr >> 16), byte(tr >> 8), byte(tr)},
			SpanID:  trace.SpanID{2, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)},
			Layer:   layers[k], Name: string(layers[k]), Start: start.Add(time.Duration(i) * step),
			Duration: time.Duration(50+i%400) * time.Millisecond, Status: trace.StatusOK,
			Team: fmt.Sprintf("team-%d", tr%5), KeyID: fmt.Sprintf("key_%02d", tr%50),
		}
		if k > 0 {
			sp.ParentSpanID = trace.SpanID{2, byte((i - k) >> 24), byte((i - k) >> 16), byte((i - k) >> 8), byte(i - k)}
		}
		switch layers[k] {
		case trace.LayerLLM:
			sp.Model, sp.Provider = models[tr%len(models)], "openai"
			sp.InputTokens, sp.OutputTokens, sp.CostNanoUSD = int64(100+i%900), int64(20+i%200), int64(10_000+i%90_000)
		case trace.LayerTool:
			sp.ToolServer, sp.Tool, sp.CostNanoUSD = "weather", "forecast", 1_000_000
		case trace.LayerAgent:
			sp.Agent = "planner"
		}
		if i%97 == 0 {
			sp.Status = trace.StatusError
		}
		spans = append(spans, sp)
		if len(spans) == batch || i == n-1 {
			if err := store.WriteSpans(ctx, spans); err != nil {
				b.Fatal(err)
			}
			spans = spans[:0]
		}
	}
}

// BenchmarkBudgetsAPI times GET /admin/budgets for the admin (every team
// and key) and for a team key, with 50 teams of 20 budgeted keys each.
func BenchmarkBudgetsAPI(b *testing.B) {
	cfg := governance.Config{AdminKey: adminKey, Secret: "bench-secret-0123456789abcdef"}
	for t := range 50 {
		team := fmt.Sprintf("team-%02d", t)
		cfg.Teams = append(cfg.Teams, governance.TeamConfig{Name: team, Budget: governance.BudgetConfig{USD: "100", Period: "monthly"}})
		for k := range 20 {
			cfg.Keys = append(cfg.Keys, governance.KeyConfig{Name: fmt.Sprintf("%s-key-%02d", team, k),
				Key: fmt.Sprintf("sk-sb-bench-%02d-%02d-0123456789abcdefghijklmnop", t, k), Team: team,
				Budget: governance.BudgetConfig{USD: "5", Period: "daily"}})
		}
	}
	gov, err := governance.New(cfg, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	d := New(Deps{Governor: gov})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	d.Register(app)
	for _, v := range []struct{ name, key string }{
		{"admin_1050_rows", adminKey},
		{"team_key_21_rows", cfg.Keys[0].Key},
	} {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, "/admin/budgets", nil)
				req.Header.Set("Authorization", "Bearer "+v.key)
				resp, err := app.Test(req, -1)
				if err != nil {
					b.Fatal(err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
}
