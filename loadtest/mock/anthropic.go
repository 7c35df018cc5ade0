package mock

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

func writeAnthropicError(ctx *fasthttp.RequestCtx, status int, typ, msg string) {
	b := append([]byte(nil), `{"type":"error","error":{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","message":`...)
	b = appendJSONString(b, msg)
	writeJSON(ctx, status, append(b, "}}"...))
}

func anthropicErrorType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	if status < 500 {
		return "invalid_request_error"
	}
	return "api_error"
}

type messagesRequest struct {
	Model     string          `json:"model"`
	MaxTokens int             `json:"max_tokens"`
	System    json.RawMessage `json:"system"`
	Messages  []chatMessage   `json:"messages"`
	Stream    bool            `json:"stream"`
	Tools     []struct {
		Name        string          `json:"name"`
		InputSchema json.RawMessage `json:"input_schema"`
	} `json:"tools"`
	ToolChoice *struct {
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"tool_choice"`
}

// readMessages reads a Messages request as Anthropic checks it, answering the error itself when it is not one;
// token counting takes no max_tokens.
func readMessages(ctx *fasthttp.RequestCtx, needMaxTokens bool) (messagesRequest, bool) {
	fail := func(msg string) (messagesRequest, bool) {
		writeAnthropicError(ctx, http.StatusBadRequest, "invalid_request_error", msg)
		return messagesRequest{}, false
	}
	if len(ctx.Request.Header.Peek("anthropic-version")) == 0 {
		return fail("anthropic-version: header is required")
	}
	var req messagesRequest
	if err := json.Unmarshal(ctx.Request.Body(), &req); err != nil {
		return fail("invalid JSON body: " + err.Error())
	}
	switch {
	case req.Model == "":
		return fail("model: Field required")
	case needMaxTokens && req.MaxTokens < 1:
		return fail("max_tokens: Field required and must be at least 1")
	case len(req.Messages) == 0:
		return fail("messages: at least one message is required")
	}
	return req, true
}

// texts is the text of the request's messages, and its prompt's characters and tokens with the system prompt.
func (req *messagesRequest) texts() (texts []string, chars, tokens int) {
	system := contentText(req.System)
	chars, tokens = len(system), countTokens(system)
	texts = make([]string, len(req.Messages))
	for i, m := range req.Messages {
		texts[i] = contentText(m.Content)
		chars += len(texts[i])
		tokens += countTokens(texts[i])
	}
	return texts, chars, tokens
}

// countTokens serves Anthropic's token counting: the input tokens the same request would use in messages.
func (l *LLMServer) countTokens(ctx *fasthttp.RequestCtx) {
	req, ok := readMessages(ctx, false)
	if !ok || l.failFor(ctx, dialectAnthropic, req.Model, 0) {
		return
	}
	_, _, n := req.texts()
	writeJSON(ctx, http.StatusOK, []byte(`{"input_tokens":`+strconv.Itoa(n)+`}`))
}

// messages serves Anthropic's Messages API with the same deterministic
// behaviour as chat completions.
func (l *LLMServer) messages(ctx *fasthttp.RequestCtx, n int64, inj injection) {
	req, ok := readMessages(ctx, true)
	if !ok {
		return
	}
	texts, chars, inputTokens := req.texts()
	if l.failFor(ctx, dialectAnthropic, req.Model, chars) {
		return
	}
	m := anthropicReply{id: "msg_mock_" + strconv.FormatInt(n, 10), model: req.Model, inputTokens: inputTokens}
	lastText := texts[len(texts)-1]
	toolsAllowed := req.ToolChoice == nil || req.ToolChoice.Type != "none"
	if req.Messages[len(req.Messages)-1].Role == "user" && wantsToolCall(lastText) && len(req.Tools) > 0 && toolsAllowed {
		tool := req.Tools[0]
		for _, t := range req.Tools {
			if strings.Contains(lastText, t.Name) {
				tool = t
				break
			}
		}
		m.tool = &toolCall{id: "toolu_mock_" + strconv.FormatInt(n, 10), name: tool.Name, arguments: argumentsFor(tool.InputSchema)}
		m.outputTokens = (len(m.tool.arguments) + 3) / 4
		m.stop = "tool_use"
	} else {
		var finish string
		m.words, finish = truncateWords(strings.Fields(lastText), req.MaxTokens)
		m.outputTokens = len(m.words)
		m.stop = "end_turn"
		if finish == "length" {
			m.stop = "max_tokens"
		}
	}
	if !req.Stream {
		writeJSON(ctx, http.StatusOK, m.messageJSON())
		return
	}
	startStream(ctx, &eventStream{events: m.events(), interval: l.interval, failAfter: inj.failAfter, done: l.done})
}

type anthropicReply struct {
	id           string
	model        string
	words        []string
	tool         *toolCall
	stop         string
	inputTokens  int
	outputTokens int
}

func (m *anthropicReply) head(b []byte) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, m.id...)
	b = append(b, `","type":"message","role":"assistant","model":`...)
	return appendJSONString(b, m.model)
}

func (m *anthropicReply) messageJSON() []byte {
	b := m.head(make([]byte, 0, 512))
	b = append(b, `,"content":[`...)
	if m.tool != nil {
		b = append(b, `{"type":"tool_use","id":"`...)
		b = append(b, m.tool.id...)
		b = append(b, `","name":`...)
		b = appendJSONString(b, m.tool.name)
		b = append(b, `,"input":`...)
		b = append(b, m.tool.arguments...)
		b = append(b, '}')
	} else {
		b = append(b, `{"type":"text","text":`...)
		b = appendJSONString(b, strings.Join(m.words, " "))
		b = append(b, '}')
	}
	b = append(b, `],"stop_reason":"`...)
	b = append(b, m.stop...)
	b = append(b, `","stop_sequence":null,"usage":{"input_tokens":`...)
	b = strconv.AppendInt(b, int64(m.inputTokens), 10)
	b = append(b, `,"output_tokens":`...)
	b = strconv.AppendInt(b, int64(m.outputTokens), 10)
	return append(b, `,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}`...)
}

// events renders the Messages streaming sequence: message_start,
// content_block_start, ping, content_block_delta..., content_block_stop,
// message_delta (stop reason and output usage), message_stop.
func (m *anthropicReply) events() []sseEvent {
	event := func(name string, data []byte, paced bool) sseEvent {
		b := make([]byte, 0, len(name)+len(data)+16)
		b = append(b, "event: "...)
		b = append(b, name...)
		b = append(b, "\ndata: "...)
		b = append(b, data...)
		b = append(b, "\n\n"...)
		return sseEvent{data: b, paced: paced}
	}
	start := append([]byte(`{"type":"message_start","message":`), nil...)
	start = m.head(start)
	start = append(start, `,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":`...)
	start = strconv.AppendInt(start, int64(m.inputTokens), 10)
	start = append(start, `,"output_tokens":1,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}}`...)
	events := []sseEvent{event("message_start", start, false)}

	if m.tool != nil {
		b := append([]byte(`{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"`+m.tool.id+`","name":`), nil...)
		b = appendJSONString(b, m.tool.name)
		events = append(events, event("content_block_start", append(b, `,"input":{}}}`...), false))
		events = append(events, event("ping", []byte(`{"type": "ping"}`), false))
		for _, piece := range splitEvery(m.tool.arguments, 8) {
			d := append([]byte(`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":`), nil...)
			d = appendJSONString(d, piece)
			events = append(events, event("content_block_delta", append(d, "}}"...), true))
		}
	} else {
		events = append(events, event("content_block_start", []byte(`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`), false))
		events = append(events, event("ping", []byte(`{"type": "ping"}`), false))
		for i, w := range m.words {
			if i > 0 {
				w = " " + w
			}
			d := append([]byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`), nil...)
			d = appendJSONString(d, w)
			events = append(events, event("content_block_delta", append(d, "}}"...), true))
		}
	}
	events = append(events, event("content_block_stop", []byte(`{"type":"content_block_stop","index":0}`), false))
	delta := []byte(`{"type":"message_delta","delta":{"stop_reason":"` + m.stop + `","stop_sequence":null},"usage":{"output_tokens":`)
	delta = strconv.AppendInt(delta, int64(m.outputTokens), 10)
	events = append(events, event("message_delta", append(delta, "}}"...), false))
	return append(events, event("message_stop", []byte(`{"type":"message_stop"}`), false))
}
