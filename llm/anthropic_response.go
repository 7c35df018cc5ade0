package llm

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

type anthropicResponse struct {
	ID           string           `json:"id"`
	Type         string           `json:"type"`
	Role         string           `json:"role"`
	Model        string           `json:"model"`
	Content      anthropicContent `json:"content"`
	StopReason   *string          `json:"stop_reason"`
	StopSequence *string          `json:"stop_sequence"`
	Usage        anthropicUsage   `json:"usage"`
}

var stopToFinish = map[string]openai.FinishReason{
	"end_turn":      openai.FinishReasonStop,
	"stop_sequence": openai.FinishReasonStop,
	"pause_turn":    openai.FinishReasonStop,
	"max_tokens":    openai.FinishReasonLength,
	"tool_use":      openai.FinishReasonToolCalls,
	"refusal":       openai.FinishReasonContentFilter,
}

var finishToStop = map[openai.FinishReason]string{
	openai.FinishReasonStop:          "end_turn",
	openai.FinishReasonLength:        "max_tokens",
	openai.FinishReasonToolCalls:     "tool_use",
	openai.FinishReasonFunctionCall:  "tool_use",
	openai.FinishReasonContentFilter: "refusal",
}

func openAIUsageFrom(u Usage) openai.Usage {
	out := openai.Usage{PromptTokens: int(u.Input), CompletionTokens: int(u.Output), TotalTokens: int(u.Input + u.Output)}
	out.PromptTokensDetails = &openai.PromptTokensDetails{CachedTokens: int(u.Cached)}
	return out
}

// readAnthropicReply decodes a non-streamed Anthropic reply and its usage, for a translation to another dialect.
func readAnthropicReply(raw []byte) (anthropicResponse, Usage, error) {
	var in anthropicResponse
	if err := json.Unmarshal(raw, &in); err != nil {
		return in, Usage{}, err
	}
	u, err := in.Usage.counts()
	return in, u, err
}

// anthropicToChatResponse turns an Anthropic reply into an OpenAI chat
// completion.
func anthropicToChatResponse(raw []byte) ([]byte, Usage, error) {
	in, u, err := readAnthropicReply(raw)
	if err != nil {
		return nil, Usage{}, err
	}
	msg := chatMessage{Role: openai.ChatMessageRoleAssistant}
	var text strings.Builder
	for _, b := range in.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			args := string(b.Input)
			if args == "" {
				args = "{}"
			}
			msg.ToolCalls = append(msg.ToolCalls, openai.ToolCall{ID: b.ID, Type: openai.ToolTypeFunction,
				Function: openai.FunctionCall{Name: b.Name, Arguments: args}})
		}
	}
	// A reply that only calls tools has null content, as OpenAI's does.
	if content := text.String(); content != "" || len(msg.ToolCalls) == 0 {
		msg.Content = &content
	}
	finish := openai.FinishReasonStop
	if in.StopReason != nil {
		if f, ok := stopToFinish[*in.StopReason]; ok {
			finish = f
		}
	}
	out := chatCompletion{
		ID: in.ID, Object: "chat.completion", Created: time.Now().Unix(), Model: in.Model,
		Choices: []chatChoice{{Index: 0, Message: msg, FinishReason: finish}},
		Usage:   openAIUsageFrom(u),
	}
	b, err := json.Marshal(out)
	return b, u, err
}

// chatToAnthropicResponse turns an OpenAI chat completion into an Anthropic
// message.
func chatToAnthropicResponse(raw []byte) ([]byte, Usage, error) {
	var in openai.ChatCompletionResponse
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, Usage{}, err
	}
	u, err := usageFromOpenAI(&in.Usage).check()
	if err != nil {
		return nil, Usage{}, err
	}
	out := anthropicResponse{ID: anthropicMessageID(in.ID), Type: "message", Role: "assistant", Model: in.Model,
		Content: anthropicContent{}, Usage: anthropicUsageFrom(u)}
	stop := "end_turn"
	if len(in.Choices) > 0 {
		ch := in.Choices[0]
		if ch.Message.Content != "" {
			out.Content = append(out.Content, anthropicBlock{Type: "text", Text: ch.Message.Content})
		}
		for _, tc := range ch.Message.ToolCalls {
			input := json.RawMessage(tc.Function.Arguments)
			if !json.Valid(input) {
				input = json.RawMessage("{}")
			}
			out.Content = append(out.Content, anthropicBlock{Type: "tool_use", ID: tc.ID, Name: tc.Function.Name, Input: input})
		}
		if s, ok := finishToStop[ch.FinishReason]; ok {
			stop = s
		}
		// Some servers end a reply that calls tools with "stop"; Anthropic
		// clients loop on tool_use.
		if stop == "end_turn" && len(ch.Message.ToolCalls) > 0 {
			stop = "tool_use"
		}
	}
	out.StopReason = &stop
	b, err := json.Marshal(out)
	return b, u, err
}

func anthropicUsageFrom(u Usage) anthropicUsage {
	return anthropicUsage{InputTokens: u.Input - u.Cached, OutputTokens: u.Output, CacheReadInputTokens: u.Cached}
}

// anthropicMessageID is the reply's id in Anthropic's form; a reply
// without one (Azure streams can have none) gets a random one.
func anthropicMessageID(id string) string {
	if strings.HasPrefix(id, "msg_") {
		return id
	}
	if id = strings.TrimPrefix(id, "chatcmpl-"); id == "" {
		return fmt.Sprintf("msg_%016x%016x", rand.Uint64(), rand.Uint64())
	}
	return "msg_" + id
}
