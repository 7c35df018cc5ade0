package llm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	openai "github.com/sashabaranov/go-openai"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

func anthropicDep(m *mock.LLMServer, model string) DeploymentConfig {
	return DeploymentConfig{Provider: ProviderAnthropic, BaseURL: m.URL, Model: model}
}

// directMessages calls the mock's Anthropic API without the gateway.
func directMessages(t *testing.T, m *mock.LLMServer, body string) anthropicResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, m.URL+"/v1/messages", strings.NewReader(body))
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r anthropicResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

var weatherTool = openai.Tool{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{
	Name: "get_weather", Description: "Weather for a city",
	Parameters: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`),
}}

func TestChatThroughAnthropicUpstream(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	h := newHarness(t, oneModel("claude", anthropicDep(m, "claude-3-5-haiku-latest")))
	ctx := context.Background()
	prompt := "tell me about the sea today"
	want := directMessages(t, m, `{"model":"claude-3-5-haiku-latest","max_tokens":50,"messages":[{"role":"user","content":"`+prompt+`"}]}`)

	t.Run("json", func(t *testing.T) {
		req := chatReq("claude", prompt)
		req.Messages = append([]openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleSystem, Content: "be brief"}}, req.Messages...)
		got, err := h.client(keyAll).CreateChatCompletion(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if got.Choices[0].Message.Content != joinText(want.Content) || got.Choices[0].FinishReason != openai.FinishReasonStop ||
			got.Usage.CompletionTokens != int(want.Usage.OutputTokens) || got.Usage.PromptTokens == 0 {
			t.Fatalf("got %+v, want text %q usage %+v", got, joinText(want.Content), want.Usage)
		}
		if got.Header().Get("x-switchboard-cost-usd") == "" {
			t.Fatal("no cost header")
		}
	})
	t.Run("stream", func(t *testing.T) {
		req := chatReq("claude", prompt)
		req.Stream, req.StreamOptions = true, &openai.StreamOptions{IncludeUsage: true}
		s, err := h.client(keyAll).CreateChatCompletionStream(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		content, _, usage, err := collect(t, s)
		if err != nil || content != joinText(want.Content) || usage == nil || usage.CompletionTokens != int(want.Usage.OutputTokens) {
			t.Fatalf("content %q usage %+v err %v; want %q", content, usage, err, joinText(want.Content))
		}
	})
	t.Run("tool call json", func(t *testing.T) {
		req := chatReq("claude", "please call tool get_weather for Paris")
		req.Tools = []openai.Tool{weatherTool}
		got, err := h.client(keyAll).CreateChatCompletion(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		tc := got.Choices[0].Message.ToolCalls
		if len(tc) != 1 || tc[0].Function.Name != "get_weather" || !json.Valid([]byte(tc[0].Function.Arguments)) ||
			got.Choices[0].FinishReason != openai.FinishReasonToolCalls {
			t.Fatalf("tool calls = %+v", got.Choices[0])
		}
	})
	t.Run("tool call stream", func(t *testing.T) {
		req := chatReq("claude", "please call tool get_weather for Paris")
		req.Tools, req.Stream = []openai.Tool{weatherTool}, true
		s, err := h.client(keyAll).CreateChatCompletionStream(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var name, args string
		var finish openai.FinishReason
		for {
			c, err := s.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range c.Choices {
				for _, tc := range ch.Delta.ToolCalls {
					name += tc.Function.Name
					args += tc.Function.Arguments
				}
				if ch.FinishReason != "" {
					finish = ch.FinishReason
				}
			}
		}
		if name != "get_weather" || !json.Valid([]byte(args)) || finish != openai.FinishReasonToolCalls {
			t.Fatalf("streamed tool call %q(%s), finish %q", name, args, finish)
		}
	})
}

// sseEvents reads an Anthropic stream: event names and the joined text.
func sseEvents(t *testing.T, r io.Reader) (names []string, text string) {
	t.Helper()
	sc := bufio.NewScanner(r)
	var sb strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if n, ok := strings.CutPrefix(line, "event: "); ok && n != "ping" {
			names = append(names, n)
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			var e anthropicEvent
			if json.Unmarshal([]byte(d), &e) == nil && e.Delta != nil {
				sb.WriteString(e.Delta.Text)
			}
		}
	}
	return names, sb.String()
}

// wellFormed checks the Anthropic event grammar.
func wellFormed(names []string) bool {
	if len(names) < 3 || names[0] != "message_start" || names[len(names)-1] != "message_stop" || names[len(names)-2] != "message_delta" {
		return false
	}
	open := false
	for _, n := range names[1 : len(names)-2] {
		switch n {
		case "content_block_start":
			if open {
				return false
			}
			open = true
		case "content_block_delta":
			if !open {
				return false
			}
		case "content_block_stop":
			if !open {
				return false
			}
			open = false
		default:
			return false
		}
	}
	return !open
}

func TestMessagesIngress(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	cfg := Config{Models: []ModelConfig{
		{Name: "claude", Deployments: []DeploymentConfig{anthropicDep(m, "claude-3-5-haiku-latest")}},
		{Name: "gpt", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o-mini")}},
	}}
	h := newHarness(t, cfg)
	prompt := "hello from an anthropic sdk client"
	want := directMessages(t, m, `{"model":"claude-3-5-haiku-latest","max_tokens":64,"messages":[{"role":"user","content":"`+prompt+`"}]}`)
	for _, model := range []string{"claude", "gpt"} {
		body := `{"model":"` + model + `","max_tokens":64,"system":"be kind","messages":[{"role":"user","content":[{"type":"text","text":"` + prompt + `"}]}]}`
		t.Run(model+" json", func(t *testing.T) {
			status, hdr, _, raw := h.post("/v1/messages", "", body, "x-api-key", keyAll, "anthropic-version", "2023-06-01")
			var got anthropicResponse
			if err := json.Unmarshal(raw, &got); err != nil || status != 200 {
				t.Fatalf("%d %s", status, raw)
			}
			if got.Type != "message" || joinText(got.Content) != joinText(want.Content) || got.Usage.OutputTokens == 0 ||
				got.StopReason == nil || *got.StopReason != "end_turn" || hdr.Get("traceparent") == "" {
				t.Fatalf("got %s", raw)
			}
		})
		t.Run(model+" stream", func(t *testing.T) {
			sbody := strings.Replace(body, `"max_tokens":64`, `"max_tokens":64,"stream":true`, 1)
			req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/messages", strings.NewReader(sbody))
			req.Header.Set("x-api-key", keyAll)
			req.Header.Set("anthropic-version", "2023-06-01")
			resp, err := httpClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			names, text := sseEvents(t, resp.Body)
			if resp.StatusCode != 200 || !wellFormed(names) || text != joinText(want.Content) {
				t.Fatalf("status %d events %v text %q want %q", resp.StatusCode, names, text, joinText(want.Content))
			}
		})
	}
	t.Run("errors in Anthropic shape", func(t *testing.T) {
		for _, tc := range []struct {
			key, body string
			status    int
			typ       string
		}{
			{"", `{"model":"claude","max_tokens":5,"messages":[]}`, 401, "authentication_error"},
			{keyAll, `{"model":"claude","messages":[]}`, 400, "invalid_request_error"},
			{keyAll, `{"model":"nope","max_tokens":5,"messages":[]}`, 404, "not_found_error"},
			{keyMini, `{"model":"claude","max_tokens":5,"messages":[]}`, 404, "not_found_error"},
		} {
			status, _, _, raw := h.post("/v1/messages", "", tc.body, "x-api-key", tc.key)
			var e struct {
				Type  string `json:"type"`
				Error struct{ Type, Message string }
			}
			if json.Unmarshal(raw, &e) != nil || status != tc.status || e.Type != "error" || e.Error.Type != tc.typ {
				t.Fatalf("got %d %s, want %d %s", status, raw, tc.status, tc.typ)
			}
		}
	})
}

func TestChatToAnthropicTranslation(t *testing.T) {
	t.Parallel()
	body := `{"model":"x","temperature":0.7,"stop":"END","max_completion_tokens":99,"user":"u1","parallel_tool_calls":false,
	"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"integer"}}}}}],
	"tool_choice":"required",
	"messages":[
	 {"role":"system","content":"sys one"},
	 {"role":"developer","content":"sys two"},
	 {"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},
	 {"role":"assistant","content":"calling","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
	 {"role":"tool","tool_call_id":"call_1","content":"42"},
	 {"role":"user","content":"thanks"}]}`
	out, err := chatToAnthropic([]byte(body), "claude-x")
	if err != nil {
		t.Fatal(err)
	}
	var got anthropicRequest
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"model", got.Model == "claude-x"},
		{"system", joinText(got.System) == "sys one\n\nsys two"},
		{"temperature exact", string(got.Temperature) == "0.7"},
		{"stop", len(got.StopSequences) == 1 && got.StopSequences[0] == "END"},
		{"max tokens", got.MaxTokens == 99},
		{"user", got.Metadata != nil && got.Metadata.UserID == "u1"},
		{"tool schema raw", len(got.Tools) == 1 && string(got.Tools[0].InputSchema) == `{"type":"object","properties":{"a":{"type":"integer"}}}`},
		{"tool choice", got.ToolChoice != nil && got.ToolChoice.Type == "any" && got.ToolChoice.DisableParallelToolUse},
		{"alternating roles", len(got.Messages) == 3 && got.Messages[0].Role == "user" && got.Messages[1].Role == "assistant" && got.Messages[2].Role == "user"},
		{"images", len(got.Messages[0].Content) == 3 && got.Messages[0].Content[1].Source.Type == "base64" &&
			got.Messages[0].Content[1].Source.MediaType == "image/png" && got.Messages[0].Content[2].Source.URL == "https://x/y.png"},
		{"tool use", got.Messages[1].Content[1].Type == "tool_use" && string(got.Messages[1].Content[1].Input) == `{"a":1}`},
		{"tool result merged with next user turn", got.Messages[2].Content[0].Type == "tool_result" &&
			got.Messages[2].Content[0].ToolUseID == "call_1" && joinText(got.Messages[2].Content[0].Content) == "42" &&
			got.Messages[2].Content[1].Text == "thanks"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: wrong in %s", c.name, out)
		}
	}
}

func TestAnthropicToChatTranslation(t *testing.T) {
	t.Parallel()
	body := `{"model":"x","max_tokens":10,"system":[{"type":"text","text":"sys"}],"stop_sequences":["Z"],"temperature":1,
	"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f"},
	"messages":[
	 {"role":"user","content":[{"type":"text","text":"see"},{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"QQ=="}}]},
	 {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{"q":1}}]},
	 {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"done"},{"type":"text","text":"and?"}]}],
	"stream":true}`
	out, err := anthropicToChat([]byte(body), "gpt-x", false)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Model         string                         `json:"model"`
		Messages      []openai.ChatCompletionMessage `json:"messages"`
		Stop          []string                       `json:"stop"`
		StreamOptions *openai.StreamOptions          `json:"stream_options"`
		ToolChoice    json.RawMessage                `json:"tool_choice"`
		Tools         []openAITool                   `json:"tools"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	ms := got.Messages
	if got.Model != "gpt-x" || len(ms) != 5 || ms[0].Role != "system" || ms[0].Content != "sys" ||
		ms[1].MultiContent[1].ImageURL.URL != "data:image/jpeg;base64,QQ==" ||
		ms[2].ToolCalls[0].Function.Arguments != `{"q":1}` || ms[3].Role != "tool" || ms[3].ToolCallID != "t1" || ms[3].Content != "done" ||
		ms[4].Content != "and?" || got.Stop[0] != "Z" || got.StreamOptions == nil || !got.StreamOptions.IncludeUsage ||
		!bytes.Contains(got.ToolChoice, []byte(`"name":"f"`)) || string(got.Tools[0].Function.Parameters) != `{"type":"object"}` {
		t.Fatalf("translation wrong: %s", out)
	}
}

