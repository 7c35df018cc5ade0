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
	Index        int                          `json:"index"`
	Message      openai.ChatCompletionMessage `json:"message"`
	FinishReason openai.FinishReason          `json:"finish_reason"`
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
	Index int                                    `json:"index"`
	Delta openai.ChatCompletionStreamChoiceDelta `json:"delta"`
	// FinishReason is null until the last chunk, as OpenAI sends it.
	FinishReason *openai.FinishReason `json:"finish_reason"`
}
