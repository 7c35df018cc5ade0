package llm

import (
	"bytes"
	"encoding/json"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// anthropicEvent covers the fields of every Anthropic stream event the
// gateway reads.
type anthropicEvent struct {
	Type    string `json:"type"`
	Index   int    `json:"index"`
	Message *struct {
		ID    string         `json:"id"`
		Model string         `json:"model"`
		Usage anthropicUsage `json:"usage"`
	} `json:"message"`
	ContentBlock *anthropicBlock `json:"content_block"`
	Delta        *struct {
		Type        string  `json:"type"`
		Text        string  `json:"text"`
		PartialJSON string  `json:"partial_json"`
		StopReason  *string `json:"stop_reason"`
	} `json:"delta"`
	Usage *anthropicUsage `json:"usage"`
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

// anthropicUsageTracker folds message_start and message_delta usage; the
// delta's counts are cumulative. A negative count is ignored like any other
// malformed one: it must not refund tokens to the key's limits.
type anthropicUsageTracker struct{ u anthropicUsage }

func (t *anthropicUsageTracker) observe(e *anthropicEvent) {
	if e.Message != nil {
		if _, err := e.Message.Usage.counts(); err == nil {
			t.u = e.Message.Usage
		}
	}
	if e.Usage != nil {
		if e.Usage.OutputTokens >= 0 {
			t.u.OutputTokens = e.Usage.OutputTokens
		}
		if e.Usage.InputTokens > 0 {
			t.u.InputTokens = e.Usage.InputTokens
		}
		if e.Usage.CacheReadInputTokens > 0 {
			t.u.CacheReadInputTokens = e.Usage.CacheReadInputTokens
		}
		if e.Usage.CacheCreationInputTokens > 0 {
			t.u.CacheCreationInputTokens = e.Usage.CacheCreationInputTokens
		}
		if c := e.Usage.CacheCreation; c != nil && c.Ephemeral5m >= 0 && c.Ephemeral1h >= 0 {
			t.u.CacheCreation = c
		}
	}
}

func anthropicErrorEvent(ae *apiError) []byte {
	return append(append([]byte("event: error\ndata: "), ae.anthropicJSON()...), "\n\n"...)
}

// anthropicReading is what every reader of an Anthropic stream keeps: the usage its events report, and the text
// and tool input they relayed, which bill a stream cut before its usage came.
type anthropicReading struct {
	tracker    anthropicUsageTracker
	deltaBytes int
}

// read decodes an SSE event as an Anthropic event and counts it; nil for an event without data.
func (r *anthropicReading) read(ev []byte) (*anthropicEvent, error) {
	_, data := sseData(ev)
	if data == nil {
		return nil, nil
	}
	var e anthropicEvent
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, err
	}
	r.tracker.observe(&e)
	r.deltaBytes += e.deltaBytes()
	return &e, nil
}

func (r *anthropicReading) usage() Usage         { return r.tracker.u.usage() }
func (r *anthropicReading) partialOutput() int64 { return tokensOfText(r.deltaBytes) }

// anthropicStream relays an Anthropic stream to an Anthropic client.
type anthropicStream struct {
	anthropicReading
	finished bool
}

func (s *anthropicStream) event(ev, out []byte) ([]byte, error) {
	out = append(out, ev...)
	e, err := s.read(ev)
	if e == nil {
		return out, err
	}
	switch e.Type {
	case "message_stop":
		s.finished = true
	case "error":
		return out, errUpstreamStreamError
	}
	return out, nil
}

func (s *anthropicStream) done() bool                     { return s.finished }
func (s *anthropicStream) errorEvent(ae *apiError) []byte { return anthropicErrorEvent(ae) }

// deltaBytes is the text or tool input a content_block_delta adds.
func (e *anthropicEvent) deltaBytes() int {
	if e.Type != "content_block_delta" || e.Delta == nil {
		return 0
	}
	return len(e.Delta.Text) + len(e.Delta.PartialJSON)
}

// anthropicToChatStream turns Anthropic events into OpenAI chunks.
type anthropicToChatStream struct {
	anthropicReading
	clientWantsUsage bool
	id, model        string
	created          int64
	toolIndex        map[int]int // content block index -> tool call index
	finish           openai.FinishReason
	finished         bool
}

func newAnthropicToChatStream(clientWantsUsage bool) *anthropicToChatStream {
	return &anthropicToChatStream{clientWantsUsage: clientWantsUsage, toolIndex: map[int]int{}, created: time.Now().Unix()}
}

func (s *anthropicToChatStream) chunk(out []byte, delta chunkDelta, finish openai.FinishReason) []byte {
	choice := chatChunkChoice{Index: 0, Delta: delta}
	if finish != "" {
		choice.FinishReason = &finish
	}
	return appendData(out, chatChunk{ID: s.id, Object: "chat.completion.chunk", Created: s.created, Model: s.model,
		Choices: []chatChunkChoice{choice}})
}

func appendData(out []byte, v any) []byte {
	b, _ := json.Marshal(v)
	out = append(out, "data: "...)
	out = append(out, b...)
	return append(out, "\n\n"...)
}

func (s *anthropicToChatStream) event(ev, out []byte) ([]byte, error) {
	e, err := s.read(ev)
	if e == nil {
		return out, err
	}
	switch e.Type {
	case "message_start":
		if e.Message != nil {
			s.id, s.model = e.Message.ID, e.Message.Model
		}
		return s.chunk(out, chunkDelta{Role: openai.ChatMessageRoleAssistant}, ""), nil
	case "content_block_start":
		if b := e.ContentBlock; b != nil && b.Type == "tool_use" {
			i := len(s.toolIndex)
			s.toolIndex[e.Index] = i
			return s.chunk(out, chunkDelta{ToolCalls: []chunkToolCall{{
				Index: i, ID: b.ID, Type: openai.ToolTypeFunction, Function: chunkToolFunction{Name: b.Name},
			}}}, ""), nil
		}
	case "content_block_delta":
		if e.Delta == nil {
			return out, nil
		}
		switch e.Delta.Type {
		case "text_delta":
			return s.chunk(out, chunkDelta{Content: e.Delta.Text}, ""), nil
		case "input_json_delta":
			if e.Delta.PartialJSON == "" {
				// Anthropic opens a tool's input with an empty piece.
				return out, nil
			}
			return s.chunk(out, chunkDelta{ToolCalls: []chunkToolCall{{
				Index: s.toolIndex[e.Index], Function: chunkToolFunction{Arguments: e.Delta.PartialJSON},
			}}}, ""), nil
		}
	case "message_delta":
		if e.Delta != nil && e.Delta.StopReason != nil {
			s.finish = stopToFinish[*e.Delta.StopReason]
			if s.finish == "" {
				s.finish = openai.FinishReasonStop
			}
		}
	case "message_stop":
		s.finished = true
		if s.finish == "" {
			s.finish = openai.FinishReasonStop
		}
		out = s.chunk(out, chunkDelta{}, s.finish)
		if s.clientWantsUsage {
			u := openAIUsageFrom(s.usage())
			out = appendData(out, chatChunk{ID: s.id, Object: "chat.completion.chunk",
				Created: s.created, Model: s.model, Choices: []chatChunkChoice{}, Usage: &u})
		}
		return append(out, "data: [DONE]\n\n"...), nil
	case "error":
		msg := "upstream error"
		if e.Error != nil {
			msg = e.Error.Message
		}
		ae := &apiError{typ: "server_error", code: "upstream_error", message: msg}
		return append(out, s.errorEvent(ae)...), errUpstreamStreamError
	}
	return out, nil
}

func (s *anthropicToChatStream) done() bool { return s.finished }
func (s *anthropicToChatStream) errorEvent(ae *apiError) []byte {
	return append(append([]byte("data: "), ae.openAIJSON()...), "\n\n"...)
}

// chatToAnthropicStream turns OpenAI chunks into Anthropic events.
type chatToAnthropicStream struct {
	started bool
	open    string // type of the open content block, "" when none
	index   int    // index of the open (or last) content block
	// toolCalls are the upstream's tool calls by their index, lastCall the
	// latest: where a piece that carries no index belongs.
	toolCalls map[int]*streamedToolCall
	lastCall  *streamedToolCall
	stop      string
	u         Usage
	finished  bool
	pieces    int64 // chunks of text or tool input relayed, each about one token
}

// streamedToolCall is one tool call of the upstream's stream and the
// content block it became.
type streamedToolCall struct {
	id    string
	block int
}

func newChatToAnthropicStream() *chatToAnthropicStream {
	return &chatToAnthropicStream{toolCalls: map[int]*streamedToolCall{}, index: -1}
}

func appendEvent(out []byte, name string, v any) []byte {
	b, _ := json.Marshal(v)
	out = append(out, "event: "...)
	out = append(out, name...)
	out = append(out, "\ndata: "...)
	out = append(out, b...)
	return append(out, "\n\n"...)
}

func (s *chatToAnthropicStream) closeBlock(out []byte) []byte {
	if s.open == "" {
		return out
	}
	s.open = ""
	return appendEvent(out, "content_block_stop", map[string]any{"type": "content_block_stop", "index": s.index})
}

func (s *chatToAnthropicStream) openBlock(out []byte, block map[string]any) []byte {
	out = s.closeBlock(out)
	s.index++
	s.open = block["type"].(string)
	return appendEvent(out, "content_block_start", map[string]any{"type": "content_block_start", "index": s.index, "content_block": block})
}

func (s *chatToAnthropicStream) start(out []byte, id, model string) []byte {
	s.started = true
	return appendEvent(out, "message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": anthropicMessageID(id), "type": "message", "role": "assistant", "model": model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": anthropicUsage{},
	}})
}

