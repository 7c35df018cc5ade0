package main

import (
	"io"
	"testing"
)

func TestRunRejectsBadArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"no kind", nil},
		{"unknown kind", []string{"smtp"}},
		{"unknown flag", []string{"llm", "--nope"}},
		{"unknown tool", []string{"mcp", "--stdio", "--tools", "add,teleport"}},
		{"negative tps", []string{"llm", "--tps", "-1"}},
		{"bad address", []string{"llm", "--listen", "256.0.0.1:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := run(tt.args, io.Discard, io.Discard); err == nil {
				t.Fatalf("run(%q) succeeded", tt.args)
			}
		})
	}
}
