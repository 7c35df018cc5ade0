package llm

import (
	"bytes"
	"encoding/json"
	"errors"
)

// The client speaks OpenAI (chat, embeddings, responses) or Anthropic
// (messages); the deployment speaks OpenAI (openai, azure) or Anthropic. Same
// dialect means raw bytes with the model field rewritten; different dialects
// translate.
// These four functions are the only place that decides which.

func sameDialect(k callKind, p Provider) bool {
	return (k == kindMessages) == (p == ProviderAnthropic)
}

// upstreamFor returns the URL and body for d. A body in the client's dialect
// is built in buf's memory.
func upstreamFor(c *call, d *deployment, buf []byte) (string, []byte, *apiError) {
	switch {
	case c.kind == kindEmbeddings && d.embeddingsURL == "":
		return "", nil, errBadRequest("invalid_request", "model %q does not serve embeddings", c.req.model)
	case c.kind == kindEmbeddings:
		return d.embeddingsURL, c.req.upstreamBody(buf, d.quotedModel, false), nil
	case c.kind == kindResponses && d.provider == ProviderAnthropic:
		body, err := responsesToAnthropic(c.req.body, d.upstreamModel)
		if err != nil {
			return "", nil, errBadRequest("invalid_request", "%v", err)
		}
		return d.chatURL, body, nil
	case c.kind == kindResponses:
		// openai and azure speak the Responses API: the client's bytes, model rewritten.
		return d.responsesURL, c.req.upstreamBody(buf, d.quotedModel, false), nil
	case c.kind == kindCountTokens:
		// Only Anthropic deployments count tokens, in the client's own dialect.
		return d.countTokensURL, c.req.upstreamBody(buf, d.quotedModel, false), nil
	case sameDialect(c.kind, d.provider):
		return d.chatURL, c.req.upstreamBody(buf, d.quotedModel, d.provider != ProviderAnthropic), nil
	case d.provider == ProviderAnthropic:
		body, err := chatToAnthropic(c.req.body, d.upstreamModel)
		if err != nil {
			return "", nil, errBadRequest("invalid_request", "%v", err)
		}
		return d.chatURL, body, nil
	default:
		body, err := anthropicToChat(c.req.body, d.upstreamModel, d.completionTokens)
		if err != nil {
			return "", nil, errBadRequest("invalid_request", "%v", err)
		}
		return d.chatURL, body, nil
	}
}

// upstreamHeaders carries d's credentials in its provider's header.
func upstreamHeaders(c *call, d *deployment) [][2]string {
	if c.kind.anthropicIngress() && d.provider == ProviderAnthropic && len(c.headers) > 0 {
		return append(credentialHeaders(c.kind, c.headers, d), d.headers...)
	}
	return d.sendHeaders
}

// credentialHeaders are d's credentials; clientHeaders (Anthropic version and
// beta) count only on Anthropic ingress.
func credentialHeaders(kind callKind, clientHeaders [][2]string, d *deployment) [][2]string {
	switch d.provider {
	case ProviderAzure:
		return [][2]string{{"api-key", d.apiKey}}
	case ProviderAnthropic:
		h := [][2]string{{"x-api-key", d.apiKey}, {"anthropic-version", defaultAnthropicVer}}
		if kind.anthropicIngress() {
			for _, ch := range clientHeaders {
				if ch[0] == "anthropic-version" {
					h[1] = ch
				} else {
					h = append(h, ch)
				}
			}
		}
		return h
	}
	if d.apiKey == "" {
		return nil
	}
	return [][2]string{{"Authorization", "Bearer " + d.apiKey}}
}

// pins learns, from a Responses stream, which deployment stored the response.
func streamTranslatorFor(c *call, d *deployment, pins *responsePins) streamTranslator {
	switch {
	case c.kind == kindResponses && d.provider == ProviderAnthropic:
		return newAnthropicToResponsesStream(pins, d, pinOwner(c.span.Team, c.span.KeyID), c.req.body)
	case c.kind == kindResponses:
		return &responsesStream{pins: pins, d: d, owner: pinOwner(c.span.Team, c.span.KeyID)}
	case c.kind != kindMessages && d.provider != ProviderAnthropic:
		return &openAIStream{clientWantsUsage: c.req.includeUsage}
	case c.kind == kindMessages && d.provider == ProviderAnthropic:
		return &anthropicStream{}
	case d.provider == ProviderAnthropic:
		return newAnthropicToChatStream(c.req.includeUsage)
	}
	return newChatToAnthropicStream()
}

// responseFor converts a non-streamed upstream reply for the client and
// reads its usage. raw belongs to the upstream response: copy before keeping.
func responseFor(c *call, d *deployment, raw []byte) ([]byte, Usage, error) {
	switch {
	case c.kind == kindResponses && d.provider == ProviderAnthropic:
		return anthropicToResponsesResponse(raw, c.req.body)
	case c.kind == kindResponses:
		u, err := usageOfReply(raw, responsesUsage)
		return bytes.Clone(raw), u, err
	case c.kind == kindCountTokens:
		// Counting is free: the reply is relayed and the call uses no tokens.
		if !validJSON(raw) {
			return nil, Usage{}, errors.New("upstream reply is not JSON")
		}
		return bytes.Clone(raw), Usage{}, nil
	case sameDialect(c.kind, d.provider) && d.provider == ProviderAnthropic:
		u, err := anthropicUsageOf(raw)
		return bytes.Clone(raw), u, err
	case sameDialect(c.kind, d.provider):
		u, err := openAIUsageOf(raw)
		return bytes.Clone(raw), u, err
	case d.provider == ProviderAnthropic:
		return anthropicToChatResponse(raw)
	}
	return chatToAnthropicResponse(raw)
}

// anthropicUsageOf reads the usage of a non-streamed Anthropic reply.
func anthropicUsageOf(raw []byte) (Usage, error) {
	var r struct {
		Usage anthropicUsage `json:"usage"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return Usage{}, err
	}
	return r.Usage.counts()
}
