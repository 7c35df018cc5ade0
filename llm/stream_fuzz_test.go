package llm

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
)

// sseSeeds are upstream streams as OpenAI- and Anthropic-compatible servers
// send them.
var sseSeeds = []string{
	"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n" +
		"data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n" +
		"data: [DONE]\n\n",
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\r\n\r\n: keep-alive\r\n\r\ndata: [DONE]\r\n\r\n",
	"data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n",
	"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":{}}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":1}\"}}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":7}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
	"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n",
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n",
	"data: a\ndata: b\n\nno terminator",
}

// splitAll feeds chunks to a splitter and collects every event it cuts.
func splitAll(chunks ...[]byte) [][]byte {
	var sp sseSplitter
	var events [][]byte
	for _, c := range chunks {
		sp.feed(c)
		for {
			ev, ok := sp.next()
			if !ok {
				break
			}
			events = append(events, bytes.Clone(ev))
		}
	}
	return events
}

// FuzzSSE cuts arbitrary upstream bytes into events at an arbitrary read
// boundary and runs them through every stream translator. Properties: the
// events do not depend on where reads end and are the stream's own bytes;
// a client of the upstream's dialect that asked for usage gets every event
// unchanged; translated streams carry only JSON payloads.
func FuzzSSE(f *testing.F) {
	for i, s := range sseSeeds {
		f.Add([]byte(s), uint16(i*37), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, stream []byte, cut uint16, wantsUsage bool) {
		c := int(cut) % (len(stream) + 1)
		events := splitAll(stream)
		if chunked := splitAll(stream[:c], stream[c:]); !slices.EqualFunc(events, chunked, bytes.Equal) {
			t.Fatalf("read boundary %d changed the events: %q vs %q", c, events, chunked)
		}
		joined := bytes.Join(events, nil)
		if !bytes.HasPrefix(stream, joined) {
			t.Fatalf("events %q are not the stream's bytes", events)
		}
		if rest := stream[len(joined):]; bytes.Contains(rest, []byte("\n\n")) || bytes.Contains(rest, []byte("\r\n\r\n")) {
			t.Fatalf("complete event left in %q", rest)
		}

		passthrough := &openAIStream{clientWantsUsage: true}
		translators := []streamTranslator{
			&openAIStream{clientWantsUsage: wantsUsage},
			&anthropicStream{},
			newAnthropicToChatStream(wantsUsage),
			newChatToAnthropicStream(),
		}
		for _, ev := range events {
			sseData(ev)
			if !passthrough.done() {
				out, _ := passthrough.event(ev, nil)
				if !bytes.Equal(out, ev) {
					t.Fatalf("usage-asking client got %q for %q", out, ev)
				}
			}
			for i, tr := range translators {
				if tr == nil || tr.done() {
					continue
				}
				out, err := tr.event(ev, nil)
				if i >= 2 {
					checkJSONEvents(t, out)
				}
				if err != nil {
					translators[i] = nil
				}
			}
		}
		for _, tr := range translators {
			if tr != nil {
				checkJSONEvents(t, tr.errorEvent(&apiError{status: 502, typ: "server_error", message: "x"}))
			}
		}
	})
}

// checkJSONEvents fails unless every data payload in out is JSON or [DONE].
func checkJSONEvents(t *testing.T, out []byte) {
	t.Helper()
	for _, ev := range splitAll(out) {
		if _, data := sseData(ev); data != nil && !bytes.Equal(data, doneData) && !json.Valid(data) {
			t.Fatalf("translated event %q carries invalid JSON", ev)
		}
	}
}

// FuzzUsageOf reads the usage of arbitrary non-streamed replies. For a
// reply encoding/json decodes (and whose keys are plain and unique), the
// fast reader must find the same counts or refuse the reply; it never
// accepts what is not a JSON object.
func FuzzUsageOf(f *testing.F) {
	f.Add([]byte(`{"id":"c","choices":[{"message":{"content":"{\"usage\":1}"}}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":3}}}`))
	f.Add([]byte(`{"object":"list","data":[{"embedding":[0.1,-0.2]}],"usage":{"prompt_tokens":8,"total_tokens":8}}`))
	f.Add([]byte(`{"usage":null}`))
	f.Add([]byte(`<html>bad gateway</html>`))
	f.Add([]byte(`{"type":"message","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":10,"output_tokens":3,"cache_read_input_tokens":2}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		u, err := openAIUsageOf(body)
		_, _ = anthropicUsageOf(body)
		_, _, _ = anthropicToChatResponse(body)
		_, _, _ = chatToAnthropicResponse(body)
		if err != nil {
			return
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(body, &obj) != nil {
			if json.Valid(body) && bytes.TrimSpace(body)[0] != '{' {
				t.Fatalf("usage read from non-object %q", body)
			}
			return
		}
		if bytes.IndexByte(body, '\\') >= 0 {
			return
		}
		if !uniqueKeys(body) {
			return
		}
		want, ok := exactUsage(obj["usage"])
		if ok && u != want {
			t.Fatalf("fast usage %+v, encoding/json %+v for %q", u, want, body)
		}
	})
}

// exactUsage decodes an OpenAI usage value with encoding/json but exact key
// names (its struct decoding would also take "Usage" or "PROMPT_TOKENS",
// which the gateway rightly ignores). ok is false when a count is not an
// integer, where the fast reader refuses the reply.
func exactUsage(raw json.RawMessage) (u Usage, ok bool) {
	var usage map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &usage) != nil {
		return Usage{}, len(raw) == 0 || string(raw) == "null"
	}
	count := func(obj map[string]json.RawMessage, key string, into *int64) bool {
		v, found := obj[key]
		return !found || json.Unmarshal(v, into) == nil
	}
	if !count(usage, "prompt_tokens", &u.Input) || !count(usage, "completion_tokens", &u.Output) {
		return Usage{}, false
	}
	var details map[string]json.RawMessage
	if json.Unmarshal(usage["prompt_tokens_details"], &details) == nil && !count(details, "cached_tokens", &u.Cached) {
		return Usage{}, false
	}
	return u, true
}

// uniqueKeys reports whether no object in the JSON value repeats a key:
// with repeats, encoding/json keeps the last copy and the fast reader the first.
func uniqueKeys(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		keys   map[string]bool
		object bool
		expect bool // next token in an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return true
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expect {
			if k, ok := tok.(string); ok {
				if top.keys[k] {
					return false
				}
				top.keys[k] = true
				top.expect = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, object: true, expect: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].expect = true
		}
	}
}
