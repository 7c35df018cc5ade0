package llm

import (
	"fmt"
	"net/http"
	"net/http/httptest"
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
