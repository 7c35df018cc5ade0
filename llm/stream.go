package llm

import (
	"bufio"
	"bytes"
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
	// partialOutput estimates the output tokens relayed so far, for a
	// stream whose usage never came (see streamUsage).
	partialOutput() int64
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
	chunks           int64 // relayed, each about one token
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
		if raw := topLevelValue(data, "usage"); raw != nil && raw[0] == '{' {
			if u, err := chatUsage.read(raw); err == nil {
				s.u = u
				if !s.clientWantsUsage && noChoices(topLevelValue(data, "choices")) {
					return out, nil
				}
			}
		}
	}
	s.chunks++
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

func (s *openAIStream) done() bool           { return s.finished }
func (s *openAIStream) usage() Usage         { return s.u }
func (s *openAIStream) partialOutput() int64 { return s.chunks }

// streamUsage is what a stream is billed: the usage its upstream reported.
// A stream that ended without it, cut by the client or the upstream or
// from a server that ignores include_usage, still cost tokens: it is
// billed at least the prompt as estimated for the hold and the output its
// relayed events hold, and estimated says so.
func streamUsage(tr streamTranslator, estimatedInput int64) (u Usage, estimated bool) {
	u = tr.usage()
	if tr.done() && u.Total() > 0 {
		return u, false
	}
	u.Input = max(u.Input, estimatedInput)
	u.Output = max(u.Output, tr.partialOutput())
	return u, true
}

// tokensOfText estimates the tokens of n bytes of text, about four bytes
// each, as OpenAI's own rule of thumb has it.
func tokensOfText(n int) int64 { return int64(n+3) / 4 }

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

// usageNames are where an API's usage object keeps its three counts.
type usageNames struct{ input, output, details string }

var (
	chatUsage      = usageNames{"prompt_tokens", "completion_tokens", "prompt_tokens_details"}
	responsesUsage = usageNames{"input_tokens", "output_tokens", "input_tokens_details"}
)

// openAIUsageOf reads the usage of a non-streamed OpenAI reply (chat or
// embeddings).
func openAIUsageOf(body []byte) (Usage, error) { return usageOfReply(body, chatUsage) }

// usageOfReply picks the three counts out of a reply's top-level "usage"
// value without decoding: encoding/json on the usage object alone was the
// largest CPU and allocation cost of a proxied call after the syscalls.
func usageOfReply(body []byte, names usageNames) (Usage, error) {
	// The reply is relayed as it is: a 200 that is not a JSON object (a proxy's HTML page) must fail here, or the
	// client would get it as a success that bills nothing.
	if i := skipSpace(body, 0); i >= len(body) || body[i] != '{' {
		return Usage{}, errNotObject
	}
	raw := topLevelValue(body, "usage")
	if raw == nil || raw[0] == 'n' {
		return Usage{}, nil
	}
	return names.read(raw)
}

// read reads a usage object with these names, raw[0] being '{'.
func (n usageNames) read(raw []byte) (Usage, error) {
	if raw[0] != '{' {
		return Usage{}, errUsageShape
	}
	var u Usage
	var err error
	if u.Input, err = intMember(raw, n.input); err != nil {
		return Usage{}, err
	}
	if u.Output, err = intMember(raw, n.output); err != nil {
		return Usage{}, err
	}
	if details := topLevelValue(raw, n.details); details != nil && details[0] == '{' {
		if u.Cached, err = intMember(details, "cached_tokens"); err != nil {
			return Usage{}, err
		}
	}
	return u, nil
}

// noChoices reports whether a chunk's raw "choices" value holds no choice:
// absent, null or an empty array.
func noChoices(raw []byte) bool {
	if raw == nil || string(raw) == "null" {
		return true
	}
	i := skipSpace(raw, 1)
	return raw[0] == '[' && i < len(raw) && raw[i] == ']'
}

var (
	errUsageShape = errors.New(`"usage" holds a malformed token count`)
	errNotObject  = errors.New("the reply is not a JSON object")
)

// intMember is obj's integer member key; absent or null is 0.
func intMember(obj []byte, key string) (int64, error) {
	v := topLevelValue(obj, key)
	if v == nil || string(v) == "null" {
		return 0, nil
	}
	// A token count is never negative: one that is would refund tokens to the
	// key's limits, so it is as malformed as a string.
	if len(v) == 0 || len(v) > 18 {
		return 0, errUsageShape
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, errUsageShape
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
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
		if valEnd == i { // a key without a value: callers index raw[0]
			return nil
		}
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
	if errors.Is(err, errUpstreamStreamError) || errors.Is(err, errClientGone) {
		// The upstream's own error event already reached the client, or there is no client to tell.
		return err
	}
	ae := &apiError{status: http.StatusBadGateway, typ: "server_error", code: "upstream_error", message: "upstream stream failed: " + streamFailure(err)}
	if errors.Is(err, errStreamDuration) {
		ae = errDurationExceeded()
	}
	if ee := (*endedError)(nil); errors.As(err, &ee) {
		ae = ee.apiError()
	}
	_, _ = w.Write(st.tr.errorEvent(ae))
	_ = w.Flush()
	return err
}

// errDurationExceeded is what the client sees of a stream the gateway ended at server.max_stream_duration: a
// timeout of the gateway's making, so 504 and a code of its own rather than upstream_error.
func errDurationExceeded() *apiError {
	return &apiError{status: http.StatusGatewayTimeout, typ: "server_error", code: "stream_duration_exceeded",
		message: errStreamDuration.Error()}
}

// streamFailure is what a client is told of a stream that failed: the gateway's own reasons as they are, and
// a connection error only as such, as its text names the upstream's address (the span and log keep it).
func streamFailure(err error) string {
	if errors.Is(err, errUnreadableEvent) {
		return err.Error()
	}
	for _, own := range []error{errStreamIdle, errStreamTruncated, errEventTooLarge} {
		if errors.Is(err, own) {
			return own.Error()
		}
	}
	return "the connection to the upstream failed"
}
