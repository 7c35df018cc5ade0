package llm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	openai "github.com/sashabaranov/go-openai"
)

// Anthropic Messages API shapes, only the parts the translation needs.

type anthropicRequest struct {
	Model         string               `json:"model"`
	System        anthropicContent     `json:"system,omitempty"`
	Messages      []anthropicMessage   `json:"messages"`
	MaxTokens     int64                `json:"max_tokens"`
	Temperature   json.RawMessage      `json:"temperature,omitempty"`
	TopP          json.RawMessage      `json:"top_p,omitempty"`
	StopSequences []string             `json:"stop_sequences,omitempty"`
	Stream        bool                 `json:"stream,omitempty"`
	Tools         []anthropicTool      `json:"tools,omitempty"`
	ToolChoice    *anthropicToolChoice `json:"tool_choice,omitempty"`
	Metadata      *anthropicMetadata   `json:"metadata,omitempty"`
	Thinking      *anthropicThinking   `json:"thinking,omitempty"`
	OutputConfig  *anthropicOutput     `json:"output_config,omitempty"`
	// OutputFormat is structured outputs' first form, which Claude Code still sends beside output_config.format.
	OutputFormat *anthropicFormat `json:"output_format,omitempty"`
}

type anthropicMetadata struct {
	UserID string `json:"user_id,omitempty"`
}

type anthropicMessage struct {
	Role    string           `json:"role"`
	Content anthropicContent `json:"content"`
}

// anthropicContent is a string or a list of blocks on input; always blocks
// on output.
type anthropicContent []anthropicBlock

func (c *anthropicContent) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*c = anthropicContent{{Type: "text", Text: s}}
		return nil
	}
	var blocks []anthropicBlock
	if err := json.Unmarshal(b, &blocks); err != nil {
		return err
	}
	*c = blocks
	return nil
}

type anthropicBlock struct {
	Type      string           `json:"type"`
	Text      string           `json:"text,omitempty"`
	Source    *anthropicSource `json:"source,omitempty"`
	ID        string           `json:"id,omitempty"`
	Name      string           `json:"name,omitempty"`
	Input     json.RawMessage  `json:"input,omitempty"`
	ToolUseID string           `json:"tool_use_id,omitempty"`
	Content   anthropicContent `json:"content,omitempty"`
	IsError   bool             `json:"is_error,omitempty"`
}

type anthropicSource struct {
	Type      string `json:"type"` // base64 | url
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type anthropicTool struct {
	// Type is set for Anthropic's own tools (web_search_20250305,
	// bash_20250124, ...), absent or "custom" for the client's.
	Type        string          `json:"type,omitempty"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type anthropicToolChoice struct {
	Type                   string `json:"type"` // auto | any | tool | none
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

type anthropicUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens,omitempty"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens,omitempty"`
	// CacheCreation splits the cache writes by lifetime; without it, every write is a 5-minute one.
	CacheCreation *anthropicCacheCreation `json:"cache_creation,omitempty"`
}

type anthropicCacheCreation struct {
	Ephemeral5m int64 `json:"ephemeral_5m_input_tokens"`
	Ephemeral1h int64 `json:"ephemeral_1h_input_tokens"`
}

// counts is usage for a reply's own usage object, refusing negative counts
// (see Usage.check).
func (u anthropicUsage) counts() (Usage, error) {
	if u.InputTokens < 0 || u.OutputTokens < 0 || u.CacheReadInputTokens < 0 || u.CacheCreationInputTokens < 0 ||
		u.CacheCreation != nil && (u.CacheCreation.Ephemeral5m < 0 || u.CacheCreation.Ephemeral1h < 0) {
		return Usage{}, errUsageShape
	}
	return u.usage(), nil
}

// usage: Anthropic's input_tokens excludes cache reads and writes, OpenAI's
// prompt_tokens includes them; Usage follows OpenAI. Cache writes are priced
// apart, the 1-hour ones (from cache_creation) above the rest.
func (u anthropicUsage) usage() Usage {
	writes1h := int64(0)
	if u.CacheCreation != nil {
		writes1h = min(u.CacheCreation.Ephemeral1h, u.CacheCreationInputTokens)
	}
	return Usage{
		Input:        u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens,
		Output:       u.OutputTokens,
		Cached:       u.CacheReadInputTokens,
		CacheWrite:   u.CacheCreationInputTokens - writes1h,
		CacheWrite1h: writes1h,
	}
}

// openAIChatIn is an OpenAI chat request as the translation reads it.
// Sampling values stay raw so 0.7 is not turned into a float32 0.699999988.
type openAIChatIn struct {
	Messages            []openai.ChatCompletionMessage `json:"messages"`
	MaxTokens           int64                          `json:"max_tokens"`
	MaxCompletionTokens int64                          `json:"max_completion_tokens"`
	Temperature         json.RawMessage                `json:"temperature"`
	TopP                json.RawMessage                `json:"top_p"`
	Stop                json.RawMessage                `json:"stop"`
	Stream              bool                           `json:"stream"`
	Tools               []openAITool                   `json:"tools"`
	ToolChoice          json.RawMessage                `json:"tool_choice"`
	ParallelToolCalls   *bool                          `json:"parallel_tool_calls"`
	User                string                         `json:"user"`
	// Read only to refuse what Anthropic cannot give.
	N              *int64 `json:"n"`
	Logprobs       bool   `json:"logprobs"`
	TopLogprobs    *int   `json:"top_logprobs"`
	ResponseFormat *struct {
		Type string `json:"type"`
	} `json:"response_format"`
}

// untranslatable names what the request asks for that an Anthropic model
// cannot give: silently dropped, the client would get one choice, no log
// probabilities or free text where it parses JSON.
func (in *openAIChatIn) untranslatable() error {
	switch {
	case in.N != nil && *in.N > 1:
		return errors.New("n: Anthropic models give one choice per call")
	case in.Logprobs || in.TopLogprobs != nil:
		return errors.New("logprobs: Anthropic models do not return log probabilities")
	case in.ResponseFormat != nil && in.ResponseFormat.Type != "" && in.ResponseFormat.Type != "text":
		return fmt.Errorf("response_format: %q cannot be translated for an Anthropic model", in.ResponseFormat.Type)
	}
	return nil
}

// openAITool keeps the parameter schema as raw JSON: a decoded schema would
// lose key order and unknown keywords.
type openAITool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters,omitempty"`
	} `json:"function"`
}

