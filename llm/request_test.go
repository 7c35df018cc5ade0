package llm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
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
		choices   int64 // 0: one
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
		{name: "choices", body: `{"model":"m","n":3}`, model: "m", choices: 3},
		{name: "choices null", body: `{"model":"m","n":null}`, model: "m"},
		{name: "no choices", body: `{"model":"m","n":0}`, wantErr: "from 1 to 128"},
		{name: "too many choices", body: `{"model":"m","n":129}`, wantErr: "from 1 to 128"},
		{name: "choices not an integer", body: `{"model":"m","n":2.5}`, wantErr: "from 1 to 128"},
		{name: "duplicate choices", body: `{"model":"m","n":1,"n":50}`, wantErr: "more than once"},
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
			if r.model != tc.model || r.stream != tc.stream || r.includeUsage != tc.usage || r.maxTokens != tc.maxTokens ||
				r.choices != max(tc.choices, 1) {
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
			got := string(r.upstreamBody(nil, []byte(`"dep"`), true))
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

func TestOpenAIStreamUsageChunks(t *testing.T) {
	t.Parallel()
	const usage = `"usage":{"prompt_tokens":3,"completion_tokens":2}`
	tests := []struct {
		name, data  string
		clientWants bool
		relayed     bool
		want        Usage
	}{
		{"usage only, not asked", `{"choices":[],` + usage + `}`, false, false, Usage{Input: 3, Output: 2}},
		{"spaced empty choices", `{"choices": [ ], ` + usage + `}`, false, false, Usage{Input: 3, Output: 2}},
		{"no choices key", `{` + usage + `}`, false, false, Usage{Input: 3, Output: 2}},
		{"usage with a choice", `{"choices":[{"delta":{}}],` + usage + `}`, false, true, Usage{Input: 3, Output: 2}},
		{"asked for", `{"choices":[],` + usage + `}`, true, true, Usage{Input: 3, Output: 2}},
		{"malformed count ignored", `{"choices":[],"usage":{"prompt_tokens":"x"}}`, false, true, Usage{}},
		{"negative count ignored", `{"choices":[],"usage":{"prompt_tokens":-3,"completion_tokens":2}}`, false, true, Usage{}},
	}
	for _, tc := range tests {
		s := &openAIStream{clientWantsUsage: tc.clientWants}
		out, err := s.event([]byte("data: "+tc.data+"\n\n"), nil)
		if err != nil || (len(out) > 0) != tc.relayed || s.usage() != tc.want {
			t.Errorf("%s: out %q err %v usage %+v", tc.name, out, err, s.usage())
		}
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
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		r, err := parseRequest(body)
		if err != nil {
			b.Fatal(err)
		}
		buf = r.upstreamBody(buf[:0], []byte(`"gpt-4o-mini-2024-07-18"`), true)
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

func TestOpenAIUsageOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		want       Usage
		wantErr    bool
	}{
		{"full", `{"id":"x","usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,` +
			`"prompt_tokens_details":{"audio_tokens":0,"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":0}}}`,
			Usage{Input: 12, Output: 5, Cached: 4}, false},
		{"spaced", "{ \"usage\" : { \"completion_tokens\" : 3 , \"prompt_tokens\" : 9 } }", Usage{Input: 9, Output: 3}, false},
		{"nested usage ignored", `{"choices":[{"usage":{"prompt_tokens":99}}],"usage":{"prompt_tokens":1}}`, Usage{Input: 1}, false},
		{"no usage", `{"id":"x"}`, Usage{}, false},
		{"null usage", `{"usage":null}`, Usage{}, false},
		{"null counts", `{"usage":{"prompt_tokens":null,"prompt_tokens_details":null}}`, Usage{}, false},
		{"not an object", `{"usage":[1]}`, Usage{}, true},
		{"fraction", `{"usage":{"prompt_tokens":1.5}}`, Usage{}, true},
		{"string count", `{"usage":{"completion_tokens":"7"}}`, Usage{}, true},
		{"huge count", `{"usage":{"prompt_tokens":12345678901234567890}}`, Usage{}, true},
		{"bad cached", `{"usage":{"prompt_tokens_details":{"cached_tokens":true}}}`, Usage{}, true},
		{"negative count", `{"usage":{"prompt_tokens":-12,"completion_tokens":5}}`, Usage{}, true},
		{"negative cached", `{"usage":{"prompt_tokens":9,"prompt_tokens_details":{"cached_tokens":-4}}}`, Usage{}, true},
		{"minus alone", `{"usage":{"prompt_tokens":-}}`, Usage{}, true},
	} {
		got, err := openAIUsageOf([]byte(tc.body))
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v, error %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

func BenchmarkOpenAIUsageOf(b *testing.B) {
	body := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,` +
		`"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,` +
		`"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := openAIUsageOf(body); err != nil {
			b.Fatal(err)
		}
	}
}

// The budget hold covers every choice the call asks for.
func TestEstimateUsageCoversEveryChoice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body   string
		kind   callKind
		output int64
	}{
		{`{"model":"m"}`, kindChat, defaultMaxOutput},
		{`{"model":"m","max_tokens":100}`, kindChat, 100},
		{`{"model":"m","max_tokens":100,"n":3}`, kindChat, 300},
		{`{"model":"m","n":128}`, kindChat, 128 * defaultMaxOutput},
		{`{"model":"m","max_tokens":9223372036854775807,"n":2}`, kindChat, math.MaxInt64},
		{`{"model":"m","n":3}`, kindEmbeddings, 0},
	} {
		r, err := parseRequest([]byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if got := estimateUsage(r, tc.kind).Output; got != tc.output {
			t.Errorf("%s: output estimate %d, want %d", tc.body, got, tc.output)
		}
	}
}

// reserveRecorder notes what each Reserve asked for.
type reserveRecorder struct {
	Governor
	mu   sync.Mutex
	reqs []governance.Request
}

func (r *reserveRecorder) Reserve(p *governance.Principal, req governance.Request) (*governance.Reservation, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	return r.Governor.Reserve(p, req)
}

// The budget hold prices the prompt at one token per body byte, an upper
// bound no tokenizer exceeds, so concurrent calls cannot overspend; the
// rate-limit reservation counts the typical four bytes a token.
func TestReservationBoundsTheCost(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	dep := openaiDep(m, "gpt-4o-mini")
	dep.Pricing = &PricingConfig{InputPerMTok: "1000", OutputPerMTok: "2000"}
	rec := &reserveRecorder{}
	h := newHarnessWith(t, oneModel("m", dep), func(g Governor) Governor { rec.Governor = g; return rec })
	body := `{"model":"m","max_tokens":10,"n":2,"messages":[{"role":"user","content":"` + strings.Repeat("a ", 500) + `"}]}`
	if status, _, _, raw := h.post("/v1/chat/completions", keyAll, body); status != 200 {
		t.Fatalf("%d %s", status, raw)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) != 1 {
		t.Fatalf("%d reservations", len(rec.reqs))
	}
	got := rec.reqs[0]
	bytes := int64(len(body))
	wantCost := bytes*1000*1000 + 2*10*2000*1000 // nano-USD: a token per byte in, n × max_tokens out
	wantTokens := (bytes+3)/4 + 2*10
	if got.EstimatedCostNanoUSD != wantCost || got.EstimatedTokens != wantTokens {
		t.Fatalf("reserved %d nano-USD and %d tokens, want %d and %d", got.EstimatedCostNanoUSD, got.EstimatedTokens, wantCost, wantTokens)
	}
}

// The hold prices only the deployments that can serve the call: a Responses call to a group that also holds a dear
// Anthropic deployment is held at its openai deployment's price (a chat call's prompt at the Anthropic one's 1-hour
// cache write price, twice its input price), and a token count holds nothing.
func TestReservationPricesOnlyServingDeployments(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	cheap := openaiDep(m, "gpt-4o-mini")
	cheap.Pricing = &PricingConfig{InputPerMTok: "1", OutputPerMTok: "1"}
	dear := anthropicDep(m, "claude-3-5-haiku-latest")
	dear.Pricing = &PricingConfig{InputPerMTok: "1000", OutputPerMTok: "1000"}
	rec := &reserveRecorder{}
	h := newHarnessWith(t, oneModel("mixed", cheap, dear), func(g Governor) Governor { rec.Governor = g; return rec })
	for _, tc := range []struct {
		name, path, body string
		inPerMTok        int64 // the prices the hold must use, nano-USD per million tokens
		outPerMTok       int64
		maxOut           int64
	}{
		{"chat may reach either", "/v1/chat/completions", `{"model":"mixed","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`, 2000_000_000_000, 1000_000_000_000, 16},
		{"responses may reach either", "/v1/responses", `{"model":"mixed","max_output_tokens":16,"input":"hi"}`, 2000_000_000_000, 1000_000_000_000, 16},
		{"stored responses reach openai only", "/v1/responses", `{"model":"mixed","max_output_tokens":16,"input":"hi","store":true}`, 1_000_000_000, 1_000_000_000, 16},
		{"counting is free", "/v1/messages/count_tokens", `{"model":"mixed","messages":[{"role":"user","content":"hi"}]}`, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec.mu.Lock()
			rec.reqs = nil
			rec.mu.Unlock()
			if status, _, _, raw := h.post(tc.path, keyAll, tc.body, "anthropic-version", "2023-06-01"); status != 200 {
				t.Fatalf("%d %s", status, raw)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.reqs) != 1 {
				t.Fatalf("%d reservations", len(rec.reqs))
			}
			// A token per body byte in and max tokens out, at the price.
			want := (int64(len(tc.body))*tc.inPerMTok + tc.maxOut*tc.outPerMTok) / 1_000_000
			if got := rec.reqs[0].EstimatedCostNanoUSD; got != want {
				t.Fatalf("held %d nano-USD, want %d", got, want)
			}
		})
	}
}

// The hold covers what the prompt may bill at its dearest: an Anthropic prompt written to the cache costs 1.25
// (five minutes) or 2 (one hour) times plain input, so a prompt of as many tokens as bytes, the bound the hold
// assumes, must still be covered when all of it is written to the cache.
func TestReservationCoversCacheWrites(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, cacheControl string
		usage              func(tokens int) string
	}{
		{"plain input", ``, func(n int) string { return fmt.Sprintf(`{"input_tokens":%d,"output_tokens":16}`, n) }},
		{"5-minute cache write", `,"cache_control":{"type":"ephemeral"}`, func(n int) string {
			return fmt.Sprintf(`{"input_tokens":0,"output_tokens":16,"cache_creation_input_tokens":%d}`, n)
		}},
		{"1-hour cache write", `,"cache_control":{"type":"ephemeral","ttl":"1h"}`, func(n int) string {
			return fmt.Sprintf(`{"input_tokens":0,"output_tokens":16,"cache_creation_input_tokens":%[1]d,`+
				`"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":%[1]d}}`, n)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := `{"model":"claude","max_tokens":16,"system":[{"type":"text","text":"` + strings.Repeat("x", 2000) + `"` +
				tc.cacheControl + `}],"messages":[{"role":"user","content":"hi"}]}`
			// An Anthropic upstream that counts a token per byte of the client's body.
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"ok"}],`+
					`"stop_reason":"end_turn","stop_sequence":null,"usage":%s}`, tc.usage(len(body)))
			}))
			defer up.Close()
			dep := DeploymentConfig{Provider: ProviderAnthropic, BaseURL: up.URL, Model: "claude-sonnet-4-5", Timeout: 10 * time.Second}
			dep.Pricing = &PricingConfig{InputPerMTok: "1000", OutputPerMTok: "1000"}
			rec := &reserveRecorder{}
			h := newHarnessWith(t, oneModel("claude", dep), func(g Governor) Governor { rec.Governor = g; return rec })
			status, hdr, _, raw := h.post("/v1/messages", keyAll, body, "anthropic-version", "2023-06-01")
			if status != 200 {
				t.Fatalf("%d %s", status, raw)
			}
			cost, ok := parseUSD(hdr.Get("X-Switchboard-Cost-Usd"))
			if !ok {
				t.Fatalf("cost header %q", hdr.Get("X-Switchboard-Cost-Usd"))
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.reqs) != 1 {
				t.Fatalf("%d reservations", len(rec.reqs))
			}
			if held := rec.reqs[0].EstimatedCostNanoUSD; held < cost {
				t.Fatalf("held %d nano-USD for a call that cost %d", held, cost)
			}
		})
	}
}
