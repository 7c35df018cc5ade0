package llm

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	oai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/responses"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

const claudeUpstream = "claude-3-5-haiku-latest"

func claudePrice(t *testing.T) Price {
	t.Helper()
	p, ok := builtinPrice(claudeUpstream)
	if !ok {
		t.Fatalf("no built-in price for %s", claudeUpstream)
	}
	return p
}

// streamed is what a client sees of a Responses stream: the event types in order, their sequence numbers, the
// text as the deltas build it, the SDK's own accumulation of the events, and the terminal response.
type streamed struct {
	types []string
	seqs  []int64
	text  string
	acc   responses.ResponseAccumulator
	final responses.Response
	err   error
}

func readResponsesStream(t *testing.T, st *ssestream.Stream[responses.ResponseStreamEventUnion]) *streamed {
	t.Helper()
	var s streamed
	var text strings.Builder
	for st.Next() {
		ev := st.Current()
		s.types = append(s.types, ev.Type)
		s.seqs = append(s.seqs, ev.SequenceNumber)
		if ev.Type == "response.output_text.delta" {
			text.WriteString(ev.Delta)
		}
		if ev.Type == "response.completed" || ev.Type == "response.incomplete" {
			s.final = ev.Response
		}
		// The accumulator reads the same event shapes over HTTP as over a WebSocket, and checks their fields.
		var sev responses.ResponsesServerEventUnion
		if err := json.Unmarshal([]byte(ev.RawJSON()), &sev); err != nil {
			t.Fatalf("event %s: %v", ev.RawJSON(), err)
		}
		if err := s.acc.AddEvent(sev); err != nil && s.err == nil {
			s.err = err
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	s.text = text.String()
	for i, n := range s.seqs {
		if n != int64(i) {
			t.Fatalf("sequence numbers %v do not count up from 0", s.seqs)
		}
	}
	return &s
}

func TestResponsesThroughAnthropic(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	h := newHarness(t, oneModel("claude", anthropicDep(m, claudeUpstream)))
	price := claudePrice(t)
	textEvents := func(deltas int) []string {
		ev := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
		for range deltas {
			ev = append(ev, "response.output_text.delta")
		}
		return append(ev, "response.output_text.done", "response.content_part.done", "response.output_item.done")
	}
	cases := []struct {
		name, prompt string
		maxOut       int64
		stream       bool
		wantText     string
		wantStatus   string
		wantEvents   []string
	}{
		{name: "json", prompt: "hello there from claude", maxOut: 50, wantText: "hello there from claude", wantStatus: "completed"},
		{name: "json cut by max_output_tokens", prompt: "one two three four five", maxOut: 3, wantText: "one two three", wantStatus: "incomplete"},
		{name: "stream", prompt: "hello there from claude", maxOut: 50, stream: true, wantText: "hello there from claude",
			wantStatus: "completed", wantEvents: append(textEvents(4), "response.completed")},
		{name: "stream cut by max_output_tokens", prompt: "one two three four five", maxOut: 3, stream: true, wantText: "one two three",
			wantStatus: "incomplete", wantEvents: append(textEvents(3), "response.incomplete")},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := respParams("claude", tc.prompt)
			p.MaxOutputTokens = oai.Int(tc.maxOut)
			p.Instructions = oai.String("be brief")
			p.Temperature = oai.Float(0.5)
			var got responses.Response
			var hr *http.Response
			if tc.stream {
				s := readResponsesStream(t, h.responsesClient(keyAll).Responses.NewStreaming(context.Background(), p))
				if strings.Join(s.types, " ") != strings.Join(tc.wantEvents, " ") || s.text != tc.wantText || s.err != nil {
					t.Fatalf("events %v, text %q, accumulator %v", s.types, s.text, s.err)
				}
				if acc := s.acc.Snapshot(); acc.OutputText() != tc.wantText || acc.TerminalEvent != tc.wantEvents[len(tc.wantEvents)-1] {
					t.Fatalf("accumulated %+v", acc)
				}
				got = s.final
			} else {
				r, err := h.responsesClient(keyAll).Responses.New(context.Background(), p, option.WithResponseInto(&hr))
				if err != nil {
					t.Fatal(err)
				}
				got = *r
			}
			// The mock counts words: the instructions' two and the prompt's.
			in, out := int64(2+len(strings.Fields(tc.prompt))), int64(len(strings.Fields(tc.wantText)))
			if got.OutputText() != tc.wantText || string(got.Status) != tc.wantStatus || !strings.HasPrefix(got.ID, "resp_") ||
				got.Object != "response" || got.Model != claudeUpstream || got.Usage.InputTokens != in || got.Usage.OutputTokens != out ||
				got.Usage.TotalTokens != in+out {
				t.Fatalf("response %s", got.RawJSON())
			}
			if tc.wantStatus == "incomplete" && got.IncompleteDetails.Reason != "max_output_tokens" {
				t.Fatalf("incomplete_details %s", got.RawJSON())
			}
			up := m.LastRequest()
			var sent anthropicRequest
			if err := json.Unmarshal(up.Body, &sent); err != nil || up.Path != "/v1/messages" {
				t.Fatalf("upstream got %s %s", up.Path, up.Body)
			}
			if sent.Model != claudeUpstream || sent.MaxTokens != tc.maxOut || joinText(sent.System) != "be brief" ||
				string(sent.Temperature) != "0.5" || sent.Stream != tc.stream || len(sent.Messages) != 1 || joinText(sent.Messages[0].Content) != tc.prompt {
				t.Fatalf("upstream body %s", up.Body)
			}
			wantCost := price.Cost(Usage{Input: in, Output: out})
			if !tc.stream {
				if c := hr.Header.Get("x-switchboard-cost-usd"); c != FormatUSD(wantCost) {
					t.Fatalf("x-switchboard-cost-usd = %q, want %q", c, FormatUSD(wantCost))
				}
			}
			span := h.waitSpans("responses claude", i+1)[i]
			if span.Provider != "anthropic" || span.InputTokens != in || span.OutputTokens != out || span.CostNanoUSD != wantCost ||
				span.Status != trace.StatusOK {
				t.Fatalf("span = %+v", span)
			}
			for _, a := range span.Attrs {
				if a.Key == "usage" {
					t.Fatalf("a complete reply was billed as estimated: %+v", span.Attrs)
				}
			}
		})
	}
}

