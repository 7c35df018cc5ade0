package mock

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv/taskstore"
)

func storedTaskFixture(id, contextID string, state a2a.TaskState) *a2a.Task {
	now := time.Now()
	return &a2a.Task{ID: a2a.TaskID(id), ContextID: contextID, Status: a2a.TaskStatus{State: state, Timestamp: &now},
		History: []*a2a.Message{a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("hi "+id))}}
}

func TestRecentTasksKeepsOnlyTheNewest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newRecentTasks(2)
	for _, id := range []string{"a", "b", "c"} {
		if _, err := s.Create(ctx, storedTaskFixture(id, "ctx", a2a.TaskStateCompleted)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		id   a2a.TaskID
		want error
	}{
		{"a", a2a.ErrTaskNotFound},
		{"b", nil},
		{"c", nil},
	}
	for _, tt := range tests {
		got, err := s.Get(ctx, tt.id)
		if !errors.Is(err, tt.want) {
			t.Fatalf("Get(%s): %v, want %v", tt.id, err, tt.want)
		}
		if err == nil && (got.Task.ID != tt.id || got.Task.History[0].Parts[0].Text() != "hi "+string(tt.id)) {
			t.Fatalf("Get(%s): %+v", tt.id, got.Task)
		}
	}
	if len(s.tasks) != 2 {
		t.Fatalf("%d tasks stored, want 2", len(s.tasks))
	}
}

func TestRecentTasksUpdateAndCopies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newRecentTasks(8)
	task := storedTaskFixture("t", "ctx", a2a.TaskStateSubmitted)
	v, err := s.Create(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, task); !errors.Is(err, taskstore.ErrTaskAlreadyExists) {
		t.Fatalf("second Create: %v", err)
	}
	task.Status.State = a2a.TaskStateCompleted
	tests := []struct {
		name string
		req  *taskstore.UpdateRequest
		want error
	}{
		{"stale version", &taskstore.UpdateRequest{Task: task, PrevVersion: v + 1}, taskstore.ErrConcurrentModification},
		{"current version", &taskstore.UpdateRequest{Task: task, PrevVersion: v}, nil},
		{"unknown task", &taskstore.UpdateRequest{Task: storedTaskFixture("x", "ctx", a2a.TaskStateWorking)}, a2a.ErrTaskNotFound},
	}
	for _, tt := range tests {
		if _, err := s.Update(ctx, tt.req); !errors.Is(err, tt.want) {
			t.Fatalf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	got, err := s.Get(ctx, "t")
	if err != nil || got.Version != v+1 || got.Task.Status.State != a2a.TaskStateCompleted {
		t.Fatalf("Get: %v %+v", err, got)
	}
	got.Task.History[0].Parts[0] = a2a.NewTextPart("changed")
	again, _ := s.Get(ctx, "t")
	if again.Task.History[0].Parts[0].Text() != "hi t" {
		t.Fatal("Get returned a task sharing memory with the store")
	}
}

func TestRecentTasksList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newRecentTasks(16)
	for _, f := range []struct {
		id, contextID string
		state         a2a.TaskState
	}{
		{"1", "c1", a2a.TaskStateCompleted}, {"2", "c1", a2a.TaskStateFailed}, {"3", "c2", a2a.TaskStateCompleted},
	} {
		if _, err := s.Create(ctx, storedTaskFixture(f.id, f.contextID, f.state)); err != nil {
			t.Fatal(err)
		}
	}
	zero := 0
	tests := []struct {
		name      string
		req       a2a.ListTasksRequest
		wantIDs   []a2a.TaskID
		wantTotal int
		wantNext  string
	}{
		{"all newest first", a2a.ListTasksRequest{}, []a2a.TaskID{"3", "2", "1"}, 3, ""},
		{"by context", a2a.ListTasksRequest{ContextID: "c1"}, []a2a.TaskID{"2", "1"}, 2, ""},
		{"by state", a2a.ListTasksRequest{Status: a2a.TaskStateCompleted}, []a2a.TaskID{"3", "1"}, 2, ""},
		{"first page", a2a.ListTasksRequest{PageSize: 2}, []a2a.TaskID{"3", "2"}, 3, "2"},
		{"second page", a2a.ListTasksRequest{PageSize: 2, PageToken: "2"}, []a2a.TaskID{"1"}, 3, ""},
		{"no history", a2a.ListTasksRequest{ContextID: "c2", HistoryLength: &zero}, []a2a.TaskID{"3"}, 1, ""},
	}
	for _, tt := range tests {
		res, err := s.List(ctx, &tt.req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var ids []a2a.TaskID
		for _, task := range res.Tasks {
			ids = append(ids, task.ID)
			if tt.req.HistoryLength != nil && len(task.History) != 0 {
				t.Fatalf("%s: history %v kept", tt.name, task.History)
			}
		}
		if len(ids) != len(tt.wantIDs) || res.TotalSize != tt.wantTotal || res.NextPageToken != tt.wantNext {
			t.Fatalf("%s: ids %v total %d next %q", tt.name, ids, res.TotalSize, res.NextPageToken)
		}
		for i := range ids {
			if ids[i] != tt.wantIDs[i] {
				t.Fatalf("%s: ids %v, want %v", tt.name, ids, tt.wantIDs)
			}
		}
	}
	for _, bad := range []a2a.ListTasksRequest{{PageSize: 101}, {PageToken: "x"}} {
		if _, err := s.List(ctx, &bad); err == nil {
			t.Fatalf("List(%+v) accepted", bad)
		}
	}
}
