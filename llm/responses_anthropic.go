package llm

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// The Responses API on an Anthropic deployment: the request becomes a Messages request and the reply, JSON or
// stream, a Responses object, so the clients that speak only the Responses API (the OpenAI Agents SDK, the Codex
// CLI) can use Claude models. What has no Messages form is refused rather than dropped: OpenAI's built-in tools,
// and whatever needs OpenAI's conversation store (previous_response_id, store: true, conversation, stored
// prompts), which the gateway does not keep.

// responsesIn is a Responses API request as the translation reads it. Values the Messages API takes as they are
// stay raw, so 0.7 is not turned into a float64 0.69999.
type responsesIn struct {
	Input              json.RawMessage `json:"input"`
	Instructions       json.RawMessage `json:"instructions"`
	Tools              []responsesTool `json:"tools"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	ParallelToolCalls  *bool           `json:"parallel_tool_calls"`
	MaxOutputTokens    int64           `json:"max_output_tokens"`
	Temperature        json.RawMessage `json:"temperature"`
	TopP               json.RawMessage `json:"top_p"`
	Stream             bool            `json:"stream"`
	User               string          `json:"user"`
	SafetyIdentifier   string          `json:"safety_identifier"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Store              *bool           `json:"store"`
	Conversation       json.RawMessage `json:"conversation"`
	Prompt             json.RawMessage `json:"prompt"`
	TopLogprobs        *int            `json:"top_logprobs"`
	Text               *struct {
		Format *struct {
			Type   string          `json:"type"`
			Schema json.RawMessage `json:"schema"`
		} `json:"format"`
	} `json:"text"`
}

type responsesTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
	Tools       []responsesTool `json:"tools"` // of a namespace
}

// A namespace tool groups function tools under a name (the Codex CLI sends its sub-agent tools so); the model
// calls one by its name and the namespace. Anthropic has no namespaces: each becomes a tool named
// namespace + namespaceSep + name, and a call of that name goes back split.
const namespaceSep = "__"

// namespacedTools maps each flattened tool name of the request's namespace tools to its namespace and name; nil
// when it has none.
func namespacedTools(reqBody []byte) map[string][2]string {
	raw := topLevelValue(reqBody, "tools")
	if len(raw) == 0 || raw[0] != '[' || !bytes.Contains(raw, []byte(`"namespace"`)) {
		return nil
	}
	var tools []responsesTool
	if json.Unmarshal(raw, &tools) != nil {
		return nil
	}
	var m map[string][2]string
	for _, t := range tools {
		if t.Type != "namespace" {
			continue
		}
		if m == nil {
			m = map[string][2]string{}
		}
		for _, sub := range t.Tools {
			m[t.Name+namespaceSep+sub.Name] = [2]string{t.Name, sub.Name}
		}
	}
	return m
}

// responsesItem is one input item: a message, a function call the model made, or its output.
type responsesItem struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Namespace string          `json:"namespace"`
	Arguments string          `json:"arguments"`
	Output    json.RawMessage `json:"output"`
}

type responsesPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL string `json:"image_url"`
	FileID   string `json:"file_id"`
	Refusal  string `json:"refusal"`
}

// errNoStore is why a translated deployment cannot continue or keep a conversation.
const errNoStore = "the gateway keeps no conversation store for models it serves through a translation to Anthropic's Messages API"

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// unservable names what a Responses request asks for that an Anthropic deployment cannot honour.
func (in *responsesIn) unservable() error {
	switch {
	case in.PreviousResponseID != nil && *in.PreviousResponseID != "":
		return fmt.Errorf("previous_response_id: %s; send the whole conversation in input instead", errNoStore)
	case in.Store != nil && *in.Store:
		return fmt.Errorf("store: %s; send \"store\": false (or leave it out)", errNoStore)
	case !isNull(in.Conversation):
		return fmt.Errorf("conversation: %s; send the whole conversation in input instead", errNoStore)
	case !isNull(in.Prompt):
		return errors.New("prompt: stored prompt templates live in OpenAI's account and cannot be used with an Anthropic model")
	case in.TopLogprobs != nil && *in.TopLogprobs > 0:
		return errors.New("top_logprobs: Anthropic models do not return log probabilities")
	}
	return nil
}

