package mock

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// responsesRequest is what the mock reads of a Responses API request.
type responsesRequest struct {
	Model              string          `json:"model"`
	Input              json.RawMessage `json:"input"`
	Instructions       string          `json:"instructions"`
	Stream             bool            `json:"stream"`
	MaxOutputTokens    *int            `json:"max_output_tokens"`
	PreviousResponseID string          `json:"previous_response_id"`
	Store              *bool           `json:"store"`
}

// responseStore is the ids of the responses a mock made and stored, as a provider account keeps them: a
// previous_response_id it never made is not found, so tests see a follow-up sent to the wrong upstream.
type responseStore struct {
	prefix string // random per server, so two mocks never make the same id
	mu     sync.Mutex
	ids    map[string]struct{}
}

// maxStoredResponses bounds the store; past it the mock forgets everything, which a long load test survives.
const maxStoredResponses = 100_000

func newResponseStore() *responseStore {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &responseStore{prefix: "resp_" + hex.EncodeToString(b[:]) + "_", ids: map[string]struct{}{}}
}

func (s *responseStore) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ids) >= maxStoredResponses {
		clear(s.ids)
	}
	s.ids[id] = struct{}{}
}

func (s *responseStore) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.ids[id]
	return ok
}

// responses answers POST /v1/responses: the last input message's words echoed back, as JSON or as the
// Responses API's event stream.
func (l *LLMServer) responses(ctx *fasthttp.RequestCtx, n int64, inj injection) {
	var req responsesRequest
	if err := json.Unmarshal(ctx.Request.Body(), &req); err != nil {
		writeOpenAIError(ctx, http.StatusBadRequest, openAIError{Message: "We could not parse the JSON body of your request: " + err.Error(), Type: "invalid_request_error"})
		return
	}
	texts, ok := responsesInputTexts(req.Input)
	if req.Model == "" || !ok {
		writeOpenAIError(ctx, http.StatusBadRequest, openAIError{Message: "model and input (a string or a list of input items) are required", Type: "invalid_request_error", Param: "input"})
		return
	}
	if req.MaxOutputTokens != nil && *req.MaxOutputTokens < 16 {
		writeOpenAIError(ctx, http.StatusBadRequest, openAIError{Message: "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16.", Type: "invalid_request_error", Param: "max_output_tokens", Code: "integer_below_min_value"})
		return
	}
	if req.PreviousResponseID != "" && !l.stored.has(req.PreviousResponseID) {
		writeOpenAIError(ctx, http.StatusNotFound, openAIError{Message: "Previous response with id '" + req.PreviousResponseID + "' not found.", Type: "invalid_request_error", Param: "previous_response_id", Code: "previous_response_not_found"})
		return
	}
	chars, promptTokens := len(req.Instructions), countTokens(req.Instructions)
	for _, t := range texts {
		chars += len(t)
		promptTokens += countTokens(t)
	}
	if l.failFor(ctx, dialectOpenAI, req.Model, chars) {
		return
	}
	limit := -1
	if req.MaxOutputTokens != nil {
		limit = *req.MaxOutputTokens
	}
	var last string
	if len(texts) > 0 {
		last = texts[len(texts)-1]
	}
	words, finish := truncateWords(strings.Fields(last), limit)
	seq := strconv.FormatInt(n, 10)
	r := &responseObject{
		ID: l.stored.prefix + seq, Object: "response", CreatedAt: time.Now().Unix(), Status: "completed",
		Model: req.Model, Output: []responseItem{}, ParallelToolCalls: true, Store: req.Store == nil || *req.Store,
		Text: json.RawMessage(`{"format":{"type":"text"}}`), ToolChoice: "auto", Tools: []any{}, Truncation: "disabled",
		Temperature: 1, TopP: 1, Metadata: map[string]string{}, MaxOutputTokens: req.MaxOutputTokens,
		Reasoning: json.RawMessage(`{"effort":null,"summary":null}`),
	}
	if req.Instructions != "" {
		r.Instructions = &req.Instructions
	}
	if req.PreviousResponseID != "" {
		r.PreviousResponseID = &req.PreviousResponseID
	}
	if r.Store {
		l.stored.add(r.ID)
	}
	item := responseItem{ID: "msg_" + strings.TrimPrefix(r.ID, "resp_"), Type: "message", Status: "completed", Role: "assistant",
		Content: []responsePart{{Type: "output_text", Text: strings.Join(words, " "), Annotations: []any{}}}}
	u := &responseUsage{InputTokens: promptTokens, OutputTokens: len(words), TotalTokens: promptTokens + len(words)}
	final := *r
	final.Output, final.Usage = []responseItem{item}, u
	if finish == "length" {
		final.Status = "incomplete"
		final.IncompleteDetails = &struct {
			Reason string `json:"reason"`
		}{"max_output_tokens"}
	}
	if !req.Stream {
		b, _ := json.Marshal(&final)
		writeJSON(ctx, http.StatusOK, b)
		return
	}
	startStream(ctx, &eventStream{
		events:    responseEvents(r, &final, item, words),
		interval:  l.interval,
		failAfter: inj.failAfter,
		done:      l.done,
	})
}