// chatToAnthropic translates an OpenAI chat request body into an Anthropic
// Messages request for model.
func chatToAnthropic(body []byte, model string) ([]byte, error) {
	var in openAIChatIn
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("cannot translate request: %v", err)
	}
	if err := in.untranslatable(); err != nil {
		return nil, err
	}
	out := anthropicRequest{Model: model, Temperature: in.Temperature, TopP: in.TopP, Stream: in.Stream,
		MaxTokens: max(in.MaxTokens, in.MaxCompletionTokens)}
	if out.MaxTokens == 0 {
		out.MaxTokens = defaultMaxOutput // Anthropic requires it
	}
	if in.User != "" {
		out.Metadata = &anthropicMetadata{UserID: in.User}
	}
	if len(in.Stop) > 0 && in.Stop[0] == '"' {
		var s string
		_ = json.Unmarshal(in.Stop, &s)
		out.StopSequences = []string{s}
	} else if len(in.Stop) > 0 && in.Stop[0] == '[' {
		if err := json.Unmarshal(in.Stop, &out.StopSequences); err != nil {
			return nil, errors.New("stop: must be a string or a list of strings")
		}
	}
	for _, t := range in.Tools {
		schema := t.Function.Parameters
		if len(schema) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, anthropicTool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	tc, err := toolChoiceToAnthropic(in.ToolChoice)
	if err != nil {
		return nil, err
	}
	out.ToolChoice = withToolRules(tc, in.ParallelToolCalls, len(out.Tools))
	for i, m := range in.Messages {
		if err := appendAnthropicMessage(&out, m); err != nil {
			return nil, fmt.Errorf("messages[%d]: %v", i, err)
		}
	}
	return json.Marshal(out)
}

func toolChoiceToAnthropic(raw json.RawMessage) (*anthropicToolChoice, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "auto":
			return &anthropicToolChoice{Type: "auto"}, nil
		case "required":
			return &anthropicToolChoice{Type: "any"}, nil
		case "none":
			return &anthropicToolChoice{Type: "none"}, nil
		}
		return nil, fmt.Errorf("tool_choice: unknown value %q", s)
	}
	var obj struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Function.Name == "" {
		return nil, errors.New("tool_choice: must be auto, required, none or a function")
	}
	return &anthropicToolChoice{Type: "tool", Name: obj.Function.Name}, nil
}

