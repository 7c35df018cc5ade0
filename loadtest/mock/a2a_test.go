package mock

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"
)

func startA2A(t *testing.T, opts A2AOptions) *A2AServer {
	t.Helper()
	s, err := StartA2A("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// a2aClients builds one client per protocol version the mock serves.
func a2aClients(t *testing.T, s *A2AServer) map[string]*a2aclient.Client {
	t.Helper()
	httpClient := &http.Client{Timeout: 10 * time.Second}
	card, err := agentcard.NewResolver(httpClient).Resolve(testCtx(t), s.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, iface := range card.SupportedInterfaces {
		if iface.URL != s.URL {
			t.Fatalf("card interface URL %q, want %q", iface.URL, s.URL)
		}
	}
	v1, err := a2aclient.NewFromCard(testCtx(t), card, a2aclient.WithJSONRPCTransport(httpClient))
	if err != nil {
		t.Fatal(err)
	}
	legacyCard, err := (&agentcard.Resolver{Client: httpClient, CardParser: a2av0.NewAgentCardParser()}).Resolve(testCtx(t), s.URL)
	if err != nil {
		t.Fatal(err)
	}
	v0, err := a2aclient.NewFromEndpoints(testCtx(t),
		[]*a2a.AgentInterface{{URL: legacyCard.SupportedInterfaces[0].URL, ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: a2av0.Version}},
		a2aclient.WithDefaultsDisabled(),
		a2av0.WithJSONRPCTransport(a2av0.JSONRPCTransportConfig{Client: httpClient}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v1.Destroy(); _ = v0.Destroy() })
	return map[string]*a2aclient.Client{"1.0": v1, "0.3": v0}
}

func userMessage(text string) *a2a.SendMessageRequest {
	return &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart(text))}
}

func artifactText(task *a2a.Task) string {
	if len(task.Artifacts) == 0 || len(task.Artifacts[0].Parts) == 0 {
		return ""
	}
	return task.Artifacts[0].Parts[0].Text()
}

func TestA2ASendGetListBothVersions(t *testing.T) {
	t.Parallel()
	s := startA2A(t, A2AOptions{})
	for version, c := range a2aClients(t, s) {
		t.Run(version, func(t *testing.T) {
			ctx := a2aclient.AttachServiceParams(testCtx(t), a2aclient.ServiceParams{"traceparent": {testTraceparent}})
			res, err := c.SendMessage(ctx, userMessage("hello "+version))
			if err != nil {
				t.Fatal(err)
			}
			task, ok := res.(*a2a.Task)
			if !ok {
				t.Fatalf("result %T, want a task", res)
			}
			if task.Status.State != a2a.TaskStateCompleted || artifactText(task) != "echo: hello "+version {
				t.Fatalf("task %s %q", task.Status.State, artifactText(task))
			}
			if task.Artifacts[0].Metadata["traceparent"] != testTraceparent {
				t.Fatalf("artifact metadata %v", task.Artifacts[0].Metadata)
			}
			got, err := c.GetTask(testCtx(t), &a2a.GetTaskRequest{ID: task.ID})
			if err != nil || got.Status.State != a2a.TaskStateCompleted || artifactText(got) != artifactText(task) {
				t.Fatalf("GetTask: %v %+v", err, got)
			}
		})
	}
	list, err := a2aClients(t, s)["1.0"].ListTasks(testCtx(t), &a2a.ListTasksRequest{})
	if err != nil || len(list.Tasks) != 2 {
		t.Fatalf("ListTasks: %v %+v", err, list)
	}
	if s.LastTraceparent() != testTraceparent || s.Messages() != 2 {
		t.Fatalf("LastTraceparent %q Messages %d", s.LastTraceparent(), s.Messages())
	}
}

func TestA2AStreamEmitsLifecycle(t *testing.T) {
	t.Parallel()
	s := startA2A(t, A2AOptions{})
	for version, c := range a2aClients(t, s) {
		t.Run(version, func(t *testing.T) {
			var states []a2a.TaskState
			var artifact string
			for ev, err := range c.SendStreamingMessage(testCtx(t), userMessage("stream me")) {
				if err != nil {
					t.Fatal(err)
				}
				switch e := ev.(type) {
				case *a2a.Task:
					states = append(states, e.Status.State)
				case *a2a.TaskStatusUpdateEvent:
					states = append(states, e.Status.State)
				case *a2a.TaskArtifactUpdateEvent:
					artifact = e.Artifact.Parts[0].Text()
				}
			}
			want := []a2a.TaskState{a2a.TaskStateSubmitted, a2a.TaskStateWorking, a2a.TaskStateCompleted}
			if len(states) != len(want) || states[0] != want[0] || states[1] != want[1] || states[2] != want[2] {
				t.Fatalf("states %v, want %v", states, want)
			}
			if artifact != "echo: stream me" {
				t.Fatalf("artifact %q", artifact)
			}
		})
	}
}

func TestA2ACancelRunningTask(t *testing.T) {
	t.Parallel()
	s := startA2A(t, A2AOptions{Latency: time.Minute})
	c := a2aClients(t, s)["1.0"]
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var taskID a2a.TaskID
	for ev, err := range c.SendStreamingMessage(ctx, userMessage("long job")) {
		if err != nil {
			t.Fatal(err)
		}
		if task, ok := ev.(*a2a.Task); ok {
			taskID = task.ID
			break
		}
	}
	if taskID == "" {
		t.Fatal("no task event")
	}
	task, err := c.CancelTask(testCtx(t), &a2a.CancelTaskRequest{ID: taskID})
	if err != nil {
		t.Fatal(err)
	}
	if task.Status.State != a2a.TaskStateCanceled {
		t.Fatalf("state %s", task.Status.State)
	}
}

func TestA2AOnMessageSeesTraceparent(t *testing.T) {
	t.Parallel()
	s := startA2A(t, A2AOptions{OnMessage: func(ctx context.Context, text, traceparent string) (string, error) {
		return text + " via " + traceparent, nil
	}})
	c := a2aClients(t, s)["1.0"]
	ctx := a2aclient.AttachServiceParams(testCtx(t), a2aclient.ServiceParams{"traceparent": {otherTraceparent}})
	res, err := c.SendMessage(ctx, userMessage("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if got := artifactText(res.(*a2a.Task)); got != "hi via "+otherTraceparent {
		t.Fatalf("artifact %q", got)
	}
}

// TestA2ASendEndsLikeTheSDK runs the same messages through the mock's quick
// blocking send and through the SDK's executor (streaming), and compares the
// tasks they leave in the store.
func TestA2ASendEndsLikeTheSDK(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		onMessage func(context.Context, string, string) (string, error)
		state     a2a.TaskState
		reply     string
		artifacts int
	}{
		{"completed", nil, a2a.TaskStateCompleted, "echo: hi", 1},
		{"failed", func(context.Context, string, string) (string, error) { return "", errors.New("no luck") },
			a2a.TaskStateFailed, "no luck", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startA2A(t, A2AOptions{OnMessage: tt.onMessage})
			c := a2aClients(t, s)["1.0"]
			res, err := c.SendMessage(testCtx(t), userMessage("hi"))
			if err != nil {
				t.Fatal(err)
			}
			var streamed a2a.TaskID
			for ev, err := range c.SendStreamingMessage(testCtx(t), userMessage("hi")) {
				if err != nil {
					t.Fatal(err)
				}
				streamed = ev.TaskInfo().TaskID
			}
			for _, id := range []a2a.TaskID{res.(*a2a.Task).ID, streamed} {
				task, err := c.GetTask(testCtx(t), &a2a.GetTaskRequest{ID: id})
				if err != nil {
					t.Fatal(err)
				}
				st := task.Status
				if st.State != tt.state || st.Message == nil || st.Message.Parts[0].Text() != tt.reply ||
					st.Message.TaskID != task.ID || st.Message.ContextID != task.ContextID || st.Timestamp == nil ||
					len(task.Artifacts) != tt.artifacts || len(task.History) != 1 || task.History[0].Parts[0].Text() != "hi" {
					t.Fatalf("task %s: %+v", id, task)
				}
			}
		})
	}
}
