package llm

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		body      string
		wantErr   string
		model     string
		stream    bool
		usage     bool
		maxTokens int64
	}{
		{name: "plain", body: `{"model":"m","messages":[]}`, model: "m"},
		{name: "whitespace and nesting", body: " {\n \"messages\" : [{\"model\":\"inner\",\"x\":{\"model\":1}}] , \"model\" : \"m\" }", model: "m"},
		{name: "escaped model value", body: `{"model":"a\"b\u00e9"}`, model: "a\"b\u00e9"},
		{name: "stream with usage", body: `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, model: "m", stream: true, usage: true},
		{name: "stream null", body: `{"model":"m","stream":null}`, model: "m"},
		{name: "max tokens", body: `{"model":"m","max_tokens":12,"max_completion_tokens":40}`, model: "m", maxTokens: 40},
		{name: "invalid json", body: `{"model":"m"`, wantErr: "invalid_json"},
		{name: "trailing garbage", body: `{"model":"m"} x`, wantErr: "invalid_json"},
		{name: "array", body: `[]`, wantErr: "must be a JSON object"},
		{name: "duplicate model", body: `{"model":"a","model":"b"}`, wantErr: "more than once"},
		{name: "duplicate stream", body: `{"model":"a","stream":false,"stream":true}`, wantErr: "more than once"},
		{name: "case variant", body: `{"model":"a","MODEL":"b"}`, wantErr: "must be spelled"},
		{name: "unicode fold variant", body: `{"model":"a","ſtream":true}`, wantErr: "must be spelled"},
		{name: "escaped key", body: `{"model":"a","\u006dodel":"b"}`, wantErr: "more than once"},
		{name: "model number", body: `{"model":1}`, wantErr: "must be a string"},
		{name: "negative max tokens", body: `{"model":"m","max_tokens":-1}`, wantErr: "non-negative"},
		{name: "stream options not object", body: `{"model":"m","stream_options":[]}`, wantErr: "must be an object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := parseRequest([]byte(tc.body))
			if tc.wantErr != "" {
				var ae *apiError
				if !errors.As(err, &ae) || ae.status != 400 || !strings.Contains(ae.message+ae.code, tc.wantErr) {
					t.Fatalf("err = %v, want 400 mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.model != tc.model || r.stream != tc.stream || r.includeUsage != tc.usage || r.maxTokens != tc.maxTokens {
				t.Fatalf("got %+v", r)
			}
		})
	}
}

func TestUpstreamBodyEdits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, want string
	}{
		{"model only", `{"model":"pub","messages":[1]}`, `{"model":"dep","messages":[1]}`},
		{"stream gets usage", `{"model":"pub","stream":true}`, `{"stream_options":{"include_usage":true},"model":"dep","stream":true}`},
		{"client usage kept", `{"stream":true,"stream_options":{"include_usage":true},"model":"pub"}`, `{"stream":true,"stream_options":{"include_usage":true},"model":"dep"}`},
		{"usage switched on", `{"model":"pub","stream":true,"stream_options":{"include_usage":false,"x":1}}`, `{"model":"dep","stream":true,"stream_options":{"include_usage":true,"x":1}}`},
		{"bytes elsewhere untouched", "{ \"a\" : 1.50e3 ,\"model\":\"pub\" }", "{ \"a\" : 1.50e3 ,\"model\":\"dep\" }"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := parseRequest([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			got := string(r.upstreamBody("dep", true))
			if got != tc.want || !json.Valid([]byte(got)) {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestSSESplitter(t *testing.T) {
	t.Parallel()
	var p sseSplitter
	var got []string
	for _, chunk := range []string{"data: a\n", "\ndata: b\r\n\r\nda", "ta: c\n\n", "event: x\ndata: d\ndata: e\n\n"} {
		p.feed([]byte(chunk))
		for {
			ev, ok := p.next()
			if !ok {
				break
			}
			name, data := sseData(ev)
			got = append(got, name+"|"+string(data))
		}
	}
	if strings.Join(got, ",") != "|a,|b,|c,x|d\ne" {
		t.Fatalf("events = %q", got)
	}
}

func TestOpenAIStreamDropsUnaskedUsage(t *testing.T) {
	t.Parallel()
	s := &openAIStream{}
	var out []byte
	for _, ev := range []string{
		"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n",
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":1}}}\n\n",
		"data: [DONE]\n\n",
	} {
		var err error
		if out, err = s.event([]byte(ev), out); err != nil {
			t.Fatal(err)
		}
	}
	want := "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n"
	if string(out) != want || !s.done() || s.usage() != (Usage{Input: 3, Output: 2, Cached: 1}) {
		t.Fatalf("out %q usage %+v", out, s.usage())
	}
}

func BenchmarkParseRequest(b *testing.B) {
	body := []byte(`{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"system","content":"` + strings.Repeat("be helpful ", 40) +
		`"},{"role":"user","content":"hello there"}],"temperature":0.2}`)
	b.ReportAllocs()
	for b.Loop() {
		r, err := parseRequest(body)
		if err != nil {
			b.Fatal(err)
		}
		_ = r.upstreamBody("gpt-4o-mini-2024-07-18", true)
	}
}

func TestTopLevelValue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ body, want string }{
		{`{"choices":[{"usage":{"x":1}}],"usage":{"prompt_tokens":1}}`, `{"prompt_tokens":1}`},
		{`{"a":"\"usage\":2","usage" : null}`, `null`},
		{`{"a":1}`, ``},
		{`{"a":`, ``},
		{`{"a"`, ``},
		{`{"usage":{"p":`, `{"p":`},
		{`[`, ``},
		{``, ``},
	} {
		if got := string(topLevelValue([]byte(tc.body), "usage")); got != tc.want {
			t.Errorf("topLevelValue(%s) = %q, want %q", tc.body, got, tc.want)
		}
	}
}
