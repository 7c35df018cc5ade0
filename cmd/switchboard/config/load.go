package config

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment override: SWITCHBOARD_SERVER_LISTEN overrides server.listen.
const EnvPrefix = "SWITCHBOARD"

// secretPrefix marks a string value that names an environment variable instead of holding the value, so that
// secrets stay out of config files.
const secretPrefix = "env:"

// Load reads, decodes and validates the file at path.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(raw, path)
}

// Parse decodes and validates YAML; file names the source in error messages.
//
// The YAML is decoded by us, not by viper: viper lower-cases map keys and splits them on dots, which would
// corrupt keys that are names (per-model limit patterns like "gpt-4.1*", tool names, HTTP headers). viper is
// the environment layer only: SWITCHBOARD_* variables override the scalar fields they name.
func Parse(raw []byte, file string) (*Config, error) {
	var doc yaml.Node
	src := source{file: file, root: &doc}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, src.yamlError(err)
	}
	if err := src.checkKnownKeys(); err != nil {
		return nil, err
	}
	tree := map[string]any{}
	if doc.Kind != 0 {
		if err := doc.Decode(&tree); err != nil {
			return nil, src.yamlError(err)
		}
		if tree == nil { // a document that is only a comment or null
			tree = map[string]any{}
		}
	}
	envErrs := unknownOverrides(tree, os.Environ())
	src.env = applyEnvironment(tree)

	cfg := Default()
	decoder, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:           &cfg,
		WeaklyTypedInput: true, // env values are strings; YAML numbers may fill string fields (prices)
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			timestampToText,
			resolveSecretHook,
			durationHook,
			wholeNumberHook,
		),
	})
	if err != nil {
		return nil, err
	}
	if err := decoder.Decode(tree); err != nil {
		// mapstructure wraps several errors in one more message; unwrapped, each gets its own file:line.
		var multi interface{ Unwrap() []error }
		if errors.As(err, &multi) {
			err = errors.Join(multi.Unwrap()...)
		}
		return nil, src.locate(errors.Join(append(envErrs, err)...))
	}
	if err := errors.Join(append(envErrs, cfg.Validate())...); err != nil {
		return nil, src.locate(err)
	}
	return &cfg, nil
}

// applyEnvironment writes every SWITCHBOARD_<PATH> variable that names a scalar config field into tree, and
// answers which variable set which path.
func applyEnvironment(tree map[string]any) map[string]string {
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	set := map[string]string{}
	for _, path := range scalarPaths(reflect.TypeOf(Config{}), "") {
		if !v.IsSet(path) {
			continue
		}
		setPath(tree, strings.Split(path, "."), v.GetString(path))
		set[path] = EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
	}
	return set
}

// scalarPaths lists the dotted mapstructure paths of the fields an environment variable can set: scalars
// reached through structs (lists and maps are left to the file).
func scalarPaths(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == durationType {
		return []string{prefix}
	}
	var paths []string
	for name, ft := range structFields(t) {
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Slice || ft.Kind() == reflect.Map || ft.Kind() == reflect.Interface {
			continue
		}
		paths = append(paths, scalarPaths(ft, join(prefix, name))...)
	}
	return paths
}

func setPath(tree map[string]any, path []string, value string) {
	for _, key := range path[:len(path)-1] {
		next, ok := lookupFold(tree, key).(map[string]any)
		if !ok {
			next = map[string]any{}
			tree[key] = next
		}
		tree = next
	}
	last := path[len(path)-1]
	for k := range tree {
		if strings.EqualFold(k, last) {
			delete(tree, k)
		}
	}
	tree[last] = value
}

