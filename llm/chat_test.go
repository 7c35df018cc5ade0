package llm

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

func chatReq(model, prompt string) openai.ChatCompletionRequest {
	return openai.ChatCompletionRequest{
		Model:               model,
		MaxCompletionTokens: 50,
		Messages:            []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: prompt}},
	}
}

func directClient(m *mock.LLMServer) *openai.Client {
	cfg := openai.DefaultConfig("unused")
	cfg.BaseURL = m.URL + "/v1"
	return openai.NewClientWithConfig(cfg)
}

func TestChatJSONMatchesUpstream(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	h := newHarness(t, oneModel("gpt-4o-mini", openaiDep(m, "gpt-4o-mini")))
	ctx := context.Background()
	req := chatReq("gpt-4o-mini", "hello there from the gateway test")

	want, err := directClient(m).CreateChatCompletion(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.client(keyAll).CreateChatCompletion(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got.Choices[0].Message.Content != want.Choices[0].Message.Content || got.Usage.PromptTokens != want.Usage.PromptTokens ||
		got.Usage.CompletionTokens != want.Usage.CompletionTokens {
		t.Fatalf("gateway reply differs from upstream:\n got %+v\nwant %+v", got, want)
	}
	// gpt-4o-mini list price: 0.15 / 0.60 USD per million tokens.
	wantCost := Price{Input: 150_000_000, Output: 600_000_000, CachedInput: 75_000_000}.Cost(Usage{
		Input: int64(want.Usage.PromptTokens), Output: int64(want.Usage.CompletionTokens)})
	if c := got.Header().Get("x-switchboard-cost-usd"); c != FormatUSD(wantCost) {
		t.Fatalf("x-switchboard-cost-usd = %q, want %q", c, FormatUSD(wantCost))
	}
	tp := got.Header().Get("traceparent")
	sc, ok := trace.ParseTraceparent(tp)
	if !ok {
		t.Fatalf("traceparent %q not valid", tp)
	}
	upstreamTP, ok := trace.ParseTraceparent(m.LastTraceparent())
	// Answered by its first attempt: the upstream's parent is the call span itself, and no attempt span is written.
	if !ok || upstreamTP != sc {
		t.Fatalf("upstream saw traceparent %q; want the call's %q", m.LastTraceparent(), tp)
	}
	call := h.waitSpans("chat gpt-4o-mini", 1)[0]
	if call.CostNanoUSD != wantCost || call.InputTokens != int64(want.Usage.PromptTokens) || call.KeyName != "all" || call.Provider != "openai" ||
		call.SpanID != sc.SpanID {
		t.Fatalf("call span = %+v", call)
	}
	if att := h.spansNamed("attempt " + call.Deployment); len(att) != 0 {
		t.Fatalf("a call answered by its first attempt wrote attempt spans: %+v", att)
	}
}

// collect reads a whole stream: the content, the chunks and the usage seen.
func collect(t *testing.T, s *openai.ChatCompletionStream) (content string, chunks int, usage *openai.Usage, err error) {
	t.Helper()
	defer s.Close()
	var sb strings.Builder
	for {
		c, rerr := s.Recv()
		if errors.Is(rerr, io.EOF) {
			return sb.String(), chunks, usage, nil
		}
		if rerr != nil {
			return sb.String(), chunks, usage, rerr
		}
		chunks++
		if c.Usage != nil {
			usage = c.Usage
		}
		for _, ch := range c.Choices {
			sb.WriteString(ch.Delta.Content)
		}
	}
}

func TestChatStreamMatchesUpstream(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	h := newHarness(t, oneModel("gpt-4o-mini", openaiDep(m, "gpt-4o-mini")))
	for _, includeUsage := range []bool{false, true} {
		t.Run(map[bool]string{false: "no usage asked", true: "usage asked"}[includeUsage], func(t *testing.T) {
			ctx := context.Background()
			req := chatReq("gpt-4o-mini", "stream me some words please")
			req.Stream = true
			if includeUsage {
				req.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
			}
			ds, err := directClient(m).CreateChatCompletionStream(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			wantContent, wantChunks, wantUsage, err := collect(t, ds)
			if err != nil {
				t.Fatal(err)
			}
			gs, err := h.client(keyAll).CreateChatCompletionStream(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			gotContent, gotChunks, gotUsage, err := collect(t, gs)
			if err != nil {
				t.Fatal(err)
			}
			if gotContent != wantContent || gotChunks != wantChunks {
				t.Fatalf("stream differs: got %d chunks %q, want %d chunks %q", gotChunks, gotContent, wantChunks, wantContent)
			}
			if includeUsage != (gotUsage != nil) || (gotUsage != nil && (gotUsage.PromptTokens != wantUsage.PromptTokens || gotUsage.CompletionTokens != wantUsage.CompletionTokens)) {
				t.Fatalf("usage: got %+v, want %+v (asked: %v)", gotUsage, wantUsage, includeUsage)
			}
		})
	}
	spans := h.waitSpans("chat gpt-4o-mini", 2)
	for _, s := range spans {
		if s.OutputTokens == 0 || s.CostNanoUSD == 0 || s.TTFT <= 0 || s.Status != trace.StatusOK {
			t.Fatalf("stream span lacks usage, cost or TTFT: %+v", s)
		}
	}
}

func TestEmbeddings(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	h := newHarness(t, oneModel("embed", openaiDep(m, "text-embedding-3-small")))
	ctx := context.Background()
	req := openai.EmbeddingRequest{Model: "embed", Input: []string{"one", "two words"}}
	got, err := h.client(keyAll).CreateEmbeddings(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	req.Model = "text-embedding-3-small"
	want, err := directClient(m).CreateEmbeddings(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Data) != 2 || len(got.Data[1].Embedding) != len(want.Data[1].Embedding) || got.Data[1].Embedding[0] != want.Data[1].Embedding[0] ||
		got.Usage.PromptTokens != want.Usage.PromptTokens {
		t.Fatalf("embeddings differ: got %+v, want %+v", got.Usage, want.Usage)
	}
	if s := h.waitSpans("embeddings embed", 1)[0]; s.InputTokens != int64(want.Usage.PromptTokens) {
		t.Fatalf("span = %+v", s)
	}
}

func TestModelsFilteredByACL(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	cfg := Config{Models: []ModelConfig{
		{Name: "gpt-4o-mini", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o-mini")}},
		{Name: "gpt-4o", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o")}},
	}}
	h := newHarness(t, cfg)
	for _, tc := range []struct {
		key  string
		want []string
	}{
		{keyAll, []string{"gpt-4o-mini", "gpt-4o"}},
		{keyMini, []string{"gpt-4o-mini"}},
	} {
		list, err := h.client(tc.key).ListModels(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range list.Models {
			got = append(got, m.ID)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Fatalf("models = %v, want %v", got, tc.want)
		}
	}
	_, err := h.client("sk-wrong").ListModels(context.Background())
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 401 {
		t.Fatalf("wrong key: err = %v, want 401", err)
	}
}

// GET /v1/models/{model} answers for a model the key may use, a name with
// a slash included, and 404 for any other, as the SDKs' retrieve expects.
func TestModelRetrieve(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	cfg := Config{Models: []ModelConfig{
		{Name: "gpt-4o-mini", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o-mini")}},
		{Name: "gpt-4o", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o")}},
		{Name: "org/with-slash", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o")}},
	}}
	h := newHarness(t, cfg)
	for _, tc := range []struct {
		key, model string
		status     int
	}{
		{keyAll, "gpt-4o", 200},
		{keyAll, "org/with-slash", 200},
		{keyMini, "gpt-4o-mini", 200},
		{keyMini, "gpt-4o", 404},
		{keyAll, "nope", 404},
		{"sk-wrong", "gpt-4o", 401},
	} {
		got, err := h.client(tc.key).GetModel(context.Background(), tc.model)
		var apiErr *openai.APIError
		switch {
		case tc.status == 200 && (err != nil || got.ID != tc.model || got.Object != "model"):
			t.Errorf("%s as %s: %+v, %v", tc.model, tc.key, got, err)
		case tc.status != 200 && (!errors.As(err, &apiErr) || apiErr.HTTPStatusCode != tc.status):
			t.Errorf("%s as %s: err %v, want %d", tc.model, tc.key, err, tc.status)
		}
	}
}

func TestIncomingTraceparentIsParent(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	h := newHarness(t, oneModel("gpt-4o-mini", openaiDep(m, "gpt-4o-mini")))
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	status, hdr, _, raw := h.post("/v1/chat/completions", keyAll, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, "traceparent", parent)
	if status != 200 {
		t.Fatalf("%d %s", status, raw)
	}
	got, ok := trace.ParseTraceparent(hdr.Get("traceparent"))
	want, _ := trace.ParseTraceparent(parent)
	if !ok || got.TraceID != want.TraceID || got.SpanID == want.SpanID {
		t.Fatalf("response traceparent %q does not continue %q", hdr.Get("traceparent"), parent)
	}
	if s := h.waitSpans("chat gpt-4o-mini", 1)[0]; s.ParentSpanID != want.SpanID || s.SpanID != got.SpanID {
		t.Fatalf("span parent %s, want %s", s.ParentSpanID, want.SpanID)
	}
}
