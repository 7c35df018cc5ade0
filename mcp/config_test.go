package mcp

import (
	"strings"
	"testing"
)

func TestConfigValidateNamesTheField(t *testing.T) {
	t.Parallel()
	ok := ServerConfig{Name: "weather", URL: "http://127.0.0.1:1/mcp"}
	tests := []struct {
		name    string
		servers []ServerConfig
		want    string
	}{
		{"valid", []ServerConfig{ok, {Name: "files", Command: []string{"srv"}, Env: map[string]string{"K": "V"}}}, ""},
		{"sse", []ServerConfig{{Name: "legacy", URL: "http://127.0.0.1:1/sse", Transport: TransportSSE}}, ""},
		{"explicit streamable", []ServerConfig{{Name: "x", URL: ok.URL, Transport: TransportStreamableHTTP}}, ""},
		{"unknown transport", []ServerConfig{{Name: "x", URL: ok.URL, Transport: "websocket"}}, "mcp.servers[0].transport: must be"},
		{"transport on command", []ServerConfig{{Name: "x", Command: []string{"a"}, Transport: TransportSSE}}, "mcp.servers[0].transport: only for url"},
		{"upper case", []ServerConfig{{Name: "Weather", URL: ok.URL}}, "mcp.servers[0].name"},
		{"double underscore", []ServerConfig{{Name: "a__b", URL: ok.URL}}, "mcp.servers[0].name"},
		{"duplicate", []ServerConfig{ok, ok}, "mcp.servers[1].name"},
		{"no transport", []ServerConfig{{Name: "x"}}, "mcp.servers[0]: one of url or command"},
		{"both transports", []ServerConfig{{Name: "x", URL: ok.URL, Command: []string{"a"}}}, "mutually exclusive"},
		{"bad url", []ServerConfig{{Name: "x", URL: "ftp://h"}}, "mcp.servers[0].url"},
		{"bad cost", []ServerConfig{{Name: "x", URL: ok.URL, CostPerCallUSD: "abc"}}, "mcp.servers[0].cost_per_call_usd"},
		{"negative tool cost", []ServerConfig{{Name: "x", URL: ok.URL, ToolCostsUSD: map[string]string{"t": "-1"}}}, "mcp.servers[0].tool_costs_usd.t"},
		{"env on url", []ServerConfig{{Name: "x", URL: ok.URL, Env: map[string]string{"K": "V"}}}, "mcp.servers[0].env"},
		{"headers on command", []ServerConfig{{Name: "x", Command: []string{"a"}, Headers: map[string]string{"A": "b"}}}, "mcp.servers[0].headers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := (&Config{Servers: tc.servers}).Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to name %q", err, tc.want)
			}
		})
	}
}

func TestParseUSDIsExact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"", 0, false},
		{"0.001", 1_000_000, false},
		{"0.000000001", 1, false},
		{"12.5", 12_500_000_000, false},
		{"0.1", 100_000_000, false},
		{"0.0000000001", 0, true},
		{"-0.5", 0, true},
		{"1e30", 0, true},
		{"x", 0, true},
	}
	for _, tc := range tests {
		got, err := parseUSD(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseUSD(%q) = %d, %v; want %d, err=%v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}
