package mock

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// openAIError is the body of OpenAI's {"error": {...}} envelope.
type openAIError struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   string `json:"param,omitempty"`
	Code    string `json:"code,omitempty"`
}

func (e openAIError) MarshalJSON() ([]byte, error) {
	// OpenAI sends param and code as explicit nulls when they do not apply.
	type wire struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	w := wire{Message: e.Message, Type: e.Type}
	if e.Param != "" {
		w.Param = &e.Param
	}
	if e.Code != "" {
		w.Code = &e.Code
	}
	return json.Marshal(w)
}

func writeOpenAIError(ctx *fasthttp.RequestCtx, status int, e openAIError) {
	body, _ := json.Marshal(map[string]openAIError{"error": e})
	writeJSON(ctx, status, body)
}

func openAIErrorKind(status int) (typ, code string) {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request_error", ""
	case http.StatusUnauthorized:
		return "invalid_request_error", "invalid_api_key"
	case http.StatusForbidden:
		return "permission_error", ""
	case http.StatusNotFound:
		return "invalid_request_error", "not_found"
	case http.StatusTooManyRequests:
		return "requests", "rate_limit_exceeded"
	case http.StatusServiceUnavailable:
		return "server_error", "service_unavailable"
	}
	if status >= 500 {
		return "server_error", ""
	}
	return "invalid_request_error", ""
}

type chatRequest struct {
	Model         string        `json:"model"`
	Messages      []chatMessage `json:"messages"`
	Stream        bool          `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Tools               []chatTool      `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name       string          `json:"name"`
		Parameters json.RawMessage `json:"parameters"`
	} `json:"function"`
}

func (l *LLMServer) chat(ctx *fasthttp.RequestCtx, n int64, inj injection) {
	var req chatRequest
	if err := json.Unmarshal(ctx.Request.Body(), &req); err != nil {
		writeOpenAIError(ctx, http.StatusBadRequest, openAIError{Message: "We could not parse the JSON body of your request: " + err.Error(), Type: "invalid_request_error"})
		return
	}
	if req.Model == "" || len(req.Messages) == 0 {
		writeOpenAIError(ctx, http.StatusBadRequest, openAIError{Message: "model and messages are required", Type: "invalid_request_error", Param: "messages"})
		return
	}
	limit := -1
	for _, p := range []*int{req.MaxTokens, req.MaxCompletionTokens} {
		if p == nil {
			continue
		}
		if *p < 1 {
			writeOpenAIError(ctx, http.StatusBadRequest, openAIError{Message: "max_tokens must be at least 1", Type: "invalid_request_error", Param: "max_tokens", Code: "integer_below_min_value"})
			return
		}
		limit = *p
	}
	texts := make([]string, len(req.Messages))
	chars, promptTokens := 0, 0
	for i, m := range req.Messages {
		texts[i] = contentText(m.Content)
		chars += len(texts[i])
		promptTokens += countTokens(texts[i])
	}
	if l.failFor(ctx, dialectOpenAI, req.Model, chars) {
		return
	}
	last := req.Messages[len(req.Messages)-1]
	r := reply{model: req.Model, id: "chatcmpl-mock-" + strconv.FormatInt(n, 10), created: time.Now().Unix(), promptTokens: promptTokens}
	if last.Role == "user" && wantsToolCall(texts[len(texts)-1]) && len(req.Tools) > 0 && string(req.ToolChoice) != `"none"` {
		tool := pickTool(texts[len(texts)-1], req.Tools)
		r.tool = &toolCall{id: "call_mock_" + strconv.FormatInt(n, 10), name: tool.Function.Name, arguments: argumentsFor(tool.Function.Parameters)}
		r.completionTokens = (len(r.tool.arguments) + 3) / 4
		r.finish = "tool_calls"
	} else {
		r.words, r.finish = truncateWords(strings.Fields(texts[len(texts)-1]), limit)
		r.completionTokens = len(r.words)
	}
	if !req.Stream {
		writeJSON(ctx, http.StatusOK, r.completionJSON())
		return
	}
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	startStream(ctx, &eventStream{
		events:    r.chunks(includeUsage),
		interval:  l.interval,
		failAfter: inj.failAfter,
		done:      l.done,
	})
}

