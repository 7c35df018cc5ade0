package mock

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv/taskstore"
)

// maxStoredTasks bounds the mock's memory: enough for a test or a person to
// read a task back, small enough that a load test's heap stays flat.
const maxStoredTasks = 4096

// recentTasks is the mock's task store. The SDK's in-memory store keeps every
// task for the life of the process and copies each one through a new gob
// codec on every call; under a load test that made the mock's heap, its GC
// work and its CPU per message grow run after run, and the added latency
// measured through any proxy in front of it grew with them. This store keeps
// the newest maxStoredTasks tasks as JSON, so each read is an independent
// copy and a write costs one encoding.
type recentTasks struct {
	mu    sync.Mutex
	tasks map[a2a.TaskID]*recentTask
	ring  []a2a.TaskID // creation order; the slot at next is the oldest
	next  int
	seq   int64 // orders List newest-updated first, like the SDK store
}

type recentTask struct {
	raw       []byte
	version   taskstore.TaskVersion
	updated   int64
	contextID string
	state     a2a.TaskState
	statusAt  time.Time // zero when the status has no timestamp
}

var _ taskstore.Store = (*recentTasks)(nil)

func newRecentTasks(capacity int) *recentTasks {
	return &recentTasks{tasks: make(map[a2a.TaskID]*recentTask, capacity), ring: make([]a2a.TaskID, capacity)}
}

// Create implements taskstore.Store.
func (s *recentTasks) Create(_ context.Context, task *a2a.Task) (taskstore.TaskVersion, error) {
	if task == nil || task.ID == "" {
		return taskstore.TaskVersionMissing, fmt.Errorf("mock: task without an ID: %w", a2a.ErrInvalidParams)
	}
	raw, err := json.Marshal(task)
	if err != nil {
		return taskstore.TaskVersionMissing, fmt.Errorf("mock: encode task: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[task.ID]; ok {
		return taskstore.TaskVersionMissing, taskstore.ErrTaskAlreadyExists
	}
	if oldest := s.ring[s.next]; oldest != "" {
		delete(s.tasks, oldest)
	}
	s.ring[s.next] = task.ID
	s.next = (s.next + 1) % len(s.ring)
	s.seq++
	s.tasks[task.ID] = newRecentTask(raw, 1, s.seq, task)
	return 1, nil
}

// Update implements taskstore.Store.
func (s *recentTasks) Update(_ context.Context, req *taskstore.UpdateRequest) (taskstore.TaskVersion, error) {
	if req == nil || req.Task == nil {
		return taskstore.TaskVersionMissing, fmt.Errorf("mock: update without a task: %w", a2a.ErrInvalidParams)
	}
	raw, err := json.Marshal(req.Task)
	if err != nil {
		return taskstore.TaskVersionMissing, fmt.Errorf("mock: encode task: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	stored, ok := s.tasks[req.Task.ID]
	if !ok {
		return taskstore.TaskVersionMissing, a2a.ErrTaskNotFound
	}
	if req.PrevVersion != taskstore.TaskVersionMissing && stored.version != req.PrevVersion {
		return taskstore.TaskVersionMissing, taskstore.ErrConcurrentModification
	}
	s.seq++
	// A new value rather than a write through stored: List reads entries
	// after releasing the lock.
	s.tasks[req.Task.ID] = newRecentTask(raw, stored.version+1, s.seq, req.Task)
	return stored.version + 1, nil
}

// Get implements taskstore.Store.
func (s *recentTasks) Get(_ context.Context, id a2a.TaskID) (*taskstore.StoredTask, error) {
	s.mu.Lock()
	stored, ok := s.tasks[id]
	s.mu.Unlock()
	if !ok {
		return nil, a2a.ErrTaskNotFound
	}
	task, err := stored.decode()
	if err != nil {
		return nil, err
	}
	return &taskstore.StoredTask{Task: task, Version: stored.version}, nil
}

// List implements taskstore.Store. The page token is the offset of the
// page's first task in the filtered, newest-first order.
func (s *recentTasks) List(_ context.Context, req *a2a.ListTasksRequest) (*a2a.ListTasksResponse, error) {
	const defaultPageSize, maxPageSize, defaultHistory = 50, 100, 100
	pageSize := req.PageSize
	if pageSize == 0 {
		pageSize = defaultPageSize
	}
	if pageSize < 1 || pageSize > maxPageSize {
		return nil, fmt.Errorf("page size must be between 1 and %d, got %d: %w", maxPageSize, pageSize, a2a.ErrInvalidRequest)
	}
	offset := 0
	if req.PageToken != "" {
		n, err := strconv.Atoi(req.PageToken)
		if err != nil || n < 0 {
			return nil, a2a.ErrParseError
		}
		offset = n
	}
	s.mu.Lock()
	matched := make([]*recentTask, 0, len(s.tasks))
	for _, t := range s.tasks {
		if t.matches(req) {
			matched = append(matched, t)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(matched, func(a, b *recentTask) int { return int(b.updated - a.updated) })

	res := &a2a.ListTasksResponse{Tasks: []*a2a.Task{}, TotalSize: len(matched), PageSize: pageSize}
	page := matched[min(offset, len(matched)):]
	if len(page) > pageSize {
		page = page[:pageSize]
		res.NextPageToken = strconv.Itoa(offset + pageSize)
	}
	history := defaultHistory
	if req.HistoryLength != nil {
		history = *req.HistoryLength
	}
	for _, stored := range page {
		task, err := stored.decode()
		if err != nil {
			return nil, err
		}
		if history >= 0 && len(task.History) > history {
			task.History = task.History[len(task.History)-history:]
		}
		if !req.IncludeArtifacts {
			task.Artifacts = nil
		}
		res.Tasks = append(res.Tasks, task)
	}
	return res, nil
}

func newRecentTask(raw []byte, version taskstore.TaskVersion, seq int64, task *a2a.Task) *recentTask {
	t := &recentTask{raw: raw, version: version, updated: seq, contextID: task.ContextID, state: task.Status.State}
	if task.Status.Timestamp != nil {
		t.statusAt = *task.Status.Timestamp
	}
	return t
}

// matches applies the SDK store's filters: a task without a status
// timestamp passes a timestamp filter.
func (t *recentTask) matches(req *a2a.ListTasksRequest) bool {
	switch {
	case req.ContextID != "" && t.contextID != req.ContextID:
		return false
	case req.Status != a2a.TaskStateUnspecified && t.state != req.Status:
		return false
	case req.StatusTimestampAfter != nil && !t.statusAt.IsZero() && t.statusAt.Before(*req.StatusTimestampAfter):
		return false
	}
	return true
}

func (t *recentTask) decode() (*a2a.Task, error) {
	var task a2a.Task
	if err := json.Unmarshal(t.raw, &task); err != nil {
		return nil, fmt.Errorf("mock: decode task: %w", err)
	}
	return &task, nil
}
