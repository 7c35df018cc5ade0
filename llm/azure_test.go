package llm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAzureURLs(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"https://x.openai.azure.com", "https://x.openai.azure.com/openai"} {
		chat, emb := azureURLs(base, "my dep", "2024-10-21")
		if chat != "https://x.openai.azure.com/openai/deployments/my%20dep/chat/completions?api-version=2024-10-21" ||
			emb != "https://x.openai.azure.com/openai/deployments/my%20dep/embeddings?api-version=2024-10-21" {
			t.Fatalf("urls for %q: %s %s", base, chat, emb)
		}
	}
}

func TestAzureDeployment(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/openai/deployments/prod-mini/chat/completions" || r.URL.Query().Get("api-version") != "2024-10-21" ||
			r.Header.Get("api-key") != "azure-secret" || r.Header.Get("Authorization") != "" {
			http.Error(w, `{"error":{"message":"bad request shape","type":"invalid_request_error"}}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"a","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"from azure"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}`)
	}))
	t.Cleanup(srv.Close)
	h := newHarness(t, oneModel("m", DeploymentConfig{Provider: ProviderAzure, BaseURL: srv.URL, Deployment: "prod-mini",
		APIVersion: "2024-10-21", APIKey: "azure-secret"}))
	if r := mustChat(t, h, "m", "hi"); r.Choices[0].Message.Content != "from azure" {
		t.Fatalf("reply = %+v", r)
	}
}

// Azure serves the Responses API only on its v1 API: no deployment in the path, no api-version, the deployment's
// name as "model".
func TestAzureResponses(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/openai/v1/responses" || r.URL.RawQuery != "" || r.Header.Get("api-key") != "azure-secret" ||
			!strings.Contains(string(body), `"model":"prod-mini"`) {
			http.Error(w, `{"error":{"message":"bad request shape","type":"invalid_request_error"}}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"resp_az","object":"response","status":"completed","model":"gpt-4o-mini","output":[{"type":"message","id":"m","status":"completed","role":"assistant","content":[{"type":"output_text","text":"from azure","annotations":[]}]}],"usage":{"input_tokens":2,"output_tokens":2,"total_tokens":4}}`)
	}))
	t.Cleanup(srv.Close)
	for _, base := range []string{srv.URL, srv.URL + "/openai"} {
		h := newHarness(t, oneModel("m", DeploymentConfig{Provider: ProviderAzure, BaseURL: base, Deployment: "prod-mini",
			APIVersion: "2024-10-21", APIKey: "azure-secret"}))
		r, err := h.responsesClient(keyAll).Responses.New(context.Background(), respParams("m", "hi"))
		if err != nil || r.OutputText() != "from azure" {
			t.Fatalf("base %s: %v %+v", base, err, r)
		}
	}
}
