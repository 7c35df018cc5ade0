package mock

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

const testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// headerTransport adds fixed headers, the way a test injects failures.
type headerTransport map[string]string

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func startLLM(t *testing.T, opts LLMOptions) *LLMServer {
	t.Helper()
	s, err := StartLLM("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func openAIClient(s *LLMServer, key string, headers map[string]string) *openai.Client {
	cfg := openai.DefaultConfig(key)
	cfg.BaseURL = s.URL + "/v1"
	cfg.HTTPClient = &http.Client{Transport: headerTransport(headers), Timeout: 10 * time.Second}
	return openai.NewClientWithConfig(cfg)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestChatCompletionEchoesLastMessage(t *testing.T) {
	t.Parallel()
	s := startLLM(t, LLMOptions{})
	c := openAIClient(s, "k", map[string]string{"traceparent": testTraceparent})
	tests := []struct {
		name       string
		maxTokens  int
		wantText   string
		wantFinish openai.FinishReason
		wantOut    int
	}{
		{"whole echo", 0, "hello there mock model", openai.FinishReasonStop, 4},
		{"max_tokens truncates", 2, "hello there", openai.FinishReasonLength, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.CreateChatCompletion(testCtx(t), openai.ChatCompletionRequest{
				Model:               "gpt-4o-mini",
				MaxCompletionTokens: tt.maxTokens,
				Messages: []openai.ChatCompletionMessage{
					{Role: "system", Content: "be brief"},
					{Role: "user", Content: "hello  there mock\nmodel"},
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			ch := resp.Choices[0]
			if ch.Message.Content != tt.wantText || ch.FinishReason != tt.wantFinish {
				t.Fatalf("got %q/%s, want %q/%s", ch.Message.Content, ch.FinishReason, tt.wantText, tt.wantFinish)
			}
			if resp.Usage.PromptTokens != 6 || resp.Usage.CompletionTokens != tt.wantOut || resp.Usage.TotalTokens != 6+tt.wantOut {
				t.Fatalf("usage %+v", resp.Usage)
			}
			if resp.Model != "gpt-4o-mini" {
				t.Fatalf("model %q", resp.Model)
			}
			if got := resp.Header().Get(HeaderTraceparent); got != testTraceparent {
				t.Fatalf("echoed traceparent %q", got)
			}
		})
	}
	if s.LastTraceparent() != testTraceparent {
		t.Fatalf("LastTraceparent %q", s.LastTraceparent())
	}
	if s.Requests() != 2 {
		t.Fatalf("Requests %d", s.Requests())
	}
	if last := s.LastRequest(); last.Path != "/v1/chat/completions" || !strings.Contains(string(last.Body), `"max_completion_tokens":2`) {
		t.Fatalf("LastRequest %s %s", last.Path, last.Body)
	}
}

func TestChatStreamUsageOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	s := startLLM(t, LLMOptions{TokensPerSecond: 10000})
	c := openAIClient(s, "k", nil)
	for _, includeUsage := range []bool{false, true} {
		req := openai.ChatCompletionRequest{
			Model:    "gpt-4o",
			Stream:   true,
			Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "one two three"}},
		}
		if includeUsage {
			req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
		}
		stream, err := c.CreateChatCompletionStream(testCtx(t), req)
		if err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		var usage *openai.Usage
		var finish openai.FinishReason
		chunks := 0
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			chunks++
			if resp.Usage != nil {
				if len(resp.Choices) != 0 {
					t.Fatalf("usage chunk carries choices: %+v", resp.Choices)
				}
				usage = resp.Usage
				continue
			}
			text.WriteString(resp.Choices[0].Delta.Content)
			if resp.Choices[0].FinishReason != "" {
				finish = resp.Choices[0].FinishReason
			}
		}
		_ = stream.Close()
		if text.String() != "one two three" || finish != openai.FinishReasonStop {
			t.Fatalf("usage=%v: text %q finish %q", includeUsage, text.String(), finish)
		}
		if includeUsage != (usage != nil) {
			t.Fatalf("include_usage=%v but usage chunk %v", includeUsage, usage)
		}
		if usage != nil && (usage.PromptTokens != 3 || usage.CompletionTokens != 3) {
			t.Fatalf("usage %+v", usage)
		}
		// role chunk + 3 words + finish chunk (+ usage chunk)
		if want := 5 + map[bool]int{true: 1}[includeUsage]; chunks != want {
			t.Fatalf("chunks %d, want %d", chunks, want)
		}
	}
}

func TestChatToolCalls(t *testing.T) {
	t.Parallel()
	s := startLLM(t, LLMOptions{})
	c := openAIClient(s, "k", nil)
	tools := []openai.Tool{
		{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: "other", Parameters: map[string]any{"type": "object"}}},
		{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: "get_forecast", Parameters: map[string]any{
			"type":       "object",
			"properties": map[string]any{"city": map[string]any{"type": "string"}, "days": map[string]any{"type": "integer"}},
		}}},
	}
	msgs := []openai.ChatCompletionMessage{{Role: "user", Content: "please call tool get_forecast"}}
	const wantArgs = `{"city":"mock","days":1}`

	resp, err := c.CreateChatCompletion(testCtx(t), openai.ChatCompletionRequest{Model: "gpt-4o", Messages: msgs, Tools: tools})
	if err != nil {
		t.Fatal(err)
	}
	ch := resp.Choices[0]
	if ch.FinishReason != openai.FinishReasonToolCalls || len(ch.Message.ToolCalls) != 1 {
		t.Fatalf("choice %+v", ch)
	}
	if tc := ch.Message.ToolCalls[0]; tc.Function.Name != "get_forecast" || tc.Function.Arguments != wantArgs || tc.ID == "" {
		t.Fatalf("tool call %+v", tc)
	}

	stream, err := c.CreateChatCompletionStream(testCtx(t), openai.ChatCompletionRequest{Model: "gpt-4o", Messages: msgs, Tools: tools, Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var name, args, id string
	var finish openai.FinishReason
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range r.Choices[0].Delta.ToolCalls {
			name += tc.Function.Name
			args += tc.Function.Arguments
			id += tc.ID
		}
		if r.Choices[0].FinishReason != "" {
			finish = r.Choices[0].FinishReason
		}
	}
	if name != "get_forecast" || args != wantArgs || id == "" || finish != openai.FinishReasonToolCalls {
		t.Fatalf("streamed tool call %q %q %q %q", name, args, id, finish)
	}
}