// responsesToAnthropic translates a Responses API request body into an Anthropic Messages request for model.
func responsesToAnthropic(body []byte, model string) ([]byte, error) {
	var in responsesIn
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("cannot translate request: %v", err)
	}
	if err := in.unservable(); err != nil {
		return nil, err
	}
	out := anthropicRequest{Model: model, Temperature: in.Temperature, TopP: in.TopP, Stream: in.Stream, MaxTokens: in.MaxOutputTokens}
	if out.MaxTokens == 0 {
		out.MaxTokens = defaultMaxOutput // Anthropic requires it
	}
	if id := cmp.Or(in.SafetyIdentifier, in.User); id != "" {
		out.Metadata = &anthropicMetadata{UserID: id}
	}
	if !isNull(in.Instructions) {
		var s string
		if err := json.Unmarshal(in.Instructions, &s); err != nil {
			return nil, errors.New("instructions: must be a string")
		}
		if s != "" {
			out.System = anthropicContent{{Type: "text", Text: s}}
		}
	}
	for i, t := range in.Tools {
		switch t.Type {
		case "function":
			out.Tools = append(out.Tools, functionTool(t.Name, t))
		case "namespace":
			for j, sub := range t.Tools {
				if sub.Type != "function" {
					return nil, fmt.Errorf("tools[%d].tools[%d]: tool type %q cannot be translated for an Anthropic model; only function tools are", i, j, sub.Type)
				}
				out.Tools = append(out.Tools, functionTool(t.Name+namespaceSep+sub.Name, sub))
			}
		default:
			return nil, fmt.Errorf("tools[%d]: tool type %q is one of OpenAI's built-in tools, which an Anthropic model cannot run; only function tools (alone or in a namespace) are translated", i, t.Type)
		}
	}
	tc, err := responsesToolChoice(in.ToolChoice)
	if err != nil {
		return nil, err
	}
	out.ToolChoice = withToolRules(tc, in.ParallelToolCalls, len(out.Tools))
	if in.Text != nil && in.Text.Format != nil {
		switch f := in.Text.Format; f.Type {
		case "", "text":
		case "json_schema":
			if isNull(f.Schema) {
				return nil, errors.New("text.format: json_schema needs a schema")
			}
			out.OutputConfig = &anthropicOutput{Format: &anthropicFormat{Type: "json_schema", Schema: f.Schema}}
		default:
			return nil, fmt.Errorf("text.format: %q cannot be translated for an Anthropic model, which takes a json_schema only", f.Type)
		}
	}
	if err := appendResponsesInput(&out, in.Input); err != nil {
		return nil, err
	}
	if len(out.Messages) == 0 {
		return nil, errors.New("input: at least one message is required")
	}
	return json.Marshal(out)
}

func functionTool(name string, t responsesTool) anthropicTool {
	schema := t.Parameters
	if isNull(schema) {
		schema = json.RawMessage(`{"type":"object","properties":{}}`)
	}
	return anthropicTool{Name: name, Description: t.Description, InputSchema: schema}
}

func responsesToolChoice(raw json.RawMessage) (*anthropicToolChoice, error) {
	if isNull(raw) {
		return nil, nil
	}
	if raw[0] == '"' {
		return toolChoiceToAnthropic(raw)
	}
	var obj struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, errors.New("tool_choice: must be auto, required, none or a function")
	}
	if obj.Type != "function" || obj.Name == "" {
		return nil, fmt.Errorf("tool_choice: type %q cannot be translated for an Anthropic model; only auto, required, none or a function by name", obj.Type)
	}
	return &anthropicToolChoice{Type: "tool", Name: obj.Name}, nil
}

// appendResponsesInput adds the input, a string or a list of items, as Anthropic messages.
func appendResponsesInput(out *anthropicRequest, raw json.RawMessage) error {
	if isNull(raw) {
		return errors.New("input: field required")
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("input: %v", err)
		}
		addBlocks(out, "user", anthropicContent{{Type: "text", Text: s}})
		return nil
	}
	var items []responsesItem
	if err := json.Unmarshal(raw, &items); err != nil {
		return fmt.Errorf("input: must be a string or a list of items: %v", err)
	}
	for i, it := range items {
		if err := appendResponsesItem(out, it); err != nil {
			return fmt.Errorf("input[%d]: %v", i, err)
		}
	}
	return nil
}