// reply is the deterministic answer to a chat request: the last message's
// words echoed back, or a call of one of the offered tools.
type reply struct {
	id               string
	model            string
	created          int64
	words            []string
	tool             *toolCall
	finish           string
	promptTokens     int
	completionTokens int
}

type toolCall struct {
	id, name, arguments string
}

func (r *reply) text() string { return strings.Join(r.words, " ") }

func (r *reply) usageJSON() []byte {
	return []byte(`{"prompt_tokens":` + strconv.Itoa(r.promptTokens) +
		`,"completion_tokens":` + strconv.Itoa(r.completionTokens) +
		`,"total_tokens":` + strconv.Itoa(r.promptTokens+r.completionTokens) +
		`,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}`)
}

func (r *reply) completionJSON() []byte {
	b := make([]byte, 0, 512)
	b = append(b, `{"id":"`...)
	b = append(b, r.id...)
	b = append(b, `","object":"chat.completion","created":`...)
	b = strconv.AppendInt(b, r.created, 10)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, r.model)
	b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
	if r.tool != nil {
		b = append(b, `null,"tool_calls":[{"id":"`...)
		b = append(b, r.tool.id...)
		b = append(b, `","type":"function","function":{"name":`...)
		b = appendJSONString(b, r.tool.name)
		b = append(b, `,"arguments":`...)
		b = appendJSONString(b, r.tool.arguments)
		b = append(b, `}}]`...)
	} else {
		b = appendJSONString(b, r.text())
	}
	b = append(b, `,"refusal":null},"logprobs":null,"finish_reason":"`...)
	b = append(b, r.finish...)
	b = append(b, `"}],"usage":`...)
	b = append(b, r.usageJSON()...)
	b = append(b, `,"system_fingerprint":"fp_mock"}`...)
	return b
}

// chunks renders the SSE events of a streamed reply exactly as OpenAI orders
// them: a role chunk, content (or tool-call argument) chunks, a chunk with
// finish_reason, the usage chunk with empty choices only when asked, [DONE].
func (r *reply) chunks(includeUsage bool) []sseEvent {
	prefix := make([]byte, 0, 128)
	prefix = append(prefix, `{"id":"`...)
	prefix = append(prefix, r.id...)
	prefix = append(prefix, `","object":"chat.completion.chunk","created":`...)
	prefix = strconv.AppendInt(prefix, r.created, 10)
	prefix = append(prefix, `,"model":`...)
	prefix = appendJSONString(prefix, r.model)
	prefix = append(prefix, `,"system_fingerprint":"fp_mock","choices":[`...)
	usageNull := ""
	if includeUsage {
		usageNull = `,"usage":null`
	}
	chunk := func(delta []byte, finish string, paced bool) sseEvent {
		b := make([]byte, 0, len(prefix)+len(delta)+96)
		b = append(b, "data: "...)
		b = append(b, prefix...)
		b = append(b, `{"index":0,"delta":`...)
		b = append(b, delta...)
		b = append(b, `,"logprobs":null,"finish_reason":`...)
		if finish == "" {
			b = append(b, "null"...)
		} else {
			b = append(b, '"')
			b = append(b, finish...)
			b = append(b, '"')
		}
		b = append(b, "}]"...)
		b = append(b, usageNull...)
		b = append(b, "}\n\n"...)
		return sseEvent{data: b, paced: paced}
	}

	var events []sseEvent
	if r.tool != nil {
		head := []byte(`{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"` + r.tool.id + `","type":"function","function":{"name":`)
		head = appendJSONString(head, r.tool.name)
		head = append(head, `,"arguments":""}}],"refusal":null}`...)
		events = append(events, chunk(head, "", false))
		for _, piece := range splitEvery(r.tool.arguments, 8) {
			d := append([]byte(`{"tool_calls":[{"index":0,"function":{"arguments":`), nil...)
			d = appendJSONString(d, piece)
			d = append(d, "}}]}"...)
			events = append(events, chunk(d, "", true))
		}
	} else {
		events = append(events, chunk([]byte(`{"role":"assistant","content":"","refusal":null}`), "", false))
		for i, w := range r.words {
			if i > 0 {
				w = " " + w
			}
			d := append([]byte(`{"content":`), nil...)
			d = appendJSONString(d, w)
			d = append(d, '}')
			events = append(events, chunk(d, "", true))
		}
	}
	events = append(events, chunk([]byte(`{}`), r.finish, false))
	if includeUsage {
		b := append([]byte("data: "), prefix...)
		b = append(b, `],"usage":`...)
		b = append(b, r.usageJSON()...)
		b = append(b, "}\n\n"...)
		events = append(events, sseEvent{data: b})
	}
	return append(events, sseEvent{data: []byte("data: [DONE]\n\n")})
}

