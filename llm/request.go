package llm

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// span is a byte range [start, end) of a JSON value inside a request body.
type span struct{ start, end int }

func (s span) present() bool { return s.end > s.start }

// request is what the gateway reads from a client body: only the fields it
// routes, prices or edits on. Everything else stays bytes. One is allocated
// per call, so it stays within 128 bytes, an allocator size class: the bools
// share a word, and what the body gives on demand is not stored.
type request struct {
	body         []byte
	model        string
	modelAt      span
	streamAt     span
	streamOptsAt span
	stream       bool
	includeUsage bool // the client asked for the usage chunk itself
	// providerStore: a Responses call asks its provider to keep the conversation ("store": true, a
	// "conversation"), which only a deployment that speaks the API natively can.
	providerStore bool
	maxTokens     int64
	choices       int64 // n: how many completions the upstream generates, each up to maxTokens
	// previousID is a Responses call's previous_response_id: only the deployment that stored it knows it.
	previousID string
	// translation is what untranslatable found, once asked.
	translation        error
	translationChecked bool
}

// untranslatable is why the translation to Anthropic's Messages API cannot serve this Responses call; nil when
// it can. Routing asks it for every group with an Anthropic deployment, so it translates once.
func (r *request) untranslatable() error {
	if !r.translationChecked {
		r.translationChecked = true
		_, r.translation = responsesToAnthropic(r.body, "")
	}
	return r.translation
}

// onProvider reports a Responses call that keeps or continues a conversation in its provider's store.
func (r *request) onProvider() bool { return r.previousID != "" || r.providerStore }

// estimateInput is the prompt's tokens, estimated from the body size.
func (r *request) estimateInput() int64 { return tokensOfText(len(r.body)) }

// maxChoices is the most completions one call may ask for, OpenAI's own
// limit on n.
const maxChoices = 128

// The guarded keys of a body may not appear twice or in another letter case:
// Go's encoding/json would match them case-insensitively and keep the last
// copy, while an upstream may read another one, so what we route on would not
// be what the upstream acts on. Each endpoint has its own list, so a chat call
// scans for no more than it did before the Responses API came.
var (
	chatKeys      = []string{"model", "stream", "stream_options", "max_tokens", "max_completion_tokens", "n"}
	responsesKeys = []string{"model", "stream", "max_output_tokens", "previous_response_id", "background", "store", "conversation"}
)

// maxGuardedKeys bounds the lists above: parseBody marks the keys it saw in an array of this size.
const maxGuardedKeys = 7

func init() {
	if len(chatKeys) > maxGuardedKeys || len(responsesKeys) > maxGuardedKeys {
		panic("llm: a guarded key list is longer than maxGuardedKeys")
	}
}

// parseRequest validates a chat, embeddings or messages body as JSON and
// picks out the routing fields.
func parseRequest(body []byte) (*request, error) { return parseBody(body, chatKeys) }

// parseBody validates body as JSON and picks out the fields named in guarded.
func parseBody(body []byte, guarded []string) (*request, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errBadRequest("invalid_request", "request body is empty")
	}
	if !validJSON(body) {
		return nil, errBadRequest("invalid_json", "request body is not valid JSON")
	}
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return nil, errBadRequest("invalid_request", "request body must be a JSON object")
	}
	r := &request{body: body, choices: 1}
	var seen [maxGuardedKeys]bool
	i = skipSpace(body, i+1)
	for body[i] != '}' {
		keyEnd := skipString(body, i)
		key := decodeKey(body[i:keyEnd], guarded)
		i = skipSpace(body, keyEnd)
		i = skipSpace(body, i+1) // ':'
		valEnd := skipValue(body, i)
		val := span{i, valEnd}
		for k, g := range guarded {
			if key == "" {
				break
			}
			if !strings.EqualFold(key, g) {
				continue
			}
			if key != g {
				return nil, errBadRequest("invalid_request", "field %q must be spelled %q", key, g)
			}
			if seen[k] {
				return nil, errBadRequest("invalid_request", "field %q appears more than once", g)
			}
			seen[k] = true
			if err := r.set(g, val); err != nil {
				return nil, err
			}
		}
		i = skipSpace(body, valEnd)
		if body[i] == ',' {
			i = skipSpace(body, i+1)
		}
	}
	return r, nil
}

