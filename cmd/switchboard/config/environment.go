package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// unknownOverrides names the SWITCHBOARD_* variables in environ that are meant as overrides but set no field: a
// misspelt override would leave the file's value in force without a word. A variable is meant as an override
// when the word after SWITCHBOARD_ is a config section, or one letter off one (SERVR). Any other variable
// (SWITCHBOARD_CONFIG, SWITCHBOARD_SECRET, a test's or Grafana's setting) is none of the config's business, and
// neither is one the file reads itself with env:. An empty variable counts as unset, as it does for overrides.
func unknownOverrides(tree map[string]any, environ []string) []error {
	known := map[string]string{} // variable name -> field path
	for _, path := range scalarPaths(reflect.TypeOf(Config{}), "") {
		known[envName(path)] = path
	}
	var sections []string
	for name := range structFields(reflect.TypeOf(Config{})) {
		sections = append(sections, strings.ToUpper(name))
	}
	read := envReferences(tree, map[string]bool{})
	var errs []error
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(name, EnvPrefix+"_")
		if !ok || value == "" || read[name] {
			continue
		}
		if _, ok := known[name]; ok {
			continue
		}
		section, _, _ := strings.Cut(strings.ToUpper(rest), "_")
		if !slices.ContainsFunc(sections, func(s string) bool { return editDistance(s, section) <= 1 }) {
			continue
		}
		msg := "names no config field (an environment variable sets a scalar field; lists and maps come from the file)"
		if v, path := closestOverride(strings.ToUpper(name), known); v != "" {
			msg = fmt.Sprintf("names no config field; did you mean %s (%s)?", v, path)
		}
		errs = append(errs, &FieldError{Path: name, Msg: msg})
	}
	return errs
}

// envName is the variable that overrides the field at path: SWITCHBOARD_SERVER_SHUTDOWN_TIMEOUT for
// server.shutdown_timeout, as viper derives it.
func envName(path string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// closestOverride is the override name nearest to name, if it is close enough to be the one meant.
func closestOverride(name string, known map[string]string) (string, string) {
	const maxEdits = 3
	best, bestDist := "", maxEdits+1
	for v := range known {
		if d := editDistance(name, v); d < bestDist || d == bestDist && v < best {
			best, bestDist = v, d
		}
	}
	if best == "" {
		return "", ""
	}
	return best, known[best]
}

// envReferences collects the variables the file reads with env:NAME.
func envReferences(v any, into map[string]bool) map[string]bool {
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			envReferences(e, into)
		}
	case []any:
		for _, e := range v {
			envReferences(e, into)
		}
	case string:
		if name, ok := strings.CutPrefix(v, secretPrefix); ok {
			into[name] = true
		}
	}
	return into
}

// editDistance counts the single-letter insertions, deletions and substitutions that turn a into b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
