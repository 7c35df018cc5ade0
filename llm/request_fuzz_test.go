package llm

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
)

// requestSeeds are realistic client bodies for the request fuzzers.
var requestSeeds = []string{
	`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":64}`,
	`{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false},"max_completion_tokens":128,"messages":[]}`,
	`{"stream":true,"stream_options":null,"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`,
	`{"model":"text-embedding-3-small","input":["a","b"],"encoding_format":"float"}`,
	`{"model":"claude-haiku","max_tokens":256,"system":"be brief","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"stream":false}`,
	`{"mod\u0065l":"gpt-4o","messages":[]}`,
	`{"model":"a","Model":"b"}`,
	`{"model":"a","model":"b"}`,
	`{"model":"gpt-4o","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"f"}},"stop":["\n"]}`,
	` [1,2] `,
	`{"model":null}`,
}

// peeked is what a full encoding/json decode of the guarded fields gives.
type peeked struct {
	Model         *string `json:"model"`
	Stream        *bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage *bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int64 `json:"max_tokens"`
	MaxCompletionTokens *int64 `json:"max_completion_tokens"`
}

func (p *peeked) model() string {
	if p.Model == nil {
		return ""
	}
	return *p.Model
}

// FuzzParseRequest checks the fast-path scanner against encoding/json: a
// body it accepts decodes fully, to the same model, stream flag, usage
// request and token cap; a body it refuses gets a 400. The body it sends
// upstream is valid JSON that names the deployment's model and, for streams,
// asks for usage exactly once.
func FuzzParseRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseRequest(body)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != http.StatusBadRequest {
				t.Fatalf("refusal %v is not a 400", err)
			}
			return
		}
		var full peeked
		if err := json.Unmarshal(body, &full); err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", body, err)
		}
		if r.model != full.model() {
			t.Fatalf("peeked model %q, full parse %q", r.model, full.model())
		}
		if r.stream != (full.Stream != nil && *full.Stream) {
			t.Fatalf("peeked stream %v, full parse %v", r.stream, full.Stream)
		}
		wantUsage := full.StreamOptions != nil && full.StreamOptions.IncludeUsage != nil && *full.StreamOptions.IncludeUsage
		if r.includeUsage != wantUsage {
			t.Fatalf("peeked include_usage %v, full parse %v", r.includeUsage, wantUsage)
		}
		var wantMax int64
		for _, v := range []*int64{full.MaxTokens, full.MaxCompletionTokens} {
			if v != nil {
				wantMax = max(wantMax, *v)
			}
		}
		if r.maxTokens != wantMax {
			t.Fatalf("peeked max tokens %d, full parse %d", r.maxTokens, wantMax)
		}

		const deployment = "dep/model-\"quoted\""
		quoted, _ := json.Marshal(deployment)
		up := r.upstreamBody(nil, quoted, true)
		again, err := parseRequest(up)
		if err != nil {
			t.Fatalf("upstream body %q of %q is refused: %v", up, body, err)
		}
		if r.modelAt.present() && again.model != deployment {
			t.Fatalf("upstream body %q names model %q", up, again.model)
		}
		if again.stream != r.stream || again.maxTokens != r.maxTokens {
			t.Fatalf("upstream body %q changed stream or max tokens", up)
		}
		if r.stream && !again.includeUsage {
			t.Fatalf("upstream stream body %q does not ask for usage", up)
		}
	})
}

// FuzzTranslateRequest runs client bodies through both dialect
// translations: whatever they accept becomes a valid body for the other
// dialect naming the deployment's model.
func FuzzTranslateRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"42"}],"parallel_tool_calls":false,"tool_choice":"required"}`))
	f.Add([]byte(`{"model":"m","max_tokens":10,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{"a":1}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"ok"}]}],"tool_choice":{"type":"tool","name":"f"},"stop_sequences":["x"],"metadata":{"user_id":"u"}}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if out, err := chatToAnthropic(body, "claude-x"); err == nil {
			var req anthropicRequest
			if err := json.Unmarshal(out, &req); err != nil || req.Model != "claude-x" || req.MaxTokens <= 0 {
				t.Fatalf("chat %q became %q (%v)", body, out, err)
			}
		}
		if out, err := anthropicToChat(body, "gpt-x", false); err == nil {
			var req peeked
			if err := json.Unmarshal(out, &req); err != nil || req.model() != "gpt-x" {
				t.Fatalf("messages %q became %q (%v)", body, out, err)
			}
		}
	})
}