// Translated replies must look like OpenAI's own: no Azure-only fields, finish_reason null until the end.
func TestAnthropicToChatStreamWireShape(t *testing.T) {
	t.Parallel()
	events := []string{
		`{"type":"message_start","message":{"id":"msg_1","model":"claude-x","usage":{"input_tokens":3,"output_tokens":0}}}`,
		`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}`,
		`{"type":"content_block_stop","index":0}`,
		`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1}}`,
		`{"type":"message_stop"}`,
	}
	s := newAnthropicToChatStream(true)
	var out []byte
	for _, e := range events {
		var err error
		if out, err = s.event([]byte("data: "+e+"\n\n"), out); err != nil {
			t.Fatal(err)
		}
	}
	text := string(out)
	if strings.Contains(text, "content_filter_results") || strings.Contains(text, "system_fingerprint") {
		t.Errorf("translated stream carries fields the upstream never sent:\n%s", text)
	}
	first, _, _ := strings.Cut(text, "\n\n")
	if !strings.Contains(first, `"finish_reason":null`) {
		t.Errorf("first chunk should have finish_reason null: %s", first)
	}
	if !strings.Contains(text, `"finish_reason":"stop"`) || !strings.Contains(text, `"prompt_tokens":3`) ||
		!strings.HasSuffix(text, "data: [DONE]\n\n") {
		t.Errorf("stream lacks its finish, usage or [DONE]:\n%s", text)
	}
}