func TestEmbeddingsFloatAndBase64Agree(t *testing.T) {
	t.Parallel()
	s := startLLM(t, LLMOptions{})
	c := openAIClient(s, "k", nil)
	get := func(format openai.EmbeddingEncodingFormat) openai.EmbeddingResponse {
		resp, err := c.CreateEmbeddings(testCtx(t), openai.EmbeddingRequestStrings{
			Input:          []string{"alpha beta", "gamma"},
			Model:          openai.SmallEmbedding3,
			EncodingFormat: format,
			Dimensions:     16,
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	f, b := get(openai.EmbeddingEncodingFormatFloat), get(openai.EmbeddingEncodingFormatBase64)
	if len(f.Data) != 2 || len(f.Data[0].Embedding) != 16 || f.Usage.PromptTokens != 3 {
		t.Fatalf("float response %d items, usage %+v", len(f.Data), f.Usage)
	}
	for i := range f.Data {
		for j, v := range f.Data[i].Embedding {
			if b.Data[i].Embedding[j] != v {
				t.Fatalf("item %d dim %d: float %v base64 %v", i, j, v, b.Data[i].Embedding[j])
			}
		}
	}
	if f.Data[0].Embedding[0] == f.Data[1].Embedding[0] {
		t.Fatal("different inputs embedded equally")
	}
}

func TestModelsList(t *testing.T) {
	t.Parallel()
	s := startLLM(t, LLMOptions{Models: []string{"a", "b"}})
	c := openAIClient(s, "k", nil)
	list, err := c.ListModels(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Models) != 2 || list.Models[0].ID != "a" || list.Models[1].ID != "b" {
		t.Fatalf("models %+v", list.Models)
	}
	if _, err := c.GetModel(testCtx(t), "missing"); err == nil {
		t.Fatal("unknown model found")
	}
}

func TestErrorInjection(t *testing.T) {
	t.Parallel()
	s := startLLM(t, LLMOptions{APIKey: "sk-right", Fail: map[string]int{"broken": 503}})
	long := strings.Repeat("x", 300)
	tests := []struct {
		name       string
		key        string
		headers    map[string]string
		model      string
		content    string
		wantStatus int
		wantCode   string
	}{
		{"wrong key", "sk-wrong", nil, "gpt-4o", "hi", 401, "invalid_api_key"},
		{"fail by model", "sk-right", nil, "broken", "hi", 503, "service_unavailable"},
		{"fail by header", "sk-right", map[string]string{HeaderFail: "429"}, "gpt-4o", "hi", 429, "rate_limit_exceeded"},
		{"context limit", "sk-right", nil, "context-limit-200", long, 400, "context_length_exceeded"},
		{"under context limit", "sk-right", nil, "context-limit-200", "short", 0, ""},
		{"bad header", "sk-right", map[string]string{HeaderLatency: "soon"}, "gpt-4o", "hi", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := openAIClient(s, tt.key, tt.headers)
			_, err := c.CreateChatCompletion(testCtx(t), openai.ChatCompletionRequest{
				Model:    tt.model,
				Messages: []openai.ChatCompletionMessage{{Role: "user", Content: tt.content}},
			})
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var apiErr *openai.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("want API error, got %v", err)
			}
			code, _ := apiErr.Code.(string)
			if apiErr.HTTPStatusCode != tt.wantStatus || code != tt.wantCode || apiErr.Message == "" || apiErr.Type == "" {
				t.Fatalf("got %d %q %+v", apiErr.HTTPStatusCode, code, apiErr)
			}
			if strings.Contains(apiErr.Message, tt.key) {
				t.Fatal("error message leaks the API key")
			}
		})
	}
}

func TestStreamFailAfterDropsConnection(t *testing.T) {
	t.Parallel()
	s := startLLM(t, LLMOptions{})
	c := openAIClient(s, "k", map[string]string{HeaderFailAfter: "2"})
	stream, err := c.CreateChatCompletionStream(testCtx(t), openai.ChatCompletionRequest{
		Model:    "gpt-4o",
		Stream:   true,
		Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "a b c d e f"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	got := 0
	for {
		_, err := stream.Recv()
		if err == nil {
			got++
			continue
		}
		if errors.Is(err, io.EOF) {
			t.Fatalf("stream ended cleanly after %d chunks; want a broken connection", got)
		}
		break
	}
	if got != 2 {
		t.Fatalf("received %d chunks before the break, want 2", got)
	}
}

func TestLatencyHeaderAndClose(t *testing.T) {
	t.Parallel()
	s, err := StartLLM("127.0.0.1:0", LLMOptions{TokensPerSecond: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := openAIClient(s, "k", map[string]string{HeaderLatency: "1ms"})
	stream, err := c.CreateChatCompletionStream(testCtx(t), openai.ChatCompletionRequest{
		Model: "gpt-4o", Stream: true,
		Messages: []openai.ChatCompletionMessage{{Role: "user", Content: strings.Repeat("word ", 50)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	// A paced 50-token stream at 1 token/s must not hold Close for 50s.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}
