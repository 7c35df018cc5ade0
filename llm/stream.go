package llm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	openai "github.com/sashabaranov/go-openai"
)

// streamTranslator turns upstream SSE events into the client's dialect and
// learns the usage on the way.
type streamTranslator interface {
	// event appends to out what the client sees for one upstream event.
	event(ev, out []byte) ([]byte, error)
	// done reports that the terminal event was seen.
	done() bool
	usage() Usage
	// errorEvent tells the client that the stream broke after it started.
	errorEvent(ae *apiError) []byte
}

var errUpstreamStreamError = errors.New("upstream sent an error event")

// openAIStream relays an OpenAI-compatible stream unchanged, except for the
// usage the gateway asked for on the client's behalf.
type openAIStream struct {
	clientWantsUsage bool
	finished         bool
	u                Usage
}

var (
	doneData       = []byte("[DONE]")
	usageNullComma = [][]byte{[]byte(`,"usage":null`), []byte(`, "usage": null`), []byte(`"usage":null,`), []byte(`"usage": null, `)}
)

func (s *openAIStream) event(ev, out []byte) ([]byte, error) {
	_, data := sseData(ev)
	if data == nil {
		return append(out, ev...), nil
	}
	if bytes.Equal(data, doneData) {
		s.finished = true
		return append(out, ev...), nil
	}
	if bytes.HasPrefix(data, []byte(`{"error"`)) {
		return append(out, ev...), errUpstreamStreamError
	}
	if bytes.Contains(data, []byte(`"usage":{`)) || bytes.Contains(data, []byte(`"usage": {`)) {
		var chunk struct {
			Choices []json.RawMessage `json:"choices"`
			Usage   *openai.Usage     `json:"usage"`
		}
		if json.Unmarshal(data, &chunk) == nil && chunk.Usage != nil {
			s.u = usageFromOpenAI(chunk.Usage)
			if !s.clientWantsUsage && len(chunk.Choices) == 0 {
				return out, nil
			}
		}
	}
	if !s.clientWantsUsage {
		// With include_usage every chunk carries "usage":null; a client that
		// did not ask would not see that field from the provider.
		for _, pat := range usageNullComma {
			if i := bytes.Index(ev, pat); i >= 0 {
				out = append(out, ev[:i]...)
				return append(out, ev[i+len(pat):]...), nil
			}
		}
	}
	return append(out, ev...), nil
}

func (s *openAIStream) done() bool   { return s.finished }
func (s *openAIStream) usage() Usage { return s.u }

func (s *openAIStream) errorEvent(ae *apiError) []byte {
	return append(append([]byte("data: "), ae.openAIJSON()...), "\n\n"...)
}

func usageFromOpenAI(u *openai.Usage) Usage {
	out := Usage{Input: int64(u.PromptTokens), Output: int64(u.CompletionTokens)}
	if u.PromptTokensDetails != nil {
		out.Cached = int64(u.PromptTokensDetails.CachedTokens)
	}
	return out
}

// openAIUsageOf reads the usage of a non-streamed OpenAI reply (chat or
// embeddings). Only the top-level "usage" value is decoded: decoding the
// whole reply costs more than the rest of the proxying.
func openAIUsageOf(body []byte) (Usage, error) {
	raw := topLevelValue(body, "usage")
	if raw == nil || raw[0] == 'n' {
		return Usage{}, nil
	}
	var u openai.Usage
	if err := json.Unmarshal(raw, &u); err != nil {
		return Usage{}, err
	}
	return usageFromOpenAI(&u), nil
}

// topLevelValue finds the raw value of key in a JSON object without
// decoding it. The body comes from an upstream, so every step is bounded;
// a malformed body yields nil.
func topLevelValue(b []byte, key string) []byte {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil
	}
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] == '"' {
		keyEnd := skipString(b, i)
		k := b[i+1 : max(keyEnd-1, i+1)]
		i = skipSpace(b, keyEnd)
		if i >= len(b) || b[i] != ':' {
			return nil
		}
		i = skipSpace(b, i+1)
		if i >= len(b) {
			return nil
		}
		valEnd := skipValue(b, i)
		if string(k) == key {
			return b[i:valEnd]
		}
		i = skipSpace(b, valEnd)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return nil
}

// relay copies the rest of a stream to the client, flushing after every
// upstream read. It returns the first error: errClientGone when the client
// left, an upstream error otherwise (after telling the client with an error
// event), nil on a complete stream.
func relay(w *bufio.Writer, st *upstreamStream, first []byte) error {
	out := first
	var err error
	for {
		if len(out) > 0 {
			if _, werr := w.Write(out); werr != nil {
				st.close(errClientGone)
				return errClientGone
			}
			if werr := w.Flush(); werr != nil {
				st.close(errClientGone)
				return errClientGone
			}
		}
		if err != nil {
			break
		}
		out, err = st.pump(out[:0])
	}
	if errors.Is(err, io.EOF) {
		st.close(nil)
		return nil
	}
	st.close(err)
	ae := &apiError{status: http.StatusBadGateway, typ: "server_error", code: "upstream_error", message: "upstream stream failed: " + err.Error()}
	if errors.Is(err, errUpstreamStreamError) {
		// The upstream's own error event already reached the client.
		return err
	}
	_, _ = w.Write(st.tr.errorEvent(ae))
	_ = w.Flush()
	return err
}