// Negative counts in a streamed Anthropic reply are dropped, keeping the last
// sane value, as a malformed count would be.
func TestAnthropicStreamUsageIgnoresNegativeCounts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		events []string
		want   Usage
	}{
		{"sane", []string{`{"type":"message_start","message":{"usage":{"input_tokens":10,"output_tokens":1}}}`,
			`{"type":"message_delta","usage":{"output_tokens":7}}`}, Usage{Input: 10, Output: 7}},
		{"negative start", []string{`{"type":"message_start","message":{"usage":{"input_tokens":-10,"output_tokens":1}}}`,
			`{"type":"message_delta","usage":{"output_tokens":7}}`}, Usage{Output: 7}},
		{"negative cache write", []string{`{"type":"message_start","message":{"usage":{"input_tokens":10,"cache_creation_input_tokens":-8}}}`},
			Usage{}},
		{"negative delta", []string{`{"type":"message_start","message":{"usage":{"input_tokens":10,"output_tokens":1}}}`,
			`{"type":"message_delta","usage":{"output_tokens":-700}}`}, Usage{Input: 10, Output: 1}},
	} {
		var tr anthropicUsageTracker
		for _, ev := range tc.events {
			var e anthropicEvent
			if err := json.Unmarshal([]byte(ev), &e); err != nil {
				t.Fatal(err)
			}
			tr.observe(&e)
		}
		if got := tr.u.usage(); got != tc.want {
			t.Errorf("%s: usage %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// An OpenAI stream translated for an Anthropic client gives each tool call
// its own tool_use block with all of its arguments, however the server
// numbers and orders the pieces, and stop_reason tool_use when the reply
// calls a tool.
func TestChatToAnthropicStreamToolCalls(t *testing.T) {
	t.Parallel()
	type block struct{ Type, ID, Name, Args string }
	call := func(index *int, id, name, args string) string {
		tc := map[string]any{"function": map[string]string{"arguments": args}}
		if index != nil {
			tc["index"] = *index
		}
		if id != "" {
			tc["id"], tc["type"] = id, "function"
			tc["function"].(map[string]string)["name"] = name
		}
		b, _ := json.Marshal(map[string]any{"id": "chatcmpl-1", "model": "gpt-x",
			"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"tool_calls": []any{tc}}}}})
		return string(b)
	}
	at := func(i int) *int { return &i }
	finish := func(reason string) string {
		return `{"id":"chatcmpl-1","model":"gpt-x","choices":[{"index":0,"delta":{},"finish_reason":"` + reason + `"}]}`
	}
	weather := block{"tool_use", "call_a", "weather", `{"city":"Paris"}`}
	clock := block{"tool_use", "call_b", "clock", `{"tz":"UTC"}`}
	cases := []struct {
		name   string
		chunks []string
		blocks []block
		stop   string
	}{
		{"one after the other", []string{
			call(at(0), "call_a", "weather", `{"city":`), call(at(0), "", "", `"Paris"}`),
			call(at(1), "call_b", "clock", `{"tz":`), call(at(1), "", "", `"UTC"}`), finish("tool_calls"),
		}, []block{weather, clock}, "tool_use"},
		{"interleaved", []string{
			call(at(0), "call_a", "weather", `{"city":`), call(at(1), "call_b", "clock", `{"tz":`),
			call(at(0), "", "", `"Paris"}`), call(at(1), "", "", `"UTC"}`), finish("tool_calls"),
		}, []block{weather, clock}, "tool_use"},
		{"without an index", []string{
			call(nil, "call_a", "weather", `{"city":"Paris"}`), call(nil, "call_b", "clock", `{"tz":"UTC"}`), finish("tool_calls"),
		}, []block{weather, clock}, "tool_use"},
		{"every call at index 0", []string{
			call(at(0), "call_a", "weather", `{"city":"Paris"}`), call(at(0), "call_b", "clock", `{"tz":`), call(at(0), "", "", `"UTC"}`),
			finish("tool_calls"),
		}, []block{weather, clock}, "tool_use"},
		{"finished with stop", []string{call(at(0), "call_a", "weather", `{"city":"Paris"}`), finish("stop")}, []block{weather}, "tool_use"},
		{"cut by max tokens", []string{call(at(0), "call_a", "weather", `{"city":"Paris"}`), finish("length")}, []block{weather}, "max_tokens"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newChatToAnthropicStream()
			var out []byte
			for _, c := range append(tc.chunks, "[DONE]") {
				var err error
				if out, err = s.event([]byte("data: "+c+"\n\n"), out); err != nil {
					t.Fatal(err)
				}
			}
			var blocks []block
			var stop string
			for _, ev := range strings.Split(strings.TrimSpace(string(out)), "\n\n") {
				_, data, _ := strings.Cut(ev, "\ndata: ")
				var e struct {
					Type         string
					Index        int
					ContentBlock struct{ Type, ID, Name string } `json:"content_block"`
					Delta        struct {
						PartialJSON string `json:"partial_json"`
						StopReason  string `json:"stop_reason"`
					}
				}
				if err := json.Unmarshal([]byte(data), &e); err != nil {
					t.Fatalf("event %q: %v", ev, err)
				}
				switch e.Type {
				case "content_block_start":
					if e.Index != len(blocks) {
						t.Fatalf("block %d started at index %d", len(blocks), e.Index)
					}
					blocks = append(blocks, block{Type: e.ContentBlock.Type, ID: e.ContentBlock.ID, Name: e.ContentBlock.Name})
				case "content_block_delta":
					blocks[e.Index].Args += e.Delta.PartialJSON
				case "message_delta":
					stop = e.Delta.StopReason
				}
			}
			if !slices.Equal(blocks, tc.blocks) || stop != tc.stop {
				t.Fatalf("blocks %+v, stop_reason %q; want %+v, %q\n%s", blocks, stop, tc.blocks, tc.stop, out)
			}
		})
	}
}

// Azure opens a stream with a chunk of prompt filter results that has no
// id, model or choices; the message starts with the first chunk that has
// them. A stream that never names an id still gets one.
func TestChatToAnthropicStreamStart(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, first string
		id, model   string
	}{
		{"azure prelude", `{"id":"","model":"","choices":[],"prompt_filter_results":[{"prompt_index":0}]}`, "msg_1", "gpt-x"},
		{"no prelude", "", "msg_1", "gpt-x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newChatToAnthropicStream()
			var out []byte
			chunks := []string{`{"id":"chatcmpl-1","model":"gpt-x","choices":[{"index":0,"delta":{"content":"Hi"}}]}`, "[DONE]"}
			if tc.first != "" {
				chunks = append([]string{tc.first}, chunks...)
			}
			for _, c := range chunks {
				out, _ = s.event([]byte("data: "+c+"\n\n"), out)
			}
			first, _, _ := strings.Cut(string(out), "\n\n")
			var e struct {
				Type    string
				Message struct{ ID, Model string }
			}
			_, data, _ := strings.Cut(first, "\ndata: ")
			if err := json.Unmarshal([]byte(data), &e); err != nil || e.Type != "message_start" || e.Message.ID != tc.id || e.Message.Model != tc.model {
				t.Fatalf("first event %s; want message_start with id %q and model %q", first, tc.id, tc.model)
			}
		})
	}
	s := newChatToAnthropicStream()
	out, _ := s.event([]byte("data: [DONE]\n\n"), nil)
	if !strings.HasPrefix(string(out), "event: message_start\n") || strings.Contains(string(out), `"id":"msg_"`) {
		t.Fatalf("an empty stream's events:\n%s", out)
	}
}

// The JSON reply says tool_use when it calls a tool, whatever finish_reason
// the server gave.
func TestChatToAnthropicResponseStopReason(t *testing.T) {
	t.Parallel()
	cases := []struct{ finish, toolCalls, want string }{
		{"stop", `[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]`, "tool_use"},
		{"tool_calls", `[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]`, "tool_use"},
		{"length", `[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]`, "max_tokens"},
		{"stop", `null`, "end_turn"},
	}
	for _, tc := range cases {
		raw := `{"id":"chatcmpl-1","model":"m","choices":[{"index":0,"finish_reason":"` + tc.finish +
			`","message":{"role":"assistant","content":"","tool_calls":` + tc.toolCalls + `}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`
		out, _, err := chatToAnthropicResponse([]byte(raw))
		var got anthropicResponse
		if err != nil || json.Unmarshal(out, &got) != nil || got.StopReason == nil || *got.StopReason != tc.want {
			t.Errorf("finish_reason %s with tool calls %s: %s, %v; want stop_reason %s", tc.finish, tc.toolCalls, out, err, tc.want)
		}
	}
}

// What an OpenAI-compatible model cannot be told is refused, not dropped:
// Anthropic's own tools. A failed tool result says so in its text.
func TestAnthropicToChatToolEdges(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body, content, err string
	}{
		{"server tool", `{"max_tokens":5,"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":5}],"messages":[{"role":"user","content":"hi"}]}`,
			"", `tools[0]: tool type "web_search_20250305" is Anthropic's own`},
		{"custom tool", `{"max_tokens":5,"tools":[{"type":"custom","name":"f","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"hi"}]}`,
			"hi", ""},
		{"failed tool result", `{"max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":[{"type":"text","text":"no such city"}]}]}]}`,
			"Error: no such city", ""},
		{"failed tool result without text", `{"max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","is_error":true}]}]}`,
			"Error", ""},
		{"tool result", `{"max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"sunny"}]}]}`,
			"sunny", ""},
	}
	for _, tc := range cases {
		out, err := anthropicToChat([]byte(tc.body), "m", false)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want one saying %q", tc.name, err, tc.err)
			}
			continue
		}
		var got struct {
			Messages []openai.ChatCompletionMessage
		}
		if err != nil || json.Unmarshal(out, &got) != nil || len(got.Messages) != 1 || got.Messages[0].Content != tc.content {
			t.Errorf("%s: %s, %v; want one message %q", tc.name, out, err, tc.content)
		}
	}
}