func appendResponsesItem(out *anthropicRequest, it responsesItem) error {
	switch it.Type {
	case "", "message":
		blocks, err := responsesContent(it.Content)
		if err != nil {
			return err
		}
		switch it.Role {
		case "system", "developer":
			for _, b := range blocks {
				if b.Type != "text" {
					return fmt.Errorf("a %s message may hold text only", it.Role)
				}
			}
			out.System = append(out.System, blocks...)
		case "user", "assistant":
			addBlocks(out, it.Role, blocks)
		default:
			return fmt.Errorf("role %q cannot be translated", it.Role)
		}
	case "function_call":
		input := json.RawMessage(it.Arguments)
		if strings.TrimSpace(it.Arguments) == "" {
			input = json.RawMessage("{}")
		} else if !json.Valid(input) {
			return fmt.Errorf("function_call %q: arguments are not valid JSON", it.CallID)
		}
		name := it.Name
		if it.Namespace != "" {
			name = it.Namespace + namespaceSep + name
		}
		addBlocks(out, "assistant", anthropicContent{{Type: "tool_use", ID: it.CallID, Name: name, Input: input}})
	case "function_call_output":
		content, err := responsesContent(it.Output)
		if err != nil {
			return fmt.Errorf("function_call_output %q: %v", it.CallID, err)
		}
		addBlocks(out, "user", anthropicContent{{Type: "tool_result", ToolUseID: it.CallID, Content: content}})
	case "reasoning":
		// OpenAI's reasoning, encrypted for OpenAI's models; an Anthropic model does not need its past thinking.
	case "item_reference":
		return fmt.Errorf("item_reference: %s; send the item itself", errNoStore)
	default:
		return fmt.Errorf("item type %q cannot be translated for an Anthropic model", it.Type)
	}
	return nil
}

// responsesContent is a message's content, or a function call's output: a string or a list of parts.
func responsesContent(raw json.RawMessage) (anthropicContent, error) {
	if isNull(raw) {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		if s == "" {
			return nil, nil
		}
		return anthropicContent{{Type: "text", Text: s}}, nil
	}
	var parts []responsesPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, fmt.Errorf("content must be a string or a list of parts: %v", err)
	}
	var out anthropicContent
	for _, p := range parts {
		switch p.Type {
		case "input_text", "output_text":
			if p.Text != "" {
				out = append(out, anthropicBlock{Type: "text", Text: p.Text})
			}
		case "refusal":
			out = append(out, anthropicBlock{Type: "text", Text: p.Refusal})
		case "input_image":
			if p.ImageURL == "" {
				return nil, errors.New("input_image: only an image_url (a URL or a base64 data URL) can be translated, not a file_id")
			}
			b, err := partToAnthropic(openai.ChatMessagePart{Type: openai.ChatMessagePartTypeImageURL,
				ImageURL: &openai.ChatMessageImageURL{URL: p.ImageURL}})
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		default:
			return nil, fmt.Errorf("content part type %q cannot be translated for an Anthropic model", p.Type)
		}
	}
	return out, nil
}

// responsesObject is a Responses API response, as a translated call answers it.
type responsesObject struct {
	ID                string                `json:"id"`
	Object            string                `json:"object"`
	CreatedAt         int64                 `json:"created_at"`
	Status            string                `json:"status"`
	Error             *struct{}             `json:"error"`
	IncompleteDetails *responsesIncomplete  `json:"incomplete_details"`
	Model             string                `json:"model"`
	Output            []responsesOutputItem `json:"output"`
	ParallelToolCalls bool                  `json:"parallel_tool_calls"`
	ToolChoice        json.RawMessage       `json:"tool_choice"`
	Tools             json.RawMessage       `json:"tools"`
	Store             bool                  `json:"store"`
	Usage             *responsesUsageOut    `json:"usage"`
	Metadata          map[string]string     `json:"metadata"`
}

type responsesIncomplete struct {
	Reason string `json:"reason"`
}

// responsesOutputItem is a message or a function call; each has its own fields on the wire (see MarshalJSON).
type responsesOutputItem struct {
	Type      string
	ID        string
	Status    string
	Content   []responsesTextPart // of a message
	CallID    string              // of a function call, and the next three
	Name      string
	Namespace string
	Arguments string
}

// functionCall is the output item of Anthropic's tool_use block; namespaced maps the names of namespaced tools.
func functionCall(status, toolUseID, name string, namespaced map[string][2]string) responsesOutputItem {
	it := responsesOutputItem{Type: "function_call", ID: functionCallItemID(toolUseID), Status: status, CallID: toolUseID, Name: name}
	if n, ok := namespaced[name]; ok {
		it.Namespace, it.Name = n[0], n[1]
	}
	return it
}

// MarshalJSON writes a message's content even when it has none yet (clients index into it) and a function call's
// arguments even when empty.
func (it responsesOutputItem) MarshalJSON() ([]byte, error) {
	if it.Type == "message" {
		content := it.Content
		if content == nil {
			content = []responsesTextPart{}
		}
		return json.Marshal(struct {
			Type    string              `json:"type"`
			ID      string              `json:"id"`
			Status  string              `json:"status"`
			Role    string              `json:"role"`
			Content []responsesTextPart `json:"content"`
		}{it.Type, it.ID, it.Status, "assistant", content})
	}
	return json.Marshal(struct {
		Type      string `json:"type"`
		ID        string `json:"id"`
		Status    string `json:"status"`
		CallID    string `json:"call_id"`
		Name      string `json:"name"`
		Namespace string `json:"namespace,omitempty"`
		Arguments string `json:"arguments"`
	}{it.Type, it.ID, it.Status, it.CallID, it.Name, it.Namespace, it.Arguments})
}

