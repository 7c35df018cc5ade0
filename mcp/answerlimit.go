package mcp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// responseTooLargeError is an upstream answer (one JSON body, or one event
// of an SSE stream) over mcp.max_response_bytes.
type responseTooLargeError struct{ limit int64 }

func (e *responseTooLargeError) Error() string {
	return fmt.Sprintf("answer larger than %d bytes", e.limit)
}

// limitTransport bounds what the gateway reads from an upstream's HTTP
// answers, for the relay and mcp-go's clients alike: both read bodies to the
// end (io.ReadAll, json.Decoder, bufio lines), so a broken or hostile
// upstream could otherwise make the gateway allocate without bound.
type limitTransport struct {
	base  http.RoundTripper
	limit *atomic.Int64 // mcp.max_response_bytes; Reload changes it in place
	// trips counts answers cut off on requests no call owns (the legacy
	// SSE stream, a listening GET): the calls waiting on them fail too.
	trips *atomic.Uint64
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body := &limitedBody{rc: resp.Body, limit: t.limit.Load(), trips: t.trips,
		stream: isEventStream(resp.Header.Get("Content-Type"))}
	body.mark, _ = req.Context().Value(answerMarkKey{}).(*atomic.Bool)
	if !body.stream && resp.ContentLength > body.limit {
		// Closed unread, the connection is dropped rather than pooled.
		_ = resp.Body.Close()
		body.tripped()
		return nil, &responseTooLargeError{limit: body.limit}
	}
	resp.Body = body
	return resp, nil
}

// isEventStream is a cheap mime.ParseMediaType(ct) == "text/event-stream",
// run on every upstream answer.
func isEventStream(ct string) bool {
	const sse = "text/event-stream"
	ct = strings.TrimSpace(ct)
	if len(ct) < len(sse) || !strings.EqualFold(ct[:len(sse)], sse) {
		return false
	}
	rest := strings.TrimSpace(ct[len(sse):])
	return rest == "" || rest[0] == ';'
}

// limitedBody fails a read once the body, or on an event stream the current
// event, passes limit, and closes the connection underneath right away so
// that neither the rest of the answer nor a half-read connection is kept.
type limitedBody struct {
	rc     io.ReadCloser
	limit  int64
	stream bool
	mark   *atomic.Bool   // the call's, when a call owns the request
	trips  *atomic.Uint64 // the upstream's, for requests no call owns
	err    error

	n int64 // bytes of the body, or of the current event
	// Event boundaries on a stream: a blank line ends an event, and lines
	// end with CR, LF or CRLF.
	lineHasText bool
	afterCR     bool
}

func (b *limitedBody) tripped() {
	if b.mark != nil {
		b.mark.Store(true)
	} else {
		b.trips.Add(1)
	}
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	var over bool
	if b.stream {
		over = b.countEvent(p[:n])
	} else {
		b.n += int64(n)
		over = b.n > b.limit
	}
	if over {
		b.err = &responseTooLargeError{limit: b.limit}
		_ = b.rc.Close()
		b.tripped()
		return 0, b.err
	}
	return n, err
}

// countEvent adds p to the current event's size, starting again after each
// blank line; it reports whether an event passed the limit. It looks for CR
// and LF with vectorised searches (an event may carry megabytes between line
// ends), each at most once per byte of p.
func (b *limitedBody) countEvent(p []byte) bool {
	lf, cr := -1, -1 // the next LF and CR at or after pos; len(p) when none
	for pos := 0; pos < len(p); {
		if lf < pos {
			lf = indexFrom(p, pos, '\n')
		}
		if cr < pos {
			cr = indexFrom(p, pos, '\r')
		}
		i := min(lf, cr)
		if i == len(p) {
			b.n += int64(len(p) - pos)
			b.lineHasText, b.afterCR = true, false
			break
		}
		if i > pos {
			b.lineHasText, b.afterCR = true, false
		}
		b.n += int64(i + 1 - pos)
		if b.n > b.limit {
			return true
		}
		switch {
		case p[i] == '\n' && b.afterCR:
			// The LF of a CRLF: the line already ended at the CR.
			b.afterCR = false
		case !b.lineHasText:
			b.n, b.afterCR = 0, p[i] == '\r'
		default:
			b.lineHasText, b.afterCR = false, p[i] == '\r'
		}
		pos = i + 1
	}
	return b.n > b.limit
}

func indexFrom(p []byte, from int, c byte) int {
	if i := bytes.IndexByte(p[from:], c); i >= 0 {
		return from + i
	}
	return len(p)
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// answerMarkKey carries a call's mark: limitTransport sets it when an answer
// to one of the call's requests passed the limit. mcp-go does not always
// keep the read error (a broken SSE response becomes "unexpected nil
// response"), so the call learns why it failed from the mark.
type answerMarkKey struct{}

func withAnswerMark(ctx context.Context) (context.Context, *atomic.Bool) {
	mark := new(atomic.Bool)
	return context.WithValue(ctx, answerMarkKey{}, mark), mark
}
