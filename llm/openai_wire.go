package llm

import (
	openai "github.com/sashabaranov/go-openai"
)

// go-openai's response structs carry Azure's content_filter_results as a struct value, which encoding/json
// never omits; a translated reply would then show Azure fields that no OpenAI or Anthropic upstream sent. These
// are the OpenAI wire shapes of what the gateway writes itself, built from go-openai's field types.

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   openai.Usage `json:"usage"`
}

type chatChoice struct {
	Index   int         `json:"index"`
	Message chatMessage `json:"message"`
	// Logprobs is null: no translated reply has them.
	Logprobs     *struct{}           `json:"logprobs"`
	FinishReason openai.FinishReason `json:"finish_reason"`
}

// chatMessage writes content and refusal even when they are null, as
// OpenAI does (go-openai omits an empty content).
type chatMessage struct {
	Role      string            `json:"role"`
	Content   *string           `json:"content"`
	Refusal   *string           `json:"refusal"`
	ToolCalls []openai.ToolCall `json:"tool_calls,omitempty"`
}

type chatChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"`
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []chatChunkChoice `json:"choices"`
	Usage   *openai.Usage     `json:"usage,omitempty"`
}

type chatChunkChoice struct {
	Index    int        `json:"index"`
	Delta    chunkDelta `json:"delta"`
	Logprobs *struct{}  `json:"logprobs"`
	// FinishReason is null until the last chunk, as OpenAI sends it.
	FinishReason *openai.FinishReason `json:"finish_reason"`
}

type chunkDelta struct {
	Role      string          `json:"role,omitempty"`
	Content   string          `json:"content,omitempty"`
	ToolCalls []chunkToolCall `json:"tool_calls,omitempty"`
}

// chunkToolCall leaves out the id, type and name that only a call's first
// chunk carries; go-openai's ToolCall would write "type":"" in the others,
// which strict clients (the Vercel AI SDK) refuse.
type chunkToolCall struct {
	Index    int               `json:"index"`
	ID       string            `json:"id,omitempty"`
	Type     openai.ToolType   `json:"type,omitempty"`
	Function chunkToolFunction `json:"function"`
}

type chunkToolFunction struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments,omitempty"`
}
