package mcp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/trace"
)

// The gateway is not ready while a server's first connection is in progress (its tools would be "not found"),
// and becomes ready once it settles, whether the server answered or failed.
func TestReadyWaitsForEveryServersFirstConnection(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	stalled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer stalled.Close()
	rec, err := trace.NewRecorder(trace.RecorderConfig{SpillDir: t.TempDir()}, &spanSink{}, nil, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close(context.Background())
	gw, err := New(Config{Servers: []ServerConfig{{Name: "stalled", URL: stalled.URL + "/mcp", Timeout: 30 * time.Second}}},
		Deps{Governor: newGovernor(t), Tracer: trace.NewTracer(rec), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()

	ctx := context.Background()
	if err := gw.Ready(ctx); err == nil {
		t.Fatal("ready while the server's first connection is still in progress")
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for gw.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready after the server's first connection failed: %v", gw.Ready(ctx))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
