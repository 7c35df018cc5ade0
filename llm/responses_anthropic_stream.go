package llm

import (
	"strings"
)

// anthropicToResponsesStream turns an Anthropic stream into the Responses API's events, one for one as they come:
// response.created and response.in_progress at message_start; per text block a message item (output_item.added,
// content_part.added, output_text.delta..., output_text.done, content_part.done, output_item.done); per tool_use
// block a function_call item (output_item.added, function_call_arguments.delta..., function_call_arguments.done,
// output_item.done); response.completed (or response.incomplete) with the usage at message_stop. Thinking blocks
// have no Responses form a client could send back to an Anthropic model, and are left out.
type anthropicToResponsesStream struct {
	pins  *responsePins
	d     *deployment
	owner string

	anthropicReading
	resp       *responsesObject // made from the request up front, begun at message_start
	namespaced map[string][2]string
	started    bool
	blocks     map[int]*responsesBlock // Anthropic content block index -> the item it became
	stop       string
	seq        int64 // sequence_number of the next event
	finished   bool
}

// responsesBlock is an output item under way.
type responsesBlock struct {
	outputIndex int
	item        responsesOutputItem
	text        strings.Builder // the message's text or the call's arguments
}

func newAnthropicToResponsesStream(pins *responsePins, d *deployment, owner string, reqBody []byte) *anthropicToResponsesStream {
	return &anthropicToResponsesStream{pins: pins, d: d, owner: owner, resp: newResponsesObject(reqBody),
		namespaced: namespacedTools(reqBody), blocks: map[int]*responsesBlock{}}
}

// emit appends one event; fields are the event's own beside its type and sequence_number.
func (s *anthropicToResponsesStream) emit(out []byte, typ string, fields map[string]any) []byte {
	fields["type"], fields["sequence_number"] = typ, s.seq
	s.seq++
	return appendEvent(out, typ, fields)
}

func (s *anthropicToResponsesStream) event(ev, out []byte) ([]byte, error) {
	e, err := s.read(ev)
	if e == nil {
		return out, err
	}
	switch e.Type {
	case "message_start":
		var id, model string
		if e.Message != nil {
			id, model = e.Message.ID, e.Message.Model
		}
		s.started = true
		s.resp.begin(id, model)
		// Remembered so that a follow-up naming it hears why it cannot be continued (see responsesTarget).
		s.pins.remember(s.resp.ID, s.d, s.owner, 0)
		out = s.emit(out, "response.created", map[string]any{"response": s.resp})
		return s.emit(out, "response.in_progress", map[string]any{"response": s.resp}), nil
	case "content_block_start":
		return s.startBlock(out, e), nil
	case "content_block_delta":
		b := s.blocks[e.Index]
		if b == nil || e.Delta == nil {
			return out, nil
		}
		switch e.Delta.Type {
		case "text_delta":
			b.text.WriteString(e.Delta.Text)
			return s.emit(out, "response.output_text.delta", map[string]any{"item_id": b.item.ID, "output_index": b.outputIndex,
				"content_index": 0, "delta": e.Delta.Text, "logprobs": []any{}}), nil
		case "input_json_delta":
			if e.Delta.PartialJSON == "" {
				// Anthropic opens a tool's input with an empty piece.
				return out, nil
			}
			b.text.WriteString(e.Delta.PartialJSON)
			return s.emit(out, "response.function_call_arguments.delta", map[string]any{"item_id": b.item.ID,
				"output_index": b.outputIndex, "delta": e.Delta.PartialJSON}), nil
		}
	case "content_block_stop":
		return s.stopBlock(out, e.Index), nil
	case "message_delta":
		if e.Delta != nil && e.Delta.StopReason != nil {
			s.stop = *e.Delta.StopReason
		}
	case "message_stop":
		if !s.started {
			s.resp.begin("", "")
		}
		s.finished = true
		s.resp.finish(s.stop)
		s.resp.Usage = responsesUsageFrom(s.usage())
		typ := "response.completed"
		if s.resp.Status == "incomplete" {
			typ = "response.incomplete"
		}
		s.pins.carry(s.resp.ID, s.usage().carried())
		return s.emit(out, typ, map[string]any{"response": s.resp}), nil
	case "error":
		ae := &apiError{status: 502, typ: "server_error", code: "upstream_error", message: "upstream error"}
		if e.Error != nil {
			ae.message = e.Error.Message
			if e.Error.Type != "" {
				ae.code = e.Error.Type
			}
		}
		return append(out, s.errorEvent(ae)...), errUpstreamStreamError
	}
	return out, nil
}

func (s *anthropicToResponsesStream) startBlock(out []byte, e *anthropicEvent) []byte {
	cb := e.ContentBlock
	if cb == nil || (cb.Type != "text" && cb.Type != "tool_use") {
		return out
	}
	b := &responsesBlock{outputIndex: len(s.blocks)}
	s.blocks[e.Index] = b
	if cb.Type == "text" {
		b.item = responsesOutputItem{Type: "message", ID: randomID("msg_"), Status: "in_progress"}
		out = s.emit(out, "response.output_item.added", map[string]any{"output_index": b.outputIndex, "item": b.item})
		return s.emit(out, "response.content_part.added", map[string]any{"item_id": b.item.ID, "output_index": b.outputIndex,
			"content_index": 0, "part": responsesTextPart{Type: "output_text", Annotations: []any{}}})
	}
	b.item = functionCall("in_progress", cb.ID, cb.Name, s.namespaced)
	return s.emit(out, "response.output_item.added", map[string]any{"output_index": b.outputIndex, "item": b.item})
}

func (s *anthropicToResponsesStream) stopBlock(out []byte, index int) []byte {
	b := s.blocks[index]
	if b == nil {
		return out
	}
	text := b.text.String()
	b.item.Status = "completed"
	if b.item.Type == "message" {
		part := responsesTextPart{Type: "output_text", Text: text, Annotations: []any{}}
		out = s.emit(out, "response.output_text.done", map[string]any{"item_id": b.item.ID, "output_index": b.outputIndex,
			"content_index": 0, "text": text, "logprobs": []any{}})
		out = s.emit(out, "response.content_part.done", map[string]any{"item_id": b.item.ID, "output_index": b.outputIndex,
			"content_index": 0, "part": part})
		b.item.Content = []responsesTextPart{part}
	} else {
		if text == "" {
			text = "{}"
		}
		b.item.Arguments = text
		out = s.emit(out, "response.function_call_arguments.done", map[string]any{"item_id": b.item.ID,
			"output_index": b.outputIndex, "name": b.item.Name, "arguments": text})
	}
	s.resp.Output = append(s.resp.Output, b.item)
	return s.emit(out, "response.output_item.done", map[string]any{"output_index": b.outputIndex, "item": b.item})
}

func (s *anthropicToResponsesStream) done() bool { return s.finished }

// errorEvent is the Responses API's own error event, following on from the events relayed so far.
func (s *anthropicToResponsesStream) errorEvent(ae *apiError) []byte {
	r := responsesStream{seq: s.seq - 1}
	return r.errorEvent(ae)
}