// lookupFold finds a key the way the decoder matches it to a field: ignoring case.
func lookupFold(tree map[string]any, key string) any {
	for k, v := range tree {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// timestampToText keeps an unquoted YAML date (expires: 2027-01-31), which YAML reads as a timestamp, usable
// in a string field.
func timestampToText(from, to reflect.Type, data any) (any, error) {
	if to.Kind() != reflect.String {
		return data, nil
	}
	if ts, ok := data.(time.Time); ok {
		if ts.Equal(ts.Truncate(24 * time.Hour)) {
			return ts.Format(time.DateOnly), nil
		}
		return ts.Format(time.RFC3339Nano), nil
	}
	return data, nil
}

// durationHook takes a duration only with its unit. mapstructure would read a bare 60 as 60ns, which validates
// and then fails every call it bounds; zero needs no unit.
func durationHook(_, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	var n float64
	v := reflect.ValueOf(data)
	switch {
	case v.Kind() == reflect.String:
		if d, err := time.ParseDuration(v.String()); err == nil {
			return d, nil
		}
		f, err := strconv.ParseFloat(v.String(), 64)
		if err != nil {
			return nil, fmt.Errorf(`%q is not a duration; write it like "30s", "1m30s" or "500ms"`, v.String())
		}
		n = f
	case v.CanInt():
		n = float64(v.Int())
	case v.CanUint():
		n = float64(v.Uint())
	case v.CanFloat():
		n = v.Float()
	default:
		return data, nil // mapstructure names the wrong type
	}
	if n == 0 {
		return time.Duration(0), nil
	}
	num := strconv.FormatFloat(n, 'g', -1, 64)
	return nil, fmt.Errorf(`%s has no unit; write "%ss" (or ms, m, h)`, num, num)
}

// wholeNumberHook refuses a fraction or a boolean for an integer field, which weakly typed decoding would
// silently truncate or turn into 1.
func wholeNumberHook(_, to reflect.Type, data any) (any, error) {
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
	default:
		return data, nil
	}
	v := reflect.ValueOf(data)
	switch {
	case v.Kind() == reflect.Bool:
		return nil, fmt.Errorf("must be a whole number, got %t", v.Bool())
	case v.Kind() == reflect.String:
		// Environment overrides arrive as text, which weak decoding would refuse with strconv's own words. It
		// reads "" as 0 and takes a base prefix (0x10), so this does too.
		if _, err := strconv.ParseInt(v.String(), 0, 64); err != nil && v.String() != "" {
			return nil, fmt.Errorf("must be a whole number, got %q", v.String())
		}
	case v.CanFloat() && v.Float() != math.Trunc(v.Float()):
		return nil, fmt.Errorf("must be a whole number, got %s", strconv.FormatFloat(v.Float(), 'g', -1, 64))
	}
	return data, nil
}

// source knows where each field sits in the YAML document, so errors can name a line, and which fields an
// environment variable set, so that their errors name the variable instead of a line that holds another value.
type source struct {
	file string
	root *yaml.Node
	env  map[string]string // dotted path -> SWITCHBOARD_* variable
}

// locate turns decode and validation errors into FieldErrors that carry file and line.
func (s source) locate(err error) error {
	var out []error
	for _, e := range flatten(err) {
		located := FieldError{Msg: e.Error()}
		var fe *FieldError
		var de *mapstructure.DecodeError
		switch {
		case errors.As(e, &fe):
			located = *fe
		case errors.As(e, &de):
			located = FieldError{Path: de.Name(), Msg: de.Unwrap().Error()}
		}
		located.File = s.file
		if name, ok := s.envVar(located.Path); ok {
			located.Env = name
		} else {
			located.Line = s.line(located.Path)
		}
		out = append(out, &located)
	}
	// mapstructure walks maps in random order; file order reads better and is the same every time.
	slices.SortStableFunc(out, func(a, b error) int {
		fa, fb := a.(*FieldError), b.(*FieldError)
		return cmp.Or(cmp.Compare(fa.Line, fb.Line), cmp.Compare(fa.Path, fb.Path))
	})
	return errors.Join(out...)
}

// envVar names the variable that set path, if one did; paths match as the decoder matches keys, ignoring case.
func (s source) envVar(path string) (string, bool) {
	for p, name := range s.env {
		if strings.EqualFold(p, path) {
			return name, true
		}
	}
	return "", false
}

var yamlLine = regexp.MustCompile(`^line ([0-9]+): (.*)$`)

// yamlError gives YAML's own errors ("yaml: line 3: did not find expected key") the file:line shape of every
// other error.
func (s source) yamlError(err error) error {
	msgs := []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var out []error
	for _, msg := range msgs {
		fe := &FieldError{File: s.file, Msg: msg}
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			fe.Line, _ = strconv.Atoi(m[1])
			fe.Msg = m[2]
		}
		out = append(out, fe)
	}
	return errors.Join(out...)
}

