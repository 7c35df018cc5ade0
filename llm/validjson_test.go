package llm

import (
	"encoding/json"
	"strings"
	"testing"
)

// validJSONCases are tricky inputs for validJSON, whose answer must be
// json.Valid's.
var validJSONCases = []string{
	``, ` `, `{}`, `[]`, ` {} `, `{`, `}`, `[`, `]`, `{]`, `[}`, `{}}`, `[]]`, `{}{}`, `1 2`,
	`0`, `-0`, `01`, `-`, `1.`, `.1`, `1.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.5e10`, `1x`, `+1`,
	`true`, `false`, `null`, `tru`, `nul`, `truex`, `True`, `[true,false,null]`,
	`""`, `"a"`, `"\""`, `"\\"`, `"\/"`, `"\b\f\n\r\t"`, `"\u00e9"`, `"\u00E9"`, `"\u12G4"`, `"\u12"`, `"\x"`,
	`"\`, `"abc`, "\"\x1f\"", "\"\x7f\"", "\"\xff\xfe\"", "\"tab\there\"", "\"a\nb\"",
	`{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":1,"b":[1,2,{"c":null}]}`,
	`[1,]`, `[,1]`, `[1,,2]`, `[1 2]`, `[[[]]]`, `[[[]]`, `{"a":{"b":{}}}`, `{"":""}`,
	"\t\r\n {\"a\" : [ 1 , 2 ] } \n",
	`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi \"there\" \\ \u263a"}],"stream":true}`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	`"` + strings.Repeat("abcdefgh", 20) + `"`,
	`"` + strings.Repeat("abcdefg\\", 20) + `"`,
	`"` + strings.Repeat("abcdefgh", 20) + "\x01\"",
}

func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, in := range validJSONCases {
		if got, want := validJSON([]byte(in)), json.Valid([]byte(in)); got != want {
			t.Errorf("validJSON(%.80q) = %v, json.Valid says %v", in, got, want)
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, in := range validJSONCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if got, want := validJSON(in), json.Valid(in); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", in, got, want)
		}
	})
}

// A long prompt is almost all string bytes.
var longPrompt = []byte(`{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"system","content":"` +
	strings.Repeat("be helpful and answer with care, ", 1500) + `"},{"role":"user","content":"hello there"}]}`)

func BenchmarkValidJSON(b *testing.B) {
	for _, bc := range []struct {
		name  string
		valid func([]byte) bool
	}{{"encoding-json", json.Valid}, {"validJSON", validJSON}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(longPrompt)))
			for b.Loop() {
				if !bc.valid(longPrompt) {
					b.Fatal("long prompt refused")
				}
			}
		})
	}
}
