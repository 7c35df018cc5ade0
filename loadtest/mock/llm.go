package mock

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Request headers a test sends to the LLM mock to inject failures.
const (
	// HeaderFail makes the mock answer with the given HTTP status.
	HeaderFail = "x-mock-fail"
	// HeaderFailAfter makes a stream drop its connection after this many SSE
	// events, without the terminal event ([DONE] or message_stop).
	HeaderFailAfter = "x-mock-fail-after"
	// HeaderLatency overrides LLMOptions.Latency for one request ("250ms").
	HeaderLatency = "x-mock-latency"
	// HeaderTraceparent is the response header echoing the traceparent the
	// mock received.
	HeaderTraceparent = "x-mock-traceparent"
)

// contextLimitPrefix names models that refuse long prompts, like a real
// model past its context window. "context-limit-200" allows 200 characters;
// a bare "context-limit" allows defaultContextLimit.
const (
	contextLimitPrefix  = "context-limit"
	defaultContextLimit = 1000
)

// DefaultModels are served by GET /v1/models when LLMOptions.Models is empty.
var DefaultModels = []string{
	"gpt-4o-mini", "gpt-4o", "gpt-4.1-mini",
	"text-embedding-3-small", "text-embedding-3-large",
	"claude-3-5-haiku-latest", "claude-sonnet-4-5",
}

// LLMOptions configure the OpenAI- and Anthropic-compatible mock.
type LLMOptions struct {
	Latency         time.Duration  // before the first byte of every response
	TokensPerSecond float64        // stream pacing; 0 = as fast as possible
	Models          []string       // served by GET /v1/models; DefaultModels when empty
	Fail            map[string]int // model name -> HTTP status to answer
	APIKey          string         // if set, required as Bearer token (OpenAI) or x-api-key (Anthropic)
	Logger          *slog.Logger   // nil discards
}

// LLMRequest is what the mock saw of one request, for assertions.
type LLMRequest struct {
	Method      string
	Path        string
	Header      http.Header
	Body        []byte
	Traceparent string
}

// LLMServer is a running LLM mock.
type LLMServer struct {
	Server

	opts     LLMOptions
	models   []string
	interval time.Duration
	srv      *fasthttp.Server
	done     chan struct{}
	seq      atomic.Int64
	requests atomic.Int64
	stored   *responseStore // ids of the Responses API responses made, for previous_response_id

	// The latest request, kept as raw copies into reused buffers and turned
	// into an LLMRequest only when asked: building an http.Header for every
	// request was most of the mock's allocations, CPU that benchmarks on a
	// shared machine took away from the proxy under test.
	mu       sync.Mutex
	lastHdr  fasthttp.RequestHeader
	lastPath []byte
	lastBody []byte
}

// StartLLM serves the LLM mock on addr ("127.0.0.1:0" picks a free port).
// Routes: POST /v1/chat/completions, POST /v1/responses, POST /v1/embeddings,
// GET /v1/models, GET /v1/models/{id} (OpenAI) and POST /v1/messages (Anthropic).
func StartLLM(addr string, opts LLMOptions) (*LLMServer, error) {
	if opts.TokensPerSecond < 0 {
		return nil, errors.New("mock: TokensPerSecond must not be negative")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mock: llm listen: %w", err)
	}
	l := &LLMServer{opts: opts, models: opts.Models, done: make(chan struct{}), stored: newResponseStore()}
	if len(l.models) == 0 {
		l.models = DefaultModels
	}
	if opts.TokensPerSecond > 0 {
		l.interval = time.Duration(float64(time.Second) / opts.TokensPerSecond)
	}
	log := orDiscard(opts.Logger)
	l.srv = &fasthttp.Server{
		Handler:              l.handle,
		Name:                 "switchboard-mock",
		NoDefaultDate:        true,
		NoDefaultContentType: true,
		MaxRequestBodySize:   32 << 20,
		ReadTimeout:          time.Minute,
		IdleTimeout:          time.Minute,
		Logger:               fasthttpLogger{log},
	}
	l.init(ln, l.shutdown)
	go func() {
		if err := l.srv.Serve(ln); err != nil {
			log.Error("mock llm stopped", "err", err)
		}
	}()
	return l, nil
}