// responsesInputTexts flattens input, a string or a list of items (messages with string or part content,
// function call outputs), to the text of each; ok is false for any other shape.
func responsesInputTexts(raw json.RawMessage) (texts []string, ok bool) {
	if len(raw) == 0 {
		return nil, false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false
		}
		return []string{s}, true
	}
	var items []struct {
		Content json.RawMessage `json:"content"`
		Output  json.RawMessage `json:"output"`
	}
	if json.Unmarshal(raw, &items) != nil || len(items) == 0 {
		return nil, false
	}
	for _, it := range items {
		if len(it.Content) > 0 {
			texts = append(texts, contentText(it.Content))
		} else {
			texts = append(texts, contentText(it.Output))
		}
	}
	return texts, true
}

type responseObject struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	CreatedAt          int64             `json:"created_at"`
	Status             string            `json:"status"`
	Error              *struct{}         `json:"error"`
	IncompleteDetails  any               `json:"incomplete_details"`
	Instructions       *string           `json:"instructions"`
	MaxOutputTokens    *int              `json:"max_output_tokens"`
	Model              string            `json:"model"`
	Output             []responseItem    `json:"output"`
	ParallelToolCalls  bool              `json:"parallel_tool_calls"`
	PreviousResponseID *string           `json:"previous_response_id"`
	Reasoning          json.RawMessage   `json:"reasoning"`
	Store              bool              `json:"store"`
	Temperature        float64           `json:"temperature"`
	Text               json.RawMessage   `json:"text"`
	ToolChoice         string            `json:"tool_choice"`
	Tools              []any             `json:"tools"`
	TopP               float64           `json:"top_p"`
	Truncation         string            `json:"truncation"`
	Usage              *responseUsage    `json:"usage"`
	Metadata           map[string]string `json:"metadata"`
}

type responseItem struct {
	ID      string         `json:"id"`
	Type    string         `json:"type"`
	Status  string         `json:"status"`
	Role    string         `json:"role"`
	Content []responsePart `json:"content"`
}

type responsePart struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	Annotations []any  `json:"annotations"`
}

type responseUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

// responseEvents renders the event stream of a one-message reply in the order OpenAI sends it:
// response.created, response.in_progress, the item and its part opening, one output_text delta per word,
// their closing, then response.completed (or response.incomplete) with the usage.
func responseEvents(start, final *responseObject, item responseItem, words []string) []sseEvent {
	var events []sseEvent
	seq := 0
	add := func(typ string, fields map[string]any, paced bool) {
		fields["type"], fields["sequence_number"] = typ, seq
		seq++
		b, _ := json.Marshal(fields)
		data := make([]byte, 0, len(b)+len(typ)+16)
		data = append(data, "event: "...)
		data = append(data, typ...)
		data = append(data, "\ndata: "...)
		data = append(data, b...)
		data = append(data, "\n\n"...)
		events = append(events, sseEvent{data: data, paced: paced})
	}
	inProgress := *start
	inProgress.Status = "in_progress"
	add("response.created", map[string]any{"response": &inProgress}, false)
	add("response.in_progress", map[string]any{"response": &inProgress}, false)
	open := item
	open.Status, open.Content = "in_progress", []responsePart{}
	add("response.output_item.added", map[string]any{"output_index": 0, "item": open}, false)
	emptyPart := responsePart{Type: "output_text", Annotations: []any{}}
	add("response.content_part.added", map[string]any{"item_id": item.ID, "output_index": 0, "content_index": 0, "part": emptyPart}, false)
	for i, w := range words {
		if i > 0 {
			w = " " + w
		}
		add("response.output_text.delta", map[string]any{"item_id": item.ID, "output_index": 0, "content_index": 0, "delta": w, "logprobs": []any{}}, true)
	}
	part := item.Content[0]
	add("response.output_text.done", map[string]any{"item_id": item.ID, "output_index": 0, "content_index": 0, "text": part.Text, "logprobs": []any{}}, false)
	add("response.content_part.done", map[string]any{"item_id": item.ID, "output_index": 0, "content_index": 0, "part": part}, false)
	add("response.output_item.done", map[string]any{"output_index": 0, "item": item}, false)
	terminal := "response.completed"
	if final.Status == "incomplete" {
		terminal = "response.incomplete"
	}
	add(terminal, map[string]any{"response": final}, false)
	return events
}