// appendAnthropicMessage adds one OpenAI message.
func appendAnthropicMessage(out *anthropicRequest, m openai.ChatCompletionMessage) error {
	var role string
	var blocks anthropicContent
	switch m.Role {
	case openai.ChatMessageRoleSystem, openai.ChatMessageRoleDeveloper:
		out.System = append(out.System, textBlocks(m)...)
		return nil
	case openai.ChatMessageRoleUser:
		role = "user"
		for _, p := range contentParts(m) {
			b, err := partToAnthropic(p)
			if err != nil {
				return err
			}
			blocks = append(blocks, b)
		}
	case openai.ChatMessageRoleAssistant:
		role = "assistant"
		blocks = textBlocks(m)
		for _, tc := range m.ToolCalls {
			input := json.RawMessage(tc.Function.Arguments)
			if strings.TrimSpace(tc.Function.Arguments) == "" {
				input = json.RawMessage("{}")
			} else if !json.Valid(input) {
				return fmt.Errorf("tool call %q: arguments are not valid JSON", tc.ID)
			}
			blocks = append(blocks, anthropicBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: input})
		}
	case openai.ChatMessageRoleTool:
		role = "user"
		blocks = anthropicContent{{Type: "tool_result", ToolUseID: m.ToolCallID, Content: textBlocks(m)}}
	default:
		return fmt.Errorf("role %q cannot be translated", m.Role)
	}
	addBlocks(out, role, blocks)
	return nil
}

// addBlocks adds blocks to the conversation as role's; consecutive turns of one role merge, since Anthropic wants
// user and assistant to alternate.
func addBlocks(out *anthropicRequest, role string, blocks anthropicContent) {
	if len(blocks) == 0 {
		return
	}
	if n := len(out.Messages); n > 0 && out.Messages[n-1].Role == role {
		out.Messages[n-1].Content = append(out.Messages[n-1].Content, blocks...)
		return
	}
	out.Messages = append(out.Messages, anthropicMessage{Role: role, Content: blocks})
}

func contentParts(m openai.ChatCompletionMessage) []openai.ChatMessagePart {
	if m.MultiContent != nil {
		return m.MultiContent
	}
	if m.Content == "" {
		return nil
	}
	return []openai.ChatMessagePart{{Type: openai.ChatMessagePartTypeText, Text: m.Content}}
}

func textBlocks(m openai.ChatCompletionMessage) anthropicContent {
	var out anthropicContent
	for _, p := range contentParts(m) {
		if p.Type == openai.ChatMessagePartTypeText && p.Text != "" {
			out = append(out, anthropicBlock{Type: "text", Text: p.Text})
		}
	}
	return out
}

func partToAnthropic(p openai.ChatMessagePart) (anthropicBlock, error) {
	switch p.Type {
	case openai.ChatMessagePartTypeText:
		return anthropicBlock{Type: "text", Text: p.Text}, nil
	case openai.ChatMessagePartTypeImageURL:
		if p.ImageURL == nil {
			return anthropicBlock{}, errors.New("image_url part without a url")
		}
		u := p.ImageURL.URL
		if rest, ok := strings.CutPrefix(u, "data:"); ok {
			meta, data, ok := strings.Cut(rest, ",")
			mediaType, isB64 := strings.CutSuffix(meta, ";base64")
			if !ok || !isB64 {
				return anthropicBlock{}, errors.New("image data URLs must be base64")
			}
			return anthropicBlock{Type: "image", Source: &anthropicSource{Type: "base64", MediaType: mediaType, Data: data}}, nil
		}
		return anthropicBlock{Type: "image", Source: &anthropicSource{Type: "url", URL: u}}, nil
	}
	return anthropicBlock{}, fmt.Errorf("content part type %q cannot be translated", p.Type)
}

// openAIChatOut is the OpenAI request the Anthropic ingress sends upstream.
type openAIChatOut struct {
	Model               string                         `json:"model"`
	Messages            []openai.ChatCompletionMessage `json:"messages"`
	MaxTokens           int64                          `json:"max_tokens,omitempty"`
	MaxCompletionTokens int64                          `json:"max_completion_tokens,omitempty"`
	Temperature         json.RawMessage                `json:"temperature,omitempty"`
	TopP                json.RawMessage                `json:"top_p,omitempty"`
	Stop                []string                       `json:"stop,omitempty"`
	Stream              bool                           `json:"stream,omitempty"`
	StreamOptions       *openai.StreamOptions          `json:"stream_options,omitempty"`
	Tools               []openAITool                   `json:"tools,omitempty"`
	ToolChoice          any                            `json:"tool_choice,omitempty"`
	ParallelTools       *bool                          `json:"parallel_tool_calls,omitempty"`
	User                string                         `json:"user,omitempty"`
	ReasoningEffort     string                         `json:"reasoning_effort,omitempty"`
	ResponseFormat      *openAIResponseFormat          `json:"response_format,omitempty"`
}