// An OpenAI client's stream from an Anthropic tool call has the chunk shape
// OpenAI sends: id, type and name only in the call's first chunk, no empty
// argument pieces.
func TestAnthropicToChatStreamToolChunks(t *testing.T) {
	t.Parallel()
	events := []string{
		`{"type":"message_start","message":{"id":"msg_1","model":"claude-x","usage":{"input_tokens":3,"output_tokens":1}}}`,
		`{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}`,
		`{"type":"content_block_stop","index":0}`,
		`{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}`,
		`{"type":"message_stop"}`,
	}
	s := newAnthropicToChatStream(false)
	var out []byte
	for _, e := range events {
		var err error
		if out, err = s.event([]byte("data: "+e+"\n\n"), out); err != nil {
			t.Fatal(err)
		}
	}
	var calls []string
	for _, ev := range strings.Split(strings.TrimSpace(string(out)), "\n\n") {
		if i := strings.Index(ev, `"tool_calls":`); i >= 0 {
			calls = append(calls, ev[i:strings.Index(ev, `]`)+1])
		}
	}
	want := []string{
		`"tool_calls":[{"index":0,"id":"toolu_1","type":"function","function":{"name":"get_weather"}}]`,
		`"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]`,
		`"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]`,
	}
	if !slices.Equal(calls, want) {
		t.Fatalf("tool call chunks:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(string(out), `"finish_reason":"tool_calls"`) {
		t.Fatalf("no tool_calls finish in:\n%s", out)
	}
}

// A translated reply writes the nullable fields OpenAI always writes:
// content (null when the reply only calls tools), refusal and logprobs.
func TestAnthropicToChatResponseNullableFields(t *testing.T) {
	t.Parallel()
	cases := []struct{ content, want string }{
		{`[{"type":"tool_use","id":"toolu_1","name":"f","input":{"a":1}}]`, `"content":null,"refusal":null,"tool_calls":[`},
		{`[{"type":"text","text":"hi"}]`, `"content":"hi","refusal":null}`},
		{`[]`, `"content":"","refusal":null}`},
	}
	for _, tc := range cases {
		out, _, err := anthropicToChatResponse([]byte(`{"id":"msg_1","model":"claude-x","content":` + tc.content +
			`,"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}`))
		if err != nil || !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), `"logprobs":null`) {
			t.Errorf("content %s: %s, %v; want %s and logprobs null", tc.content, out, err, tc.want)
		}
	}
}