// TestResponsesToolRoundTripThroughAnthropic is the Agents SDK's and the Codex CLI's loop: the model calls a
// function, the client runs it and sends the call and its output back as input items. A function in a namespace
// (Codex sends its sub-agent tools so) reaches Anthropic under a flat name and comes back split.
func TestResponsesToolRoundTripThroughAnthropic(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	h := newHarness(t, oneModel("claude", anthropicDep(m, claudeUpstream)))
	schema := map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}},
		"required": []string{"city"}, "additionalProperties": false}
	plain := []responses.ToolUnionParam{{OfFunction: &responses.FunctionToolParam{Name: "get_weather", Strict: oai.Bool(true),
		Description: oai.String("the weather in a city"), Parameters: schema}}}
	namespaced := []responses.ToolUnionParam{{OfNamespace: &responses.NamespaceToolParam{Name: "weather", Description: "weather tools",
		Tools: []responses.NamespaceToolToolUnionParam{{OfFunction: &responses.NamespaceToolToolFunctionParam{Name: "get_weather",
			Description: oai.String("the weather in a city"), Parameters: schema}}}}}}
	cases := []struct {
		name          string
		tools         []responses.ToolUnionParam
		prompt        string
		wantNamespace string
		upstreamName  string // the tool's name on the Anthropic side
	}{
		{name: "function", tools: plain, prompt: "call tool get_weather for Paris", upstreamName: "get_weather"},
		{name: "function in a namespace", tools: namespaced, prompt: "call tool weather__get_weather for Paris",
			wantNamespace: "weather", upstreamName: "weather__get_weather"},
	}
	for _, tc := range cases {
		for _, stream := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{false: ", json", true: ", stream"}[stream], func(t *testing.T) {
				ask := func(p responses.ResponseNewParams) (responses.Response, []string) {
					p.Tools = tc.tools
					if !stream {
						got, err := h.responsesClient(keyAll).Responses.New(context.Background(), p)
						if err != nil {
							t.Fatal(err)
						}
						return *got, nil
					}
					s := readResponsesStream(t, h.responsesClient(keyAll).Responses.NewStreaming(context.Background(), p))
					if s.err != nil {
						t.Fatalf("accumulator: %v (events %v)", s.err, s.types)
					}
					return s.final, s.types
				}
				p := respParams("claude", tc.prompt)
				p.ToolChoice = responses.ResponseNewParamsToolChoiceUnion{OfToolChoiceMode: oai.Opt(responses.ToolChoiceOptionsRequired)}
				first, types := ask(p)
				if len(first.Output) != 1 || first.Output[0].Type != "function_call" || first.Status != "completed" {
					t.Fatalf("first reply %s", first.RawJSON())
				}
				fc := first.Output[0].AsFunctionCall()
				var args map[string]string
				if fc.Name != "get_weather" || fc.Namespace != tc.wantNamespace || !strings.HasPrefix(fc.CallID, "toolu_") ||
					!strings.HasPrefix(fc.ID, "fc_") || json.Unmarshal([]byte(fc.Arguments), &args) != nil || args["city"] == "" {
					t.Fatalf("function call %s", first.Output[0].RawJSON())
				}
				if stream {
					want := "response.created response.in_progress response.output_item.added response.function_call_arguments.delta"
					if got := strings.Join(types, " "); !strings.HasPrefix(got, want) ||
						!strings.HasSuffix(got, "response.function_call_arguments.delta response.function_call_arguments.done response.output_item.done response.completed") {
						t.Fatalf("events %v", types)
					}
				}
				var sent anthropicRequest
				_ = json.Unmarshal(m.LastRequest().Body, &sent)
				if len(sent.Tools) != 1 || sent.Tools[0].Name != tc.upstreamName || sent.Tools[0].Description != "the weather in a city" ||
					!strings.Contains(string(sent.Tools[0].InputSchema), `"city"`) || sent.ToolChoice == nil || sent.ToolChoice.Type != "any" {
					t.Fatalf("upstream tools %s", m.LastRequest().Body)
				}

				call := fc.ToParam()
				output := responses.ResponseInputItemParamOfFunctionCallOutput("sunny in Paris")
				output.OfFunctionCallOutput.CallID = oai.String(fc.CallID)
				p = respParams("claude", "")
				p.Input = responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
					responses.ResponseInputItemParamOfMessage(tc.prompt, responses.EasyInputMessageRoleUser),
					{OfFunctionCall: &call},
					output,
				}}
				second, _ := ask(p)
				if second.OutputText() != "sunny in Paris" || second.Status != "completed" {
					t.Fatalf("second reply %s", second.RawJSON())
				}
				_ = json.Unmarshal(m.LastRequest().Body, &sent)
				msgs := sent.Messages
				if len(msgs) != 3 || msgs[1].Role != "assistant" || msgs[1].Content[0].Type != "tool_use" || msgs[1].Content[0].ID != fc.CallID ||
					msgs[1].Content[0].Name != tc.upstreamName || string(msgs[1].Content[0].Input) != fc.Arguments ||
					msgs[2].Role != "user" || msgs[2].Content[0].Type != "tool_result" || msgs[2].Content[0].ToolUseID != fc.CallID ||
					joinText(msgs[2].Content[0].Content) != "sunny in Paris" {
					t.Fatalf("upstream messages %s", m.LastRequest().Body)
				}
			})
		}
	}
}

