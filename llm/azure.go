package llm

import (
	"net/url"
	"strings"
)

// azureURLs builds Azure OpenAI's per-deployment endpoints. base is the
// resource URL ("https://x.openai.azure.com"), with or without "/openai".
func azureURLs(base, deployment, apiVersion string) (chat, embeddings string) {
	base = strings.TrimSuffix(base, "/openai")
	prefix := base + "/openai/deployments/" + url.PathEscape(deployment)
	q := "?api-version=" + url.QueryEscape(apiVersion)
	return prefix + "/chat/completions" + q, prefix + "/embeddings" + q
}

// azureResponsesURL is Azure OpenAI's Responses API. It has no per-deployment path: it lives only on the v1 API,
// which takes no api-version and reads the deployment from the body's "model", as upstreamModel already is.
func azureResponsesURL(base string) string {
	return strings.TrimSuffix(base, "/openai") + "/openai/v1/responses"
}