// flatten unwraps errors.Join trees into single errors.
func flatten(err error) []error {
	if multi, ok := err.(interface{ Unwrap() []error }); ok {
		var all []error
		for _, e := range multi.Unwrap() {
			all = append(all, flatten(e)...)
		}
		return all
	}
	return []error{err}
}

// line finds the line of a dotted path like "models[0].deployments[1].base_url"; for a path that does not exist
// in the file it answers the line of the deepest part that does, and 0 if none does.
func (s source) line(path string) int {
	node := s.root
	if node.Kind == yaml.DocumentNode && len(node.Content) > 0 {
		node = node.Content[0]
	}
	line := 0
	for _, part := range splitPath(path) {
		next := child(node, part)
		if next == nil {
			return line
		}
		node, line = next, next.Line
	}
	return line
}

// splitPath cuts "keys[0].limits.per_model[\"gpt-4.1*\"].rpm" into keys, [0], limits, per_model, ["gpt-4.1*"],
// rpm: a quoted map key may hold dots and brackets of its own.
func splitPath(path string) []string {
	var parts []string
	for path != "" {
		switch {
		case strings.HasPrefix(path, `["`):
			quoted, err := strconv.QuotedPrefix(path[1:])
			if err != nil || !strings.HasPrefix(path[1+len(quoted):], "]") {
				return append(parts, path)
			}
			n := 1 + len(quoted) + 1
			parts, path = append(parts, path[:n]), path[n:]
		case path[0] == '[':
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return append(parts, path)
			}
			parts, path = append(parts, path[:end+1]), path[end+1:]
		case path[0] == '.':
			path = path[1:]
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			parts, path = append(parts, path[:end]), path[end:]
		}
	}
	return parts
}

func child(node *yaml.Node, part string) *yaml.Node {
	if idx, ok := strings.CutPrefix(part, "["); ok {
		if key, err := strconv.Unquote(strings.TrimSuffix(idx, "]")); err == nil {
			// A map key, such as a per_model pattern: names are kept exactly as written, so matched exactly.
			if node.Kind != yaml.MappingNode {
				return nil
			}
			for i := 0; i+1 < len(node.Content); i += 2 {
				if node.Content[i].Value == key {
					return node.Content[i+1]
				}
			}
			return nil
		}
		var i int
		if _, err := fmt.Sscanf(strings.TrimSuffix(idx, "]"), "%d", &i); err != nil || node.Kind != yaml.SequenceNode || i < 0 || i >= len(node.Content) {
			return nil
		}
		return node.Content[i]
	}
	if node.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if strings.EqualFold(node.Content[i].Value, part) {
			return node.Content[i+1]
		}
	}
	return nil
}

// resolveSecretHook replaces "env:NAME" in any string field with the value of NAME.
func resolveSecretHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.String {
		return data, nil
	}
	s, _ := data.(string)
	name, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return data, nil
	}
	if name == "" {
		return nil, errors.New("env: reference needs a variable name")
	}
	val, set := os.LookupEnv(name)
	if !set {
		// The name is not a secret; the value would be.
		return nil, fmt.Errorf("environment variable %s is not set", name)
	}
	return val, nil
}