// TestResponsesRefusedOnAnthropic covers what a translated deployment cannot honour: each is refused with a 400 in
// the Responses API's shape that says why, and never reaches the upstream.
func TestResponsesRefusedOnAnthropic(t *testing.T) {
	t.Parallel()
	m, oa := startMock(t, mock.LLMOptions{}), startMock(t, mock.LLMOptions{})
	cfg := Config{Models: []ModelConfig{
		{Name: "claude", Deployments: []DeploymentConfig{anthropicDep(m, claudeUpstream)}},
		{Name: "mixed", Deployments: []DeploymentConfig{anthropicDep(m, claudeUpstream), openaiDep(oa, "gpt-4o-mini")}},
	}}
	h := newHarness(t, cfg)
	// A response the translation made: a follow-up naming it is told why it cannot be continued.
	made, err := h.responsesClient(keyAll).Responses.New(context.Background(), respParams("claude", "remember me"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, body string
		code, msg  string
	}{
		{"built-in tool", `{"model":"claude","input":"hi","tools":[{"type":"function","name":"f","parameters":{}},{"type":"web_search"}]}`,
			"invalid_request", `tools[1]: tool type "web_search" is one of OpenAI's built-in tools`},
		{"custom tool in a namespace", `{"model":"claude","input":"hi","tools":[{"type":"namespace","name":"ns","description":"d","tools":[{"type":"custom","name":"patch"}]}]}`,
			"invalid_request", `tools[0].tools[0]: tool type "custom" cannot be translated`},
		{"previous_response_id on an anthropic-only group", `{"model":"claude","input":"hi","previous_response_id":"resp_abc"}`,
			"unsupported_parameter", "the gateway keeps no conversation store"},
		{"store true", `{"model":"claude","input":"hi","store":true}`, "unsupported_parameter", "the gateway keeps no conversation store"},
		{"conversation", `{"model":"claude","input":"hi","conversation":"conv_123"}`, "unsupported_parameter", "the gateway keeps no conversation store"},
		{"follow-up on a translated response", `{"model":"mixed","input":"hi","previous_response_id":"` + made.ID + `"}`,
			"unsupported_parameter", "was answered by an Anthropic model through the gateway's translation"},
		{"item_reference", `{"model":"claude","input":[{"type":"item_reference","id":"msg_1"}]}`, "invalid_request", "input[0]: item_reference"},
		{"built-in tool call item", `{"model":"claude","input":[{"type":"web_search_call","id":"ws_1","status":"completed"}]}`,
			"invalid_request", `input[0]: item type "web_search_call" cannot be translated`},
		{"file input", `{"model":"claude","input":[{"role":"user","content":[{"type":"input_file","file_id":"file_1"}]}]}`,
			"invalid_request", `content part type "input_file" cannot be translated`},
		{"json_object format", `{"model":"claude","input":"hi","text":{"format":{"type":"json_object"}}}`,
			"invalid_request", `text.format: "json_object" cannot be translated`},
		{"hosted tool choice", `{"model":"claude","input":"hi","tool_choice":{"type":"file_search"}}`,
			"invalid_request", `tool_choice: type "file_search" cannot be translated`},
		{"stored prompt", `{"model":"claude","prompt":{"id":"pmpt_1"}}`, "invalid_request", "prompt: stored prompt templates"},
		{"function call with bad arguments", `{"model":"claude","input":[{"type":"function_call","call_id":"c1","name":"f","arguments":"{"}]}`,
			"invalid_request", "arguments are not valid JSON"},
		{"store not a boolean", `{"model":"claude","input":"hi","store":"yes"}`, "invalid_request", `field "store" must be a boolean`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, beforeOA := m.Requests(), oa.Requests()
			err := h.responsesClient(keyAll).Post(context.Background(), "responses", []byte(tc.body), nil)
			ae := refusal(t, err)
			if ae.StatusCode != http.StatusBadRequest || ae.Code != tc.code || !strings.Contains(ae.Message, tc.msg) || ae.Type != "invalid_request_error" {
				t.Fatalf("got %d %q %q %q, want 400 %q containing %q", ae.StatusCode, ae.Type, ae.Code, ae.Message, tc.code, tc.msg)
			}
			if m.Requests() != before || oa.Requests() != beforeOA {
				t.Fatal("a refused call reached an upstream")
			}
		})
	}
}