// toolCall finds the call a streamed tool call piece belongs to, or makes a
// new one. OpenAI sends a call's id in its first piece only, so an id the
// call at that index does not have starts another call: some servers send
// every call at index 0, or with no index at all.
func (s *chatToAnthropicStream) toolCall(tc openai.ToolCall) (call *streamedToolCall, isNew bool) {
	call = s.lastCall
	if tc.Index != nil {
		call = s.toolCalls[*tc.Index]
	}
	if call == nil || (tc.ID != "" && tc.ID != call.id) {
		call = &streamedToolCall{id: tc.ID}
		isNew = true
		if tc.Index != nil {
			s.toolCalls[*tc.Index] = call
		}
	}
	s.lastCall = call
	return call, isNew
}

// stopReason is the message's stop_reason: tool_use whenever the reply
// calls a tool, which some servers end with finish_reason "stop" and
// Anthropic clients loop on.
func (s *chatToAnthropicStream) stopReason() string {
	if s.lastCall != nil && (s.stop == "" || s.stop == "end_turn") {
		return "tool_use"
	}
	if s.stop == "" {
		return "end_turn"
	}
	return s.stop
}

func (s *chatToAnthropicStream) event(ev, out []byte) ([]byte, error) {
	_, data := sseData(ev)
	if data == nil {
		return out, nil
	}
	if string(data) == "[DONE]" {
		s.finished = true
		if !s.started {
			out = s.start(out, "", "")
		}
		out = s.closeBlock(out)
		au := anthropicUsageFrom(s.u)
		out = appendEvent(out, "message_delta", map[string]any{"type": "message_delta",
			"delta": map[string]any{"stop_reason": s.stopReason(), "stop_sequence": nil}, "usage": au})
		return appendEvent(out, "message_stop", map[string]any{"type": "message_stop"}), nil
	}
	if bytes.HasPrefix(data, []byte(`{"error"`)) {
		var eb upstreamErrorBody
		_ = json.Unmarshal(data, &eb)
		return append(out, anthropicErrorEvent(&apiError{message: eb.Error.Message})...), errUpstreamStreamError
	}
	var c openai.ChatCompletionStreamResponse
	if err := json.Unmarshal(data, &c); err != nil {
		return out, err
	}
	if c.Usage != nil {
		if u, err := usageFromOpenAI(c.Usage).check(); err == nil {
			s.u = u
		}
	}
	// Azure opens with a chunk of prompt filter results, without choices,
	// id or model: the message starts at the first chunk that says more.
	if !s.started && (len(c.Choices) > 0 || c.Usage != nil) {
		out = s.start(out, c.ID, c.Model)
	}
	for _, ch := range c.Choices {
		if ch.Delta.Content != "" || len(ch.Delta.ToolCalls) > 0 {
			s.pieces++
		}
		if t := ch.Delta.Content; t != "" {
			if s.open != "text" {
				out = s.openBlock(out, map[string]any{"type": "text", "text": ""})
			}
			out = appendEvent(out, "content_block_delta", map[string]any{"type": "content_block_delta", "index": s.index,
				"delta": map[string]any{"type": "text_delta", "text": t}})
		}
		for _, tc := range ch.Delta.ToolCalls {
			call, isNew := s.toolCall(tc)
			if isNew {
				out = s.openBlock(out, map[string]any{"type": "tool_use", "id": tc.ID, "name": tc.Function.Name, "input": map[string]any{}})
				call.block = s.index
			}
			// A piece of a call whose block was closed, because the
			// server interleaves calls, still goes to that block: clients
			// put a delta together by its index.
			if tc.Function.Arguments != "" {
				out = appendEvent(out, "content_block_delta", map[string]any{"type": "content_block_delta", "index": call.block,
					"delta": map[string]any{"type": "input_json_delta", "partial_json": tc.Function.Arguments}})
			}
		}
		if ch.FinishReason != "" {
			if st, ok := finishToStop[ch.FinishReason]; ok {
				s.stop = st
			}
			out = s.closeBlock(out)
		}
	}
	return out, nil
}

func (s *chatToAnthropicStream) done() bool                     { return s.finished }
func (s *chatToAnthropicStream) usage() Usage                   { return s.u }
func (s *chatToAnthropicStream) partialOutput() int64           { return s.pieces }
func (s *chatToAnthropicStream) errorEvent(ae *apiError) []byte { return anthropicErrorEvent(ae) }
