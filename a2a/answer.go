package a2a

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/switchboard-gw/switchboard/governance"
)

// errAnswerTooLarge is what reading an agent's answer past
// a2a.max_response_bytes fails with; upstreamError turns it into
// errUpstreamTooLarge for the client.
var errAnswerTooLarge = errors.New("upstream answer exceeds a2a.max_response_bytes")

var errUpstreamTooLarge = a2a.NewError(a2a.ErrServerError, "upstream agent's answer is larger than the gateway accepts")

// answerTransport guards what an agent sends back on the slow path (calls,
// streams, card fetches): it bounds each answer — a body, or one event of
// an SSE stream — to limit bytes and redacts the agent's secrets before
// a2a-go's client decodes anything, so neither results, stream events nor
// the error strings a2a-go builds from error bodies can carry them.
type answerTransport struct {
	base    http.RoundTripper
	secrets *governance.Redactor
	limit   int64
}

func (t answerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	perEvent := mediaType == "text/event-stream"
	if !perEvent && resp.StatusCode == http.StatusOK && r.Header.Get("Accept") == "text/event-stream" {
		return t.asEvent(resp, mediaType)
	}
	if !perEvent && resp.ContentLength > t.limit {
		// Closed unread, the connection is dropped rather than pooled.
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%w (Content-Length %d)", errAnswerTooLarge, resp.ContentLength)
	}
	if t.secrets != nil {
		// Redaction changes the length.
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
	}
	resp.Body = &answerBody{body: resp.Body, secrets: t.secrets, limit: t.limit, perEvent: perEvent}
	if perEvent {
		resp.Body = &typedErrorEvents{body: resp.Body}
	} else if mediaType == "application/json" {
		return withTypedErrorData(resp)
	}
	return resp, nil
}

// withTypedErrorData reads a JSON answer (a2a-go's client would read it
// whole anyway) and gives an error's data the shape a2a-go decodes: a list
// of objects. JSON-RPC allows any value there, and a2a-go fails on anything
// else, which turned the agent's error into "upstream agent unavailable".
func withTypedErrorData(resp *http.Response) (*http.Response, error) {
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if bytes.Contains(raw, []byte(`"error"`)) {
		raw = typedErrorData(raw)
	}
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	return resp, nil
}

// typedErrorData rewrites error.data of a JSON-RPC answer to a list of
// objects: an object becomes a list of it, any other value an object
// {"value": ...} (in a list, each element that is not an object). An
// answer without such data comes back unchanged.
func typedErrorData(answer []byte) []byte {
	var msg map[string]json.RawMessage
	var rpcErr map[string]json.RawMessage
	if json.Unmarshal(answer, &msg) != nil || json.Unmarshal(msg["error"], &rpcErr) != nil || rpcErr["data"] == nil {
		return answer
	}
	data := bytes.TrimSpace(rpcErr["data"])
	if len(data) == 0 || string(data) == "null" {
		return answer
	}
	var items []json.RawMessage
	if data[0] != '[' || json.Unmarshal(data, &items) != nil {
		items = []json.RawMessage{data}
	}
	changed := data[0] != '['
	for i, item := range items {
		if item = bytes.TrimSpace(item); len(item) == 0 || item[0] != '{' {
			items[i], _ = json.Marshal(map[string]json.RawMessage{"value": item})
			changed = true
		}
	}
	if !changed {
		return answer
	}
	var err error
	if rpcErr["data"], err = json.Marshal(items); err != nil {
		return answer
	}
	if msg["error"], err = json.Marshal(rpcErr); err != nil {
		return answer
	}
	out, err := json.Marshal(msg)
	if err != nil {
		return answer
	}
	return out
}