// TestResponsesStructuredOutputOnAnthropic: text.format json_schema becomes Anthropic's output_config.format.
func TestResponsesStructuredOutputOnAnthropic(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	h := newHarness(t, oneModel("claude", anthropicDep(m, claudeUpstream)))
	p := respParams("claude", "a title please")
	p.Text = responses.ResponseTextConfigParam{Format: responses.ResponseFormatTextConfigUnionParam{
		OfJSONSchema: &responses.ResponseFormatTextJSONSchemaConfigParam{Name: "title",
			Schema: map[string]any{"type": "object", "properties": map[string]any{"title": map[string]any{"type": "string"}}}}}}
	if _, err := h.responsesClient(keyAll).Responses.New(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	var sent anthropicRequest
	_ = json.Unmarshal(m.LastRequest().Body, &sent)
	if sent.OutputConfig == nil || sent.OutputConfig.Format == nil || sent.OutputConfig.Format.Type != "json_schema" ||
		!strings.Contains(string(sent.OutputConfig.Format.Schema), `"title"`) {
		t.Fatalf("upstream body %s", m.LastRequest().Body)
	}
}

// TestResponsesStreamThroughAnthropicDies: an Anthropic stream cut mid-way ends with the Responses error event,
// and the call is billed as estimated.
func TestResponsesStreamThroughAnthropicDies(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	// message_start, content_block_start, ping, then two deltas: the connection drops after five events.
	d := anthropicDep(m, claudeUpstream)
	d.Headers = map[string]string{mock.HeaderFailAfter: "5"}
	h := newHarness(t, oneModel("claude", d))
	st := h.responsesClient(keyAll).Responses.NewStreaming(context.Background(), respParams("claude", "one two three four five six seven"))
	var types []string
	var last responses.ResponseStreamEventUnion
	for st.Next() {
		last = st.Current()
		types = append(types, last.Type)
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	want := "response.created response.in_progress response.output_item.added response.content_part.added " +
		"response.output_text.delta response.output_text.delta error"
	if strings.Join(types, " ") != want || last.Code != "upstream_error" || last.SequenceNumber != 6 {
		t.Fatalf("events %v, last %s", types, last.RawJSON())
	}
	span := h.waitSpans("responses claude", 1)[0]
	estimated := false
	for _, a := range span.Attrs {
		estimated = estimated || a.Key == "usage" && a.Value == "estimated"
	}
	if span.Status != trace.StatusError || span.HTTPStatus != http.StatusBadGateway || !estimated || span.OutputTokens < 1 ||
		span.CostNanoUSD == 0 || span.Provider != "anthropic" {
		t.Fatalf("span = %+v", span)
	}
}

func TestAnthropicToResponsesStreamUpstreamError(t *testing.T) {
	s := newAnthropicToResponsesStream(newResponsePins(responsePinTTL, 10), &deployment{}, "key:k", []byte(`{"model":"m"}`))
	out, err := s.event([]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"c\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err = s.event([]byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"), out)
	if err != errUpstreamStreamError {
		t.Fatalf("err = %v", err)
	}
	want := `event: error` + "\n" + `data: {"type":"error","code":"overloaded_error","message":"Overloaded","param":null,"sequence_number":2}`
	if !strings.Contains(string(out), want) {
		t.Fatalf("out:\n%s", out)
	}
}

// TestAnthropicToResponsesResponse covers what the mock does not send: several blocks, thinking, cache usage and
// the other stop reasons.
func TestAnthropicToResponsesResponse(t *testing.T) {
	cases := []struct {
		name, reply, reqBody   string
		wantStatus, wantReason string
		wantItems              string // type:name-or-text of each output item
		wantUsage              string
		wantCost               Usage
	}{
		{name: "text, thinking and calls",
			reply: `{"id":"msg_1","model":"claude","content":[{"type":"thinking","thinking":"hmm","signature":"s"},{"type":"text","text":"let me look"},` +
				`{"type":"tool_use","id":"toolu_a","name":"get_weather","input":{"city":"Paris"}},{"type":"tool_use","id":"toolu_b","name":"ns__f","input":{}}],` +
				`"stop_reason":"tool_use","usage":{"input_tokens":10,"output_tokens":5}}`,
			reqBody:    `{"model":"c","tools":[{"type":"namespace","name":"ns","description":"d","tools":[{"type":"function","name":"f"}]}]}`,
			wantStatus: "completed", wantItems: `message:let me look function_call:get_weather{"city":"Paris"} function_call:ns.f{}`,
			wantUsage: `{"input_tokens":10,"input_tokens_details":{"cached_tokens":0},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":15}`,
			wantCost:  Usage{Input: 10, Output: 5}},
		{name: "cache reads and writes count as input",
			reply:      `{"id":"msg_2","model":"claude","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"cache_read_input_tokens":100,"cache_creation_input_tokens":20,"output_tokens":1}}`,
			wantStatus: "completed", wantItems: "message:hi",
			wantUsage: `{"input_tokens":123,"input_tokens_details":{"cached_tokens":100},"output_tokens":1,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":124}`,
			wantCost:  Usage{Input: 123, Output: 1, Cached: 100, CacheWrite: 20}},
		{name: "refusal",
			reply:      `{"id":"msg_3","model":"claude","content":[],"stop_reason":"refusal","usage":{"input_tokens":3,"output_tokens":0}}`,
			wantStatus: "incomplete", wantReason: "content_filter", wantItems: "",
			wantUsage: `{"input_tokens":3,"input_tokens_details":{"cached_tokens":0},"output_tokens":0,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":3}`,
			wantCost:  Usage{Input: 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.reqBody
			if body == "" {
				body = `{"model":"c"}`
			}
			raw, u, err := anthropicToResponsesResponse([]byte(tc.reply), []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			var got responses.Response
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			var items []string
			for _, it := range got.Output {
				switch it.Type {
				case "message":
					items = append(items, "message:"+it.Content[0].Text)
				case "function_call":
					fc := it.AsFunctionCall()
					name := fc.Name
					if fc.Namespace != "" {
						name = fc.Namespace + "." + name
					}
					items = append(items, "function_call:"+name+fc.Arguments)
				}
			}
			if string(got.Status) != tc.wantStatus || got.IncompleteDetails.Reason != tc.wantReason || strings.Join(items, " ") != tc.wantItems ||
				got.Usage.RawJSON() != tc.wantUsage || u != tc.wantCost || !strings.HasPrefix(got.ID, "resp_") {
				t.Fatalf("got %s, usage %+v", raw, u)
			}
		})
	}
}
