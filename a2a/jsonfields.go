package a2a

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// A small JSON object walker for the send fast path. It never decodes the
// values it passes over, so the bytes the gateway forwards are the bytes it
// looked at, and it lets the fast path see what encoding/json hides: a key
// written twice, or written in another case ("taskID", "TaskId"), which Go
// matches to the same field while a JavaScript or Python upstream reads it
// as a different one, or under its proto name ("task_id"), which Go ignores
// while an upstream that parses A2A's JSON as ProtoJSON reads it as the field.

// fieldSet holds the raw values of the fields a caller asked for, and
// where each starts in the object it was picked from.
type fieldSet struct {
	names  []string
	values [maxPicked][]byte
	starts [maxPicked]int
}

// maxPicked bounds pick's names, so a fieldSet needs no allocation.
const maxPicked = 4

// pick walks the JSON object obj and returns the raw value of each name (nil
// when absent). ok is false when obj is not exactly one well-formed object
// (trailing bytes included) or when a name appears twice, in another case
// or with underscores; callers then leave the body to the slow path, which
// decodes and re-encodes it.
func pick(obj []byte, names ...string) (fieldSet, bool) {
	fs := fieldSet{names: names[:min(len(names), maxPicked)]}
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return fs, false
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return fs, skipSpace(obj, i+1) == len(obj)
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return fs, false
		}
		end, ok := skipString(obj, i)
		if !ok {
			return fs, false
		}
		key := obj[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var s string
			if json.Unmarshal(obj[i:end], &s) != nil {
				return fs, false
			}
			key = []byte(s)
		}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return fs, false
		}
		start := skipSpace(obj, i+1)
		vend, ok := skipValue(obj, start)
		if !ok {
			return fs, false
		}
		for n, name := range fs.names {
			if !sameField(key, name) {
				continue
			}
			if string(key) != name || fs.values[n] != nil {
				return fs, false
			}
			fs.values[n], fs.starts[n] = obj[start:vend], start
		}
		i = skipSpace(obj, vend)
		if i >= len(obj) {
			return fs, false
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			return fs, skipSpace(obj, i+1) == len(obj)
		default:
			return fs, false
		}
	}
}

// sameField reports whether key names the field name to some JSON reader:
// in any case, and with underscores between words as proto names have them.
func sameField(key []byte, name string) bool {
	if bytes.IndexByte(key, '_') >= 0 {
		key = bytes.ReplaceAll(key, []byte("_"), nil)
	}
	return bytes.EqualFold(key, []byte(name))
}

// get returns the raw value of name (nil when absent).
func (fs fieldSet) get(name string) []byte {
	for n, v := range fs.names {
		if v == name {
			return fs.values[n]
		}
	}
	return nil
}

// with returns a copy of obj, the object fs was picked from, with the raw
// value of name replaced by value; obj itself when name is absent.
func (fs fieldSet) with(obj []byte, name string, value []byte) []byte {
	for n, v := range fs.names {
		if v == name && fs.values[n] != nil {
			start, end := fs.starts[n], fs.starts[n]+len(fs.values[n])
			out := make([]byte, 0, len(obj)-(end-start)+len(value))
			return append(append(append(out, obj[:start]...), value...), obj[end:]...)
		}
	}
	return obj
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, true
		}
	}
	return 0, false
}

// skipValue returns the index after the value starting at b[i]. Nested
// objects and arrays are only balanced here, not validated: every value the
// fast path acts on is also decoded by encoding/json, which rejects what
// this lets through.
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, ok := skipString(b, i)
				if !ok {
					return 0, false
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
		}
		return 0, false
	}
	start := i
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' &&
		b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i, i > start
}

// plainID reports whether a raw JSON-RPC id comes back unchanged from
// a2a-go's decode and re-encode (which turns numbers into float64 and
// HTML-escapes strings): a short non-negative integer, or a string of
// printable ASCII without escapes or HTML metacharacters. Only such ids let
// the fast path hand the upstream's answer back byte for byte. A null id is
// left to the slow path: upstreams may take a request with one for a
// notification and not answer it.
func plainID(raw []byte) bool {
	switch {
	case len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"':
		for _, c := range raw[1 : len(raw)-1] {
			if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return false
			}
		}
		return true
	case len(raw) >= 1 && len(raw) <= 15:
		if raw[0] == '0' && len(raw) > 1 {
			return false
		}
		for _, c := range raw {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	return false
}