func (l *LLMServer) shutdown(ctx context.Context) error {
	// Unblock paced streams and latency sleeps so draining is quick.
	close(l.done)
	return l.srv.ShutdownWithContext(ctx)
}

// Requests counts every request the mock received, whatever its outcome.
func (l *LLMServer) Requests() int64 { return l.requests.Load() }

// LastTraceparent is the traceparent header of the latest request ("" if none).
func (l *LLMServer) LastTraceparent() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.lastHdr.Peek("traceparent"))
}

// LastRequest is a copy of the latest request (zero before the first).
func (l *LLMServer) LastRequest() LLMRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastPath == nil {
		return LLMRequest{}
	}
	h := make(http.Header)
	for k, v := range l.lastHdr.All() {
		h.Add(string(k), string(v))
	}
	return LLMRequest{
		Method:      string(l.lastHdr.Method()),
		Path:        string(l.lastPath),
		Header:      h,
		Body:        bytes.Clone(l.lastBody),
		Traceparent: string(l.lastHdr.Peek("traceparent")),
	}
}

func (l *LLMServer) record(ctx *fasthttp.RequestCtx) {
	l.mu.Lock()
	ctx.Request.Header.CopyTo(&l.lastHdr)
	l.lastPath = append(l.lastPath[:0], ctx.Path()...)
	l.lastBody = append(l.lastBody[:0], ctx.Request.Body()...)
	l.mu.Unlock()
}

// dialect selects the error shape of a route.
type dialect int

const (
	dialectOpenAI dialect = iota
	dialectAnthropic
)

// injection is the per-request behaviour a test asked for through headers.
type injection struct {
	fail      int
	failAfter int // -1: never
	latency   time.Duration
}

func (l *LLMServer) handle(ctx *fasthttp.RequestCtx) {
	l.requests.Add(1)
	n := l.seq.Add(1)
	l.record(ctx)
	if traceparent := ctx.Request.Header.Peek("traceparent"); len(traceparent) > 0 {
		ctx.Response.Header.SetBytesV(HeaderTraceparent, traceparent)
	}
	ctx.Response.Header.Set("x-request-id", "req_mock_"+strconv.FormatInt(n, 10))

	path := string(ctx.Path())
	d := dialectOpenAI
	if path == "/v1/messages" || path == "/v1/messages/count_tokens" {
		d = dialectAnthropic
	}
	inj, err := parseInjection(&ctx.Request.Header, l.opts.Latency)
	if err != nil {
		writeError(ctx, d, http.StatusBadRequest, err.Error())
		return
	}
	sleepCtx(l.done, inj.latency)

	if !l.authorized(ctx, d) {
		return
	}
	if inj.fail != 0 {
		writeError(ctx, d, inj.fail, "failure injected by "+HeaderFail)
		return
	}
	method := string(ctx.Method())
	switch {
	case path == "/v1/chat/completions" && method == http.MethodPost:
		l.chat(ctx, n, inj)
	case path == "/v1/responses" && method == http.MethodPost:
		l.responses(ctx, n, inj)
	case path == "/v1/embeddings" && method == http.MethodPost:
		l.embeddings(ctx)
	case path == "/v1/models" && method == http.MethodGet:
		l.listModels(ctx)
	case strings.HasPrefix(path, "/v1/models/") && method == http.MethodGet:
		l.getModel(ctx, strings.TrimPrefix(path, "/v1/models/"))
	case path == "/v1/messages" && method == http.MethodPost:
		l.messages(ctx, n, inj)
	case path == "/v1/messages/count_tokens" && method == http.MethodPost:
		l.countTokens(ctx)
	default:
		writeError(ctx, d, http.StatusNotFound, "unknown route "+method+" "+path)
	}
}