func (r *request) set(key string, at span) error {
	raw := r.body[at.start:at.end]
	switch key {
	case "model":
		if raw[0] != '"' {
			return errBadRequest("invalid_request", "field \"model\" must be a string")
		}
		if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
			// validJSON passed, so without escapes the bytes between the
			// quotes are the string (encoding/json turns invalid UTF-8 into U+FFFD).
			r.model = string(raw[1 : len(raw)-1])
		} else if err := json.Unmarshal(raw, &r.model); err != nil {
			return errBadRequest("invalid_request", "field \"model\" must be a string")
		}
		r.modelAt = at
	case "stream":
		switch string(raw) {
		case "true":
			r.stream = true
		case "false", "null":
		default:
			return errBadRequest("invalid_request", "field \"stream\" must be a boolean")
		}
		r.streamAt = at
	case "stream_options":
		if raw[0] == 'n' {
			// Kept so upstreamBody replaces the null rather than adding a duplicate key.
			r.streamOptsAt = at
			return nil
		}
		var so struct {
			IncludeUsage *bool `json:"include_usage"`
		}
		if raw[0] != '{' || json.Unmarshal(raw, &so) != nil {
			return errBadRequest("invalid_request", "field \"stream_options\" must be an object")
		}
		r.includeUsage = so.IncludeUsage != nil && *so.IncludeUsage
		r.streamOptsAt = at
	case "max_tokens", "max_completion_tokens", "max_output_tokens":
		if raw[0] == 'n' {
			return nil
		}
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n < 0 {
			return errBadRequest("invalid_request", "field %q must be a non-negative integer", key)
		}
		r.maxTokens = max(r.maxTokens, n)
	case "n":
		if raw[0] == 'n' {
			return nil
		}
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n < 1 || n > maxChoices {
			return errBadRequest("invalid_request", "field \"n\" must be an integer from 1 to %d", maxChoices)
		}
		r.choices = n
	case "previous_response_id":
		if raw[0] == 'n' {
			return nil
		}
		if raw[0] != '"' || json.Unmarshal(raw, &r.previousID) != nil {
			return errBadRequest("invalid_request", "field \"previous_response_id\" must be a string")
		}
	case "store":
		switch string(raw) {
		case "true":
			r.providerStore = true
		case "false", "null":
		default:
			return errBadRequest("invalid_request", "field \"store\" must be a boolean")
		}
	case "conversation":
		r.providerStore = raw[0] != 'n'
	case "background":
		switch string(raw) {
		case "false", "null":
		case "true":
			// A background response is fetched later with GET /v1/responses/{id}, which the gateway does not serve,
			// and it would run unbilled after the call ended.
			return errBadRequest("unsupported_parameter", "background mode is not supported by this gateway; send the request without \"background\": true")
		default:
			return errBadRequest("invalid_request", "field \"background\" must be a boolean")
		}
	}
	return nil
}

// edit replaces body[at] with repl; an empty span at p inserts at p.
type edit struct {
	at   span
	repl []byte
}

// upstreamBody appends to dst the body the upstream must see: the
// deployment's model name (quotedModel, a JSON string) and, for streams,
// include_usage switched on so the gateway learns the usage. Only those
// bytes change.
func (r *request) upstreamBody(dst, quotedModel []byte, forceUsage bool) []byte {
	var buf [2]edit
	edits := buf[:0]
	if r.modelAt.present() {
		edits = append(edits, edit{r.modelAt, quotedModel})
	}
	if forceUsage && r.stream && !r.includeUsage {
		if r.streamOptsAt.present() {
			edits = append(edits, edit{r.streamOptsAt, withIncludeUsage(r.body[r.streamOptsAt.start:r.streamOptsAt.end])})
		} else {
			open := skipSpace(r.body, 0) + 1
			edits = append(edits, edit{span{open, open}, []byte(`"stream_options":{"include_usage":true},`)})
		}
	}
	return applyEdits(dst, r.body, edits)
}

// withIncludeUsage re-encodes the small stream_options object only.
func withIncludeUsage(raw []byte) []byte {
	m := map[string]json.RawMessage{}
	// parseRequest already checked it is an object or null; null leaves m nil.
	_ = json.Unmarshal(raw, &m)
	if m == nil {
		m = map[string]json.RawMessage{}
	}
	m["include_usage"] = json.RawMessage("true")
	out, _ := json.Marshal(m)
	return out
}

func applyEdits(dst, body []byte, edits []edit) []byte {
	// Edits come in any order; apply them front to back.
	if len(edits) == 2 && edits[1].at.start < edits[0].at.start {
		edits[0], edits[1] = edits[1], edits[0]
	}
	n := len(body)
	for _, e := range edits {
		n += len(e.repl) - (e.at.end - e.at.start)
	}
	out := slices.Grow(dst, n)
	prev := 0
	for _, e := range edits {
		out = append(out, body[prev:e.at.start]...)
		out = append(out, e.repl...)
		prev = e.at.end
	}
	return append(out, body[prev:]...)
}

// The scanners below run on bodies validJSON accepted, so they only find
// boundaries; they never need to report syntax errors.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; ; i++ {
		if i = nextStringSpecial(b, i); i >= len(b) {
			return len(b)
		}
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// decodeKey unescapes a quoted key; escapes such as "mod\u0065l" must count
// as the key they spell. Keys that cannot fold to a guarded key come back
// empty, which saves an allocation for every other key of the body.
func decodeKey(quoted []byte, guarded []string) string {
	if bytes.IndexByte(quoted, '\\') < 0 {
		raw := quoted[1 : len(quoted)-1]
		for _, g := range guarded {
			if string(raw) == g {
				return g
			}
			if bytes.EqualFold(raw, []byte(g)) {
				return string(raw)
			}
		}
		return ""
	}
	var s string
	_ = json.Unmarshal(quoted, &s)
	return s
}