// anthropicToChat translates an Anthropic Messages request body into an
// OpenAI chat request for model, with max_tokens sent as
// max_completion_tokens if completionTokens.
func anthropicToChat(body []byte, model string, completionTokens bool) ([]byte, error) {
	var in anthropicRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("cannot translate request: %v", err)
	}
	out := openAIChatOut{Model: model, Temperature: in.Temperature, TopP: in.TopP, Stop: in.StopSequences, Stream: in.Stream}
	if completionTokens {
		out.MaxCompletionTokens = in.MaxTokens
	} else {
		out.MaxTokens = in.MaxTokens
	}
	if in.Stream {
		out.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	}
	if in.Metadata != nil {
		out.User = in.Metadata.UserID
	}
	rf, err := in.responseFormat()
	if err != nil {
		return nil, err
	}
	out.ResponseFormat = rf
	if refusesMaxTokens(model) {
		// Only reasoning models take reasoning_effort; others answer it with a 400. max_tokens_field is not
		// asked: an Azure deployment of gpt-4o may take max_completion_tokens too.
		out.ReasoningEffort = in.reasoningEffort()
	}
	if sys := joinText(in.System); sys != "" {
		out.Messages = append(out.Messages, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleSystem, Content: sys})
	}
	for i, m := range in.Messages {
		msgs, err := messageToOpenAI(m)
		if err != nil {
			return nil, fmt.Errorf("messages[%d]: %v", i, err)
		}
		out.Messages = append(out.Messages, msgs...)
	}
	for i, t := range in.Tools {
		if t.Type != "" && t.Type != "custom" {
			// Anthropic runs these or defines their schema; as a bare
			// function the model would get a tool without parameters.
			return nil, fmt.Errorf("tools[%d]: tool type %q is Anthropic's own and cannot be sent to an OpenAI-compatible model", i, t.Type)
		}
		var ot openAITool
		ot.Type = "function"
		ot.Function.Name, ot.Function.Description, ot.Function.Parameters = t.Name, t.Description, t.InputSchema
		out.Tools = append(out.Tools, ot)
	}
	if tc := in.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto":
			out.ToolChoice = "auto"
		case "any":
			out.ToolChoice = "required"
		case "none":
			out.ToolChoice = "none"
		case "tool":
			out.ToolChoice = map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}}
		}
		if tc.DisableParallelToolUse {
			f := false
			out.ParallelTools = &f
		}
	}
	return json.Marshal(out)
}

// toolResultToOpenAI is a tool result's text for an OpenAI tool message, and its images. A tool message holds
// text only (OpenAI refuses an image in one), so the images go to the user message that follows the tool
// messages, each after a line naming its call; the tool message says so, or the model would read an empty
// result. Claude Code's Read tool answers this way for an image file, as do MCP tools that return screenshots.
// Any other block (a PDF document, a search result) has no chat form and is refused rather than dropped.
func toolResultToOpenAI(b anthropicBlock) (string, []openai.ChatMessagePart, error) {
	var texts []string
	var images []openai.ChatMessagePart
	for _, c := range b.Content {
		switch c.Type {
		case "text":
			texts = append(texts, c.Text)
		case "image":
			img, err := imagePart(c)
			if err != nil {
				return "", nil, fmt.Errorf("tool_result %s: %v", b.ToolUseID, err)
			}
			if len(images) == 0 {
				images = append(images, openai.ChatMessagePart{Type: openai.ChatMessagePartTypeText,
					Text: "Images returned by tool call " + b.ToolUseID + ":"})
			}
			images = append(images, img)
		default:
			return "", nil, fmt.Errorf("tool_result %s: content block type %q cannot be translated", b.ToolUseID, c.Type)
		}
	}
	if len(images) > 0 {
		texts = append(texts, "[the result's images follow in the next user message]")
	}
	content := strings.Join(texts, "\n\n")
	if b.IsError {
		// OpenAI's tool message has no error flag: the model learns
		// of the failure from the text.
		content = strings.TrimSuffix("Error: "+content, ": ")
	}
	return content, images, nil
}

// imagePart is an Anthropic image block as an OpenAI image part.
func imagePart(b anthropicBlock) (openai.ChatMessagePart, error) {
	if b.Source == nil {
		return openai.ChatMessagePart{}, errors.New("image block without source")
	}
	u := b.Source.URL
	if b.Source.Type == "base64" {
		u = "data:" + b.Source.MediaType + ";base64," + b.Source.Data
	}
	return openai.ChatMessagePart{Type: openai.ChatMessagePartTypeImageURL, ImageURL: &openai.ChatMessageImageURL{URL: u}}, nil
}