func parseInjection(h *fasthttp.RequestHeader, latency time.Duration) (injection, error) {
	inj := injection{failAfter: -1, latency: latency}
	if v := h.Peek(HeaderFail); len(v) > 0 {
		status, err := strconv.Atoi(string(v))
		if err != nil || status < 400 || status > 599 {
			return inj, fmt.Errorf("%s: want an HTTP error status (400-599)", HeaderFail)
		}
		inj.fail = status
	}
	if v := h.Peek(HeaderFailAfter); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 0 {
			return inj, fmt.Errorf("%s: want a non-negative event count", HeaderFailAfter)
		}
		inj.failAfter = n
	}
	if v := h.Peek(HeaderLatency); len(v) > 0 {
		d, err := time.ParseDuration(string(v))
		if err != nil || d < 0 {
			return inj, fmt.Errorf("%s: want a duration such as 250ms", HeaderLatency)
		}
		inj.latency = d
	}
	return inj, nil
}

// authorized checks the credential each API expects and answers 401 itself.
func (l *LLMServer) authorized(ctx *fasthttp.RequestCtx, d dialect) bool {
	if l.opts.APIKey == "" {
		return true
	}
	var got []byte
	if d == dialectAnthropic {
		got = ctx.Request.Header.Peek("x-api-key")
	} else {
		auth := ctx.Request.Header.Peek("Authorization")
		if after, ok := bytes.CutPrefix(auth, []byte("Bearer ")); ok {
			got = after
		}
	}
	if subtle.ConstantTimeCompare(got, []byte(l.opts.APIKey)) == 1 {
		return true
	}
	// Never echo the presented key: it may be a real secret sent by mistake.
	msg := "Incorrect API key provided."
	if d == dialectAnthropic {
		msg = "invalid x-api-key"
	}
	writeError(ctx, d, http.StatusUnauthorized, msg)
	return false
}

// failFor applies LLMOptions.Fail and the context-limit models; it reports
// whether it answered.
func (l *LLMServer) failFor(ctx *fasthttp.RequestCtx, d dialect, model string, promptChars int) bool {
	if status := l.opts.Fail[model]; status != 0 {
		writeError(ctx, d, status, "failure injected for model "+model)
		return true
	}
	limit, ok := contextLimit(model)
	if !ok || promptChars <= limit {
		return false
	}
	if d == dialectAnthropic {
		writeAnthropicError(ctx, http.StatusBadRequest, "invalid_request_error",
			fmt.Sprintf("prompt is too long: %d tokens > %d maximum", promptChars, limit))
		return true
	}
	writeOpenAIError(ctx, http.StatusBadRequest, openAIError{
		Message: fmt.Sprintf("This model's maximum context length is %d tokens. However, your messages resulted in %d tokens. Please reduce the length of the messages.", limit, promptChars),
		Type:    "invalid_request_error",
		Param:   "messages",
		Code:    "context_length_exceeded",
	})
	return true
}

func contextLimit(model string) (int, bool) {
	rest, ok := strings.CutPrefix(model, contextLimitPrefix)
	if !ok {
		return 0, false
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(rest, "-")); err == nil && n > 0 {
		return n, true
	}
	return defaultContextLimit, true
}

func writeError(ctx *fasthttp.RequestCtx, d dialect, status int, msg string) {
	if d == dialectAnthropic {
		writeAnthropicError(ctx, status, anthropicErrorType(status), msg)
		return
	}
	e := openAIError{Message: msg}
	e.Type, e.Code = openAIErrorKind(status)
	writeOpenAIError(ctx, status, e)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(body)
}

// fasthttpLogger routes fasthttp's own messages (broken connections, which
// the fail-after injection causes on purpose) to debug level.
type fasthttpLogger struct{ log *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.log.Debug(fmt.Sprintf(format, args...))
}
