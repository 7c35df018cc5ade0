package mock

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

// A2AOptions configure the A2A mock agent.
type A2AOptions struct {
	Name    string        // agent name on the card; "mock-agent" when empty
	Latency time.Duration // between "working" and the result (honours cancellation)
	// OnMessage, when set, computes the reply instead of the echo; it lets a
	// test make the agent call the gateway back with the trace context.
	OnMessage func(ctx context.Context, text string, traceparent string) (reply string, err error)
	Logger    *slog.Logger // nil discards
}

// A2AServer is a running A2A mock agent. One JSON-RPC endpoint at URL+"/"
// speaks A2A 1.0 and 0.3, chosen per request by the A2A-Version header the
// way the official JS SDK chooses (absent or 0.x: 0.3).
type A2AServer struct {
	Server

	messages atomic.Int64
	mu       sync.Mutex
	lastTP   string
}

// StartA2A serves the A2A mock on addr, with its card at
// /.well-known/agent-card.json (and the 0.3 name /.well-known/agent.json).
func StartA2A(addr string, opts A2AOptions) (*A2AServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mock: a2a listen: %w", err)
	}
	log := orDiscard(opts.Logger)
	s := &A2AServer{}
	base := "http://" + ln.Addr().String()
	name := opts.Name
	if name == "" {
		name = "mock-agent"
	}
	card := &a2a.AgentCard{
		Name:        name,
		Description: "Switchboard mock agent: answers every message with an artifact echoing it.",
		Version:     "1.0.0",
		SupportedInterfaces: []*a2a.AgentInterface{
			{URL: base, ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: a2a.Version},
			{URL: base, ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: a2av0.Version},
		},
		Capabilities:       a2a.AgentCapabilities{Streaming: true},
		DefaultInputModes:  []string{"text/plain"},
		DefaultOutputModes: []string{"text/plain"},
		Skills: []a2a.AgentSkill{{
			ID: "echo", Name: "Echo", Description: "Echoes the message text as an artifact",
			Tags: []string{"mock"}, Examples: []string{"hello"},
		}},
	}
	store := newRecentTasks(maxStoredTasks)
	agent := &echoAgent{opts: opts, server: s}
	handler := quickSend{
		RequestHandler: a2asrv.NewHandler(agent, a2asrv.WithLogger(log), a2asrv.WithTaskStore(store)),
		agent:          agent,
		store:          store,
	}
	v1 := a2asrv.NewJSONRPCHandler(handler)
	v0 := a2av0.NewJSONRPCHandler(handler)
	// The compat producer writes a card that 1.0 and 0.3 parsers both read.
	cardHandler := a2asrv.NewAgentCardHandler(a2av0.NewStaticAgentCardProducer(card))

	mux := http.NewServeMux()
	mux.Handle("GET "+a2asrv.WellKnownAgentCardPath, cardHandler)
	mux.Handle("GET /.well-known/agent.json", cardHandler)
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isV1(r.Header.Get(a2a.SvcParamVersion)) {
			v1.ServeHTTP(w, r)
			return
		}
		v0.ServeHTTP(w, r)
	}))
	s.init(ln, serveHTTP(ln, s.echoTraceparent(mux), log, nil))
	return s, nil
}

func isV1(version string) bool {
	return version != "" && !strings.HasPrefix(version, "0.")
}

func (s *A2AServer) echoTraceparent(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tp := r.Header.Get("traceparent"); tp != "" {
			w.Header().Set(HeaderTraceparent, tp)
			s.mu.Lock()
			s.lastTP = tp
			s.mu.Unlock()
		}
		w.Header().Add("Vary", a2a.SvcParamVersion)
		next.ServeHTTP(w, r)
	})
}

// Messages counts messages the agent executed.
func (s *A2AServer) Messages() int64 { return s.messages.Load() }

// LastTraceparent is the traceparent header of the latest request ("" if none).
func (s *A2AServer) LastTraceparent() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastTP
}

// echoAgent creates a task per message and walks it through submitted,
// working and completed, with one artifact holding the reply.
type echoAgent struct {
	opts   A2AOptions
	server *A2AServer
}

