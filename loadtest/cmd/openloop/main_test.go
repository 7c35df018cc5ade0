package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestOpenLoop(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") != "Bearer k1" || r.Method != http.MethodPost {
			http.Error(w, "bad", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(ok.Close)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	out := filepath.Join(t.TempDir(), "s.json")

	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"answers", []string{"--url", ok.URL, "--key", "k1", "--rate", "200", "--duration", "250ms", "--json", out, "--phase", "100ms"}, ""},
		{"failures are reported", []string{"--url", failing.URL, "--rate", "100", "--duration", "50ms"}, "5 of 5 calls failed (first: HTTP 500"},
		{"url required", []string{"--rate", "10"}, "--url is required"},
		{"rate must be positive", []string{"--url", ok.URL, "--rate", "0"}, "must be positive"},
	}
	for _, tc := range tests {
		var stdout strings.Builder
		err := run(tc.args, &stdout)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Fatalf("%s: error %v, want %q", tc.name, err, tc.wantErr)
		}
	}
	if calls.Load() != 50 {
		t.Fatalf("server saw %d calls, want 50 (200/s for 250 ms)", calls.Load())
	}
	var s summary
	b, err := os.ReadFile(out)
	if err != nil || json.Unmarshal(b, &s) != nil {
		t.Fatalf("summary %s: %v", b, err)
	}
	if s.Calls != 50 || s.Errors != 0 || s.Rate != 200 || s.P50 <= 0 || s.P50 > s.P99 || s.P99 > s.Max {
		t.Fatalf("summary %+v", s)
	}
}