func joinText(c anthropicContent) string {
	var parts []string
	for _, b := range c {
		if b.Type == "text" {
			parts = append(parts, b.Text)
		}
	}
	return strings.Join(parts, "\n\n")
}

// messageToOpenAI maps one Anthropic message to OpenAI messages: tool
// results become separate "tool" messages, placed before the rest of the
// user's turn as OpenAI expects.
func messageToOpenAI(m anthropicMessage) ([]openai.ChatCompletionMessage, error) {
	var out []openai.ChatCompletionMessage
	var parts []openai.ChatMessagePart
	var calls []openai.ToolCall
	// toolImages are the images tool results returned; they reach the model in the user message after the
	// tool messages.
	var toolImages []openai.ChatMessagePart
	for _, b := range m.Content {
		switch b.Type {
		case "text":
			parts = append(parts, openai.ChatMessagePart{Type: openai.ChatMessagePartTypeText, Text: b.Text})
		case "image":
			img, err := imagePart(b)
			if err != nil {
				return nil, err
			}
			parts = append(parts, img)
		case "tool_use":
			args := string(b.Input)
			if args == "" {
				args = "{}"
			}
			calls = append(calls, openai.ToolCall{ID: b.ID, Type: openai.ToolTypeFunction, Function: openai.FunctionCall{Name: b.Name, Arguments: args}})
		case "tool_result":
			content, images, err := toolResultToOpenAI(b)
			if err != nil {
				return nil, err
			}
			out = append(out, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleTool, ToolCallID: b.ToolUseID, Content: content})
			toolImages = append(toolImages, images...)
		case "thinking", "redacted_thinking":
			// Reasoning traces have no OpenAI request form; the upstream
			// model does not need its own past thinking.
		default:
			return nil, fmt.Errorf("content block type %q cannot be translated", b.Type)
		}
	}
	parts = append(toolImages, parts...)
	msg := openai.ChatCompletionMessage{Role: m.Role, ToolCalls: calls}
	onlyText := true
	for _, p := range parts {
		onlyText = onlyText && p.Type == openai.ChatMessagePartTypeText
	}
	if onlyText {
		var sb bytes.Buffer
		for i, p := range parts {
			if i > 0 {
				sb.WriteString("\n")
			}
			sb.WriteString(p.Text)
		}
		msg.Content = sb.String()
	} else {
		msg.MultiContent = parts
	}
	if msg.Content != "" || msg.MultiContent != nil || len(calls) > 0 {
		out = append(out, msg)
	}
	return out, nil
}

// completionTokens reports whether a request translated for model carries
// its limit as max_completion_tokens. Only auto trusts the name: the other
// values exist for names that do not show the model.
func (f MaxTokensField) completionTokens(model string) bool {
	switch f {
	case MaxTokensFieldMaxTokens:
		return false
	case MaxTokensFieldMaxCompletionTokens:
		return true
	}
	return refusesMaxTokens(model)
}

// refusesMaxTokens reports OpenAI's reasoning models (o1, o3, o4, GPT-5),
// which answer max_tokens with a 400 and take max_completion_tokens. Other
// OpenAI-compatible servers often know only max_tokens, so the rest keep it.
// model is the upstream's name, after any "provider/" prefix.
func refusesMaxTokens(model string) bool {
	name := strings.ToLower(model[strings.LastIndexByte(model, '/')+1:])
	for _, prefix := range []string{"o1", "o3", "o4", "gpt-5"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// withToolRules applies an OpenAI request's parallel_tool_calls: false to the Anthropic tool choice tc, and drops a
// "none" choice when no tool is sent, which Anthropic refuses.
func withToolRules(tc *anthropicToolChoice, parallel *bool, tools int) *anthropicToolChoice {
	if parallel != nil && !*parallel && tools > 0 {
		if tc == nil {
			tc = &anthropicToolChoice{Type: "auto"}
		}
		tc.DisableParallelToolUse = true
	}
	if tc != nil && tc.Type == "none" && tools == 0 {
		return nil
	}
	return tc
}

// anthropicURL accepts the base URL with or without its "/v1".
func anthropicURL(base string) string {
	if strings.HasSuffix(base, "/v1") {
		return base + "/messages"
	}
	return base + "/v1/messages"
}