func wantsToolCall(text string) bool {
	return strings.Contains(strings.ToLower(text), "call tool")
}

// pickTool prefers a tool the message names, else the first one.
func pickTool(text string, tools []chatTool) chatTool {
	for _, t := range tools {
		if t.Function.Name != "" && strings.Contains(text, t.Function.Name) {
			return t
		}
	}
	return tools[0]
}

type embeddingsRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     int             `json:"dimensions"`
}

func (l *LLMServer) embeddings(ctx *fasthttp.RequestCtx) {
	var req embeddingsRequest
	if err := json.Unmarshal(ctx.Request.Body(), &req); err != nil {
		writeOpenAIError(ctx, http.StatusBadRequest, openAIError{Message: "We could not parse the JSON body of your request: " + err.Error(), Type: "invalid_request_error"})
		return
	}
	inputs, err := embeddingInputs(req.Input)
	if err != nil || req.Model == "" {
		writeOpenAIError(ctx, http.StatusBadRequest, openAIError{Message: "'$.input' is invalid: want a string, an array of strings or token arrays; model is required", Type: "invalid_request_error", Param: "input"})
		return
	}
	if req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
		writeOpenAIError(ctx, http.StatusBadRequest, openAIError{Message: "encoding_format must be float or base64", Type: "invalid_request_error", Param: "encoding_format"})
		return
	}
	chars := 0
	for _, in := range inputs {
		chars += len(in.seed)
	}
	if l.failFor(ctx, dialectOpenAI, req.Model, chars) {
		return
	}
	dims := req.Dimensions
	if dims <= 0 {
		dims = defaultDimensions(req.Model)
	}
	writeJSON(ctx, http.StatusOK, embeddingsJSON(req.Model, inputs, dims, req.EncodingFormat == "base64"))
}

func (l *LLMServer) listModels(ctx *fasthttp.RequestCtx) {
	b := append([]byte(nil), `{"object":"list","data":[`...)
	for i, m := range l.models {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendModel(b, m)
	}
	writeJSON(ctx, http.StatusOK, append(b, "]}"...))
}

func (l *LLMServer) getModel(ctx *fasthttp.RequestCtx, id string) {
	for _, m := range l.models {
		if m == id {
			writeJSON(ctx, http.StatusOK, appendModel(nil, m))
			return
		}
	}
	writeOpenAIError(ctx, http.StatusNotFound, openAIError{Message: "The model '" + id + "' does not exist", Type: "invalid_request_error", Param: "model", Code: "model_not_found"})
}

func appendModel(b []byte, id string) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	return append(b, `,"object":"model","created":1700000000,"owned_by":"switchboard-mock"}`...)
}