type responsesTextPart struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	Annotations []any  `json:"annotations"`
}

type responsesUsageOut struct {
	InputTokens        int64 `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int64 `json:"total_tokens"`
}

// responsesUsageFrom is u as the Responses API counts it: input_tokens include the cached ones, as Usage does.
func responsesUsageFrom(u Usage) *responsesUsageOut {
	out := &responsesUsageOut{InputTokens: u.Input, OutputTokens: u.Output, TotalTokens: saturatingAdd(u.Input, u.Output)}
	out.InputTokensDetails.CachedTokens = u.Cached
	return out
}

// newResponsesObject is a response's frame, with what the request asked echoed as OpenAI echoes it. It keeps
// copies: a stream outlives the request's buffers.
func newResponsesObject(reqBody []byte) *responsesObject {
	r := &responsesObject{Object: "response", CreatedAt: time.Now().Unix(), Status: "in_progress",
		Output: []responsesOutputItem{}, ParallelToolCalls: true, ToolChoice: json.RawMessage(`"auto"`),
		Tools: json.RawMessage(`[]`), Metadata: map[string]string{}}
	if raw := topLevelValue(reqBody, "parallel_tool_calls"); string(raw) == "false" {
		r.ParallelToolCalls = false
	}
	if raw := topLevelValue(reqBody, "tool_choice"); !isNull(raw) {
		r.ToolChoice = bytes.Clone(raw)
	}
	if raw := topLevelValue(reqBody, "tools"); len(raw) > 0 && raw[0] == '[' {
		r.Tools = bytes.Clone(raw)
	}
	return r
}

// begin gives the response the id and model of the Anthropic message it answers with.
func (r *responsesObject) begin(anthropicID, model string) {
	r.ID, r.Model = responsesID(anthropicID), model
}

// finish sets the status Anthropic's stop_reason stands for.
func (r *responsesObject) finish(stopReason string) {
	r.Status = "completed"
	switch stopReason {
	case "max_tokens":
		r.Status, r.IncompleteDetails = "incomplete", &responsesIncomplete{Reason: "max_output_tokens"}
	case "refusal":
		r.Status, r.IncompleteDetails = "incomplete", &responsesIncomplete{Reason: "content_filter"}
	}
}

// responsesID is the response's id in the Responses API's form, from the Anthropic message's.
func responsesID(anthropicID string) string {
	if id := strings.TrimPrefix(anthropicID, "msg_"); id != "" {
		return "resp_" + id
	}
	return randomID("resp_")
}

func randomID(prefix string) string {
	return fmt.Sprintf("%s%016x%016x", prefix, rand.Uint64(), rand.Uint64())
}

// functionCallItemID is the item id of the function call for Anthropic's tool_use id: the call_id stays
// Anthropic's, so the client's function_call_output names the tool_use it answers.
func functionCallItemID(toolUseID string) string {
	return "fc_" + strings.TrimPrefix(toolUseID, "toolu_")
}

// anthropicToResponsesResponse turns an Anthropic reply into a Responses object.
func anthropicToResponsesResponse(raw, reqBody []byte) ([]byte, Usage, error) {
	in, u, err := readAnthropicReply(raw)
	if err != nil {
		return nil, Usage{}, err
	}
	r := newResponsesObject(reqBody)
	r.begin(in.ID, in.Model)
	namespaced := namespacedTools(reqBody)
	for _, b := range in.Content {
		switch b.Type {
		case "text":
			// One message per text block, as the stream gives them.
			r.Output = append(r.Output, responsesOutputItem{Type: "message", ID: randomID("msg_"), Status: "completed",
				Content: []responsesTextPart{{Type: "output_text", Text: b.Text, Annotations: []any{}}}})
		case "tool_use":
			args := string(b.Input)
			if args == "" {
				args = "{}"
			}
			fc := functionCall("completed", b.ID, b.Name, namespaced)
			fc.Arguments = args
			r.Output = append(r.Output, fc)
		}
	}
	stop := ""
	if in.StopReason != nil {
		stop = *in.StopReason
	}
	r.finish(stop)
	r.Usage = responsesUsageFrom(u)
	out, err := json.Marshal(r)
	return out, u, err
}
