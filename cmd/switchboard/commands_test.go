package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every line config validate prints for a bad file starts file:line:, the first one included.
func TestConfigValidatePrintsEveryErrorWithItsLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.yaml")
	if err := os.WriteFile(path, []byte("router: {timeout: 60}\nserver:\n  max_body_bytes: 1.5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := rootCommand()
	var stderr strings.Builder
	cmd.SetErr(&stderr)
	cmd.SetArgs([]string{"config", "validate", path})
	if err := cmd.Execute(); err == nil {
		t.Fatal("validate accepted a bad file")
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	shape := regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `:[1-9][0-9]*: [a-z_.]+: `)
	if len(lines) != 2 {
		t.Fatalf("want 2 error lines, got %q", lines)
	}
	for _, l := range lines {
		if !shape.MatchString(l) {
			t.Errorf("line %q is not file:line: field: message", l)
		}
	}
}
