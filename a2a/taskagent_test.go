package a2a_test

import (
	"bytes"
	"context"
	"io"
	"iter"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/a2aproject/a2a-go/v2/a2asrv/push"
)

// taskAgent is a real a2a-go agent with the features the echo mock lacks:
// a first message asks for input (input-required), the follow-up on the
// same task completes it; it keeps push notification configs (and sends
// them, to private addresses too) and has an extended card with one more
// skill. It records every request body it receives.
type taskAgent struct {
	URL string

	mu     sync.Mutex
	bodies []string
}

// extendedSkill is the skill only the extended card lists.
const extendedSkill = "members-only"

func startTaskAgent(t *testing.T) *taskAgent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ta := &taskAgent{URL: "http://" + ln.Addr().String()}
	card := &a2a.AgentCard{
		Name: "task-agent", Description: "asks for input, then answers", Version: "1.0.0",
		SupportedInterfaces: []*a2a.AgentInterface{
			{URL: ta.URL, ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: a2a.Version},
			{URL: ta.URL, ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: a2av0.Version},
		},
		Capabilities:       a2a.AgentCapabilities{Streaming: true, PushNotifications: true, ExtendedAgentCard: true},
		DefaultInputModes:  []string{"text/plain"},
		DefaultOutputModes: []string{"text/plain"},
		Skills:             []a2a.AgentSkill{{ID: "ask", Name: "Ask", Description: "asks a question", Tags: []string{"test"}}},
	}
	extended := *card
	extended.Skills = append(extended.Skills, a2a.AgentSkill{ID: extendedSkill, Name: "Members", Description: "for callers it knows", Tags: []string{"test"}})
	handler := a2asrv.NewHandler(askingExecutor{},
		a2asrv.WithPushNotifications(push.NewInMemoryStore(), push.NewHTTPPushSender(&push.HTTPSenderConfig{AllowPrivateNetworks: true})),
		a2asrv.WithExtendedAgentCard(&extended))
	v1, v0 := a2asrv.NewJSONRPCHandler(handler), a2av0.NewJSONRPCHandler(handler)
	mux := http.NewServeMux()
	mux.Handle("GET "+a2asrv.WellKnownAgentCardPath, a2asrv.NewAgentCardHandler(a2av0.NewStaticAgentCardProducer(card)))
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		ta.mu.Lock()
		ta.bodies = append(ta.bodies, string(body))
		ta.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		if strings.HasPrefix(r.Header.Get(a2a.SvcParamVersion), "1") {
			v1.ServeHTTP(w, r)
			return
		}
		v0.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ta
}

// received reports whether any request the agent received contains s.
func (ta *taskAgent) received(s string) bool {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	for _, b := range ta.bodies {
		if strings.Contains(b, s) {
			return true
		}
	}
	return false
}

type askingExecutor struct{}

func (askingExecutor) Execute(_ context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		if ec.StoredTask == nil {
			if yield(a2a.NewSubmittedTask(ec, ec.Message), nil) {
				question := a2a.NewMessageForTask(a2a.MessageRoleAgent, ec, a2a.NewTextPart("which city?"))
				yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateInputRequired, question), nil)
			}
			return
		}
		if yield(a2a.NewArtifactEvent(ec, a2a.NewTextPart("sunny in "+ec.Message.Parts[0].Text())), nil) {
			yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateCompleted, nil), nil)
		}
	}
}

func (askingExecutor) Cancel(_ context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateCanceled, nil), nil)
	}
}
