package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// checkKnownKeys reports every key in the file that no config struct declares. A misspelt key would otherwise be
// ignored silently and its default used, which is the hardest kind of config mistake to see.
func (s source) checkKnownKeys() error {
	node := s.root
	if node.Kind == yaml.DocumentNode {
		if len(node.Content) == 0 {
			return nil
		}
		node = node.Content[0]
	}
	if node.Kind == 0 || node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		return nil
	}
	var errs []error
	s.walk(node, reflect.TypeOf(Config{}), "", &errs)
	return errors.Join(errs...)
}

var durationType = reflect.TypeOf(time.Duration(0))

func (s source) walk(node *yaml.Node, t reflect.Type, path string, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	switch {
	case t == durationType:
		return
	case t.Kind() == reflect.Struct:
		if node.Kind != yaml.MappingNode {
			*errs = append(*errs, &FieldError{File: s.file, Line: node.Line, Path: path, Msg: "must be a mapping"})
			return
		}
		fields := structFields(t)
		for i := 0; i+1 < len(node.Content); i += 2 {
			key, val := node.Content[i], node.Content[i+1]
			ft, ok := fields[strings.ToLower(key.Value)]
			if !ok {
				*errs = append(*errs, &FieldError{File: s.file, Line: key.Line, Path: join(path, key.Value),
					Msg: "unknown field (known: " + knownNames(fields) + ")"})
				continue
			}
			s.walk(val, ft, join(path, key.Value), errs)
		}
	case t.Kind() == reflect.Slice && node.Kind == yaml.SequenceNode:
		for i, item := range node.Content {
			s.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case t.Kind() == reflect.Map && node.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(node.Content); i += 2 {
			s.walk(node.Content[i+1], t.Elem(), join(path, node.Content[i].Value), errs)
		}
	}
}

// structFields maps lower-cased mapstructure names to field types; squashed embedded structs contribute their
// own fields.
func structFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "squash") {
			for k, v := range structFields(f.Type) {
				fields[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[strings.ToLower(name)] = f.Type
	}
	return fields
}

func knownNames(fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