// asEvent turns an agent's JSON answer to a stream request (an agent may
// refuse a stream with a plain JSON-RPC error) into a stream of that one
// event. a2a-go's client would read the JSON as an SSE stream without
// events, and the caller would get an empty stream instead of the error.
func (t answerTransport) asEvent(resp *http.Response, mediaType string) (*http.Response, error) {
	body := &answerBody{body: resp.Body, secrets: t.secrets, limit: t.limit}
	raw, err := io.ReadAll(body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var event bytes.Buffer
	event.WriteString("data: ")
	if mediaType != "application/json" || json.Compact(&event, typedErrorData(raw)) != nil {
		return nil, fmt.Errorf("agent answered a stream request with %q, not an event stream", mediaType)
	}
	event.WriteString("\n\n")
	resp.Header.Set("Content-Type", "text/event-stream")
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	resp.Body = io.NopCloser(&event)
	return resp, nil
}

// answerBody is an agent's answer as answerTransport lets it through.
type answerBody struct {
	body     io.ReadCloser
	secrets  *governance.Redactor
	limit    int64
	perEvent bool

	size   int64 // of the answer, or of the current SSE event when perEvent
	inLine bool  // the last byte was not a line end (perEvent)
	lastCR bool  // the last byte was '\r', which a '\n' may complete (perEvent)

	buf    []byte // one read from body
	held   []byte // read, but possibly the start of a secret
	out    []byte // redacted, not yet returned
	outBuf []byte // out's backing array, reused
	err    error  // the end of body, returned once held and out are drained
}

func (b *answerBody) Read(p []byte) (int, error) {
	if b.secrets == nil {
		n, err := b.body.Read(p)
		if cerr := b.count(p[:n]); cerr != nil {
			return 0, cerr
		}
		return n, err
	}
	for len(b.out) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		if b.buf == nil {
			b.buf = make([]byte, 32<<10)
		}
		n, err := b.body.Read(b.buf)
		if cerr := b.count(b.buf[:n]); cerr != nil {
			b.err, b.held = cerr, nil
			return 0, cerr
		}
		b.err = err
		var rest []byte
		b.out, rest = b.secrets.AppendStream(b.outBuf[:0], append(b.held, b.buf[:n]...), err != nil)
		b.outBuf = b.out
		b.held = append(b.held[:0], rest...)
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// count adds chunk to the size read and fails once it passes the limit. In
// an SSE stream an event ends at an empty line; only the bytes of its lines
// count, so keep-alive comments and line ends between events never add up.
func (b *answerBody) count(chunk []byte) error {
	if !b.perEvent {
		b.size += int64(len(chunk))
		if b.size > b.limit {
			return errAnswerTooLarge
		}
		return nil
	}
	for _, c := range chunk {
		switch {
		case c == '\n' && b.lastCR:
			b.lastCR = false
		case c == '\n' || c == '\r':
			if !b.inLine {
				b.size = 0
			}
			b.inLine, b.lastCR = false, c == '\r'
		default:
			b.inLine, b.lastCR = true, false
			if b.size++; b.size > b.limit {
				return errAnswerTooLarge
			}
		}
	}
	return nil
}

func (b *answerBody) Close() error { return b.body.Close() }

// typedErrorEvents gives error.data in each event of an SSE stream the
// shape a2a-go decodes, as withTypedErrorData does for a whole answer. It
// holds an event until the empty line that ends it, which delays nothing:
// a2a-go's reader decodes an event only once it ended. body is an
// answerBody, which fails an event past its limit; events end here at the
// same line ends (CR, LF or CRLF) as there, so no more than one event it
// let through is held.
type typedErrorEvents struct {
	body io.ReadCloser

	inLine bool // the last byte was not a line end
	lastCR bool // the last byte was '\r', which a '\n' may complete

	buf    []byte // one read from body
	event  []byte // the current event, read so far
	out    []byte // ready, not yet returned
	outBuf []byte // out's backing array, reused
	err    error  // the end of body, returned once out is drained
}

func (e *typedErrorEvents) Read(p []byte) (int, error) {
	for len(e.out) == 0 {
		if e.err != nil {
			return 0, e.err
		}
		if e.buf == nil {
			e.buf = make([]byte, 32<<10)
		}
		n, err := e.body.Read(e.buf)
		e.out = e.outBuf[:0]
		for _, c := range e.buf[:n] {
			if len(e.event) == 0 && (c == '\n' || c == '\r') {
				// Line ends between events: holding them would keep the
				// end of the last event (the LF of its CRLF) from a2a-go.
				e.out = append(e.out, c)
				continue
			}
			e.event = append(e.event, c)
			switch {
			case c == '\n' && e.lastCR:
				e.lastCR = false
			case c == '\n' || c == '\r':
				if !e.inLine {
					e.out = append(e.out, typedEvent(e.event)...)
					e.event = e.event[:0]
				}
				e.inLine, e.lastCR = false, c == '\r'
			default:
				e.inLine, e.lastCR = true, false
			}
		}
		if err != nil {
			// a2a-go decodes an event the stream ends in without an empty
			// line as well.
			e.out = append(e.out, typedEvent(e.event)...)
			e.event = nil
			e.err = err
		}
		e.outBuf = e.out
	}
	n := copy(p, e.out)
	e.out = e.out[n:]
	return n, nil
}

func (e *typedErrorEvents) Close() error { return e.body.Close() }

// typedEvent is an SSE event with its data rewritten by typedErrorData,
// or unchanged when that leaves the data as it is. A rewritten event has
// its data only, on one line: a2a-go reads nothing else of an event.
func typedEvent(event []byte) []byte {
	if !bytes.Contains(event, []byte(`"error"`)) {
		return event
	}
	// The data lines joined as a2a-go joins them.
	var data []byte
	for _, line := range bytes.FieldsFunc(event, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if value, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, bytes.TrimPrefix(value, []byte(" "))...)
		}
	}
	typed := typedErrorData(data)
	if bytes.Equal(typed, data) {
		return event
	}
	return append(append([]byte("data: "), typed...), "\n\n"...)
}