// What an Anthropic model cannot give is refused rather than dropped.
func TestChatToAnthropicRefusesWhatItCannotTranslate(t *testing.T) {
	t.Parallel()
	cases := []struct{ extra, err string }{
		{`"n":2`, "n: Anthropic models give one choice"},
		{`"logprobs":true`, "logprobs"},
		{`"top_logprobs":2`, "logprobs"},
		{`"response_format":{"type":"json_object"}`, `response_format: "json_object"`},
		{`"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{}}}`, `response_format: "json_schema"`},
		{`"n":1,"logprobs":false,"response_format":{"type":"text"}`, ""},
	}
	for _, tc := range cases {
		_, err := chatToAnthropic([]byte(`{"model":"m",`+tc.extra+`,"messages":[{"role":"user","content":"hi"}]}`), "claude-x")
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: err %v, want %q", tc.extra, err, tc.err)
		}
	}
}

// An Anthropic request's max_tokens reaches OpenAI's reasoning models as
// max_completion_tokens, which they require, and every other model as
// max_tokens, which many OpenAI-compatible servers know alone. A name that
// hides the model (an Azure deployment, a server's alias) defeats that rule,
// so max_tokens_field overrides it either way.
func TestAnthropicToChatMaxTokensField(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	var azureMu sync.Mutex
	var azureBody []byte
	azure := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/openai/deployments/prod-chat/chat/completions" {
			http.NotFound(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		azureMu.Lock()
		azureBody = body
		azureMu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"a","object":"chat.completion","model":"o3","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	t.Cleanup(azure.Close)
	openaiWith := func(model string, f MaxTokensField) DeploymentConfig {
		d := openaiDep(m, model)
		d.MaxTokensField = f
		return d
	}
	azureWith := func(f MaxTokensField) DeploymentConfig {
		return DeploymentConfig{Provider: ProviderAzure, BaseURL: azure.URL, Deployment: "prod-chat", APIVersion: "2024-10-21", MaxTokensField: f}
	}
	cases := []struct {
		dep   DeploymentConfig
		field string
	}{
		{openaiWith("gpt-5", ""), "max_completion_tokens"},
		{openaiWith("gpt-5-mini-2025-08-07", ""), "max_completion_tokens"},
		{openaiWith("o3-mini", ""), "max_completion_tokens"},
		{openaiWith("O1", ""), "max_completion_tokens"},
		{openaiWith("openai/o4-mini", ""), "max_completion_tokens"},
		{openaiWith("gpt-4o-mini", ""), "max_tokens"},
		{openaiWith("llama3.1:8b", ""), "max_tokens"},
		{openaiWith("meta/llama-3-70b", ""), "max_tokens"},
		{openaiWith("gpt-oss-20b", ""), "max_tokens"},
		{openaiWith("o3", MaxTokensFieldAuto), "max_completion_tokens"},
		{openaiWith("gpt-4o-mini", MaxTokensFieldAuto), "max_tokens"},
		{openaiWith("o3", MaxTokensFieldMaxTokens), "max_tokens"},
		{openaiWith("my-reasoner", MaxTokensFieldMaxCompletionTokens), "max_completion_tokens"},
		{azureWith(""), "max_tokens"},
		{azureWith(MaxTokensFieldAuto), "max_tokens"},
		{azureWith(MaxTokensFieldMaxCompletionTokens), "max_completion_tokens"},
	}
	var cfg Config
	for i, tc := range cases {
		cfg.Models = append(cfg.Models, ModelConfig{Name: fmt.Sprintf("m%d", i), Deployments: []DeploymentConfig{tc.dep}})
	}
	h := newHarness(t, cfg)
	// One call at a time: each upstream keeps only the latest body.
	for i, tc := range cases {
		body := fmt.Sprintf(`{"model":"m%d","max_tokens":77,"messages":[{"role":"user","content":"hi"}]}`, i)
		status, _, _, raw := h.post("/v1/messages", "", body, "x-api-key", keyAll, "anthropic-version", "2023-06-01")
		sent := m.LastRequest().Body
		if tc.dep.Provider == ProviderAzure {
			azureMu.Lock()
			sent = azureBody
			azureMu.Unlock()
		}
		var got map[string]json.RawMessage
		if status != http.StatusOK || json.Unmarshal(sent, &got) != nil || string(got[tc.field]) != "77" || len(got) != 3 {
			t.Errorf("%s %s%s with max_tokens_field %q: %d %s; upstream got %s, want only %s among model, messages and the limit",
				tc.dep.Provider, tc.dep.Model, tc.dep.Deployment, tc.dep.MaxTokensField, status, raw, sent, tc.field)
		}
	}
}
