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