func (e *echoAgent) Execute(ctx context.Context, execCtx *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		e.server.messages.Add(1)
		text := messageText(execCtx.Message)
		traceparent := ""
		if v, ok := execCtx.ServiceParams.Get("traceparent"); ok && len(v) > 0 {
			traceparent = v[0]
		}
		if execCtx.StoredTask == nil {
			if !yield(a2a.NewSubmittedTask(execCtx, execCtx.Message), nil) {
				return
			}
		}
		if !yield(a2a.NewStatusUpdateEvent(execCtx, a2a.TaskStateWorking, nil), nil) {
			return
		}
		reply, err := e.work(ctx, text, traceparent)
		if ctx.Err() != nil {
			yield(nil, context.Cause(ctx))
			return
		}
		if err != nil {
			msg := a2a.NewMessageForTask(a2a.MessageRoleAgent, execCtx, a2a.NewTextPart(err.Error()))
			yield(a2a.NewStatusUpdateEvent(execCtx, a2a.TaskStateFailed, msg), nil)
			return
		}
		if !yield(&a2a.TaskArtifactUpdateEvent{TaskID: execCtx.TaskID, ContextID: execCtx.ContextID, Artifact: echoArtifact(reply, traceparent)}, nil) {
			return
		}
		done := a2a.NewMessageForTask(a2a.MessageRoleAgent, execCtx, a2a.NewTextPart(reply))
		yield(a2a.NewStatusUpdateEvent(execCtx, a2a.TaskStateCompleted, done), nil)
	}
}

// work waits the configured latency and computes the reply; an error is
// either the cancelled context's or OnMessage's.
func (e *echoAgent) work(ctx context.Context, text, traceparent string) (string, error) {
	if !sleepCtx(ctx.Done(), e.opts.Latency) {
		return "", context.Cause(ctx)
	}
	if e.opts.OnMessage != nil {
		return e.opts.OnMessage(ctx, text, traceparent)
	}
	return "echo: " + text, nil
}

func echoArtifact(reply, traceparent string) *a2a.Artifact {
	artifact := &a2a.Artifact{ID: a2a.NewArtifactID(), Name: "echo", Parts: []*a2a.Part{a2a.NewTextPart(reply)}}
	if traceparent != "" {
		artifact.SetMeta("traceparent", traceparent)
	}
	return artifact
}

func (e *echoAgent) Cancel(ctx context.Context, execCtx *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		yield(a2a.NewStatusUpdateEvent(execCtx, a2a.TaskStateCanceled, nil), nil)
	}
}

func messageText(m *a2a.Message) string {
	if m == nil {
		return ""
	}
	var texts []string
	for _, p := range m.Parts {
		if t := p.Text(); t != "" {
			texts = append(texts, t)
		}
	}
	return strings.Join(texts, "\n")
}

// quickSend answers the blocking SendMessage that starts a task, the call
// load tests make, with the task the SDK's executor would end with (same
// history, artifact and final status), built in one step. The SDK pipeline
// gob-copies the task several times per event and cost the mock about 2 ms
// of CPU per message, so at 500 messages/s the mock alone took a core of
// this 2-core machine and queued whatever ran beside it. Everything else
// (streaming, continuing a task, non-blocking sends, push configs, reads)
// stays with the SDK handler.
type quickSend struct {
	a2asrv.RequestHandler
	agent *echoAgent
	store *recentTasks
}

func (q quickSend) SendMessage(ctx context.Context, req *a2a.SendMessageRequest) (a2a.SendMessageResult, error) {
	if !quickSendable(req) {
		return q.RequestHandler.SendMessage(ctx, req)
	}
	q.agent.server.messages.Add(1)
	traceparent := ""
	if cc, ok := a2asrv.CallContextFrom(ctx); ok {
		if v, ok := cc.ServiceParams().Get("traceparent"); ok && len(v) > 0 {
			traceparent = v[0]
		}
	}
	task := &a2a.Task{ID: a2a.NewTaskID(), ContextID: req.Message.ContextID, History: []*a2a.Message{req.Message}}
	if task.ContextID == "" {
		task.ContextID = a2a.NewContextID()
	}
	reply, err := q.agent.work(ctx, messageText(req.Message), traceparent)
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	state := a2a.TaskStateCompleted
	if err != nil {
		state, reply = a2a.TaskStateFailed, err.Error()
	} else {
		task.Artifacts = []*a2a.Artifact{echoArtifact(reply, traceparent)}
	}
	now := time.Now()
	task.Status = a2a.TaskStatus{State: state, Timestamp: &now,
		Message: a2a.NewMessageForTask(a2a.MessageRoleAgent, task, a2a.NewTextPart(reply))}
	if _, err := q.store.Create(ctx, task); err != nil {
		return nil, err
	}
	return task, nil
}

// quickSendable reports whether req is a well-formed blocking message that
// starts a new task without push notifications.
func quickSendable(req *a2a.SendMessageRequest) bool {
	if req == nil || req.Message == nil || req.Message.ID == "" || len(req.Message.Parts) == 0 || req.Message.Role == "" {
		return false // the SDK words the error
	}
	if req.Message.TaskID != "" {
		return false
	}
	return req.Config == nil || !req.Config.ReturnImmediately && req.Config.PushConfig == nil
}
