package a2a

import (
	"context"
	"errors"
	"iter"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

// proxy implements a2asrv.RequestHandler by forwarding each call to the
// agent's upstream through an a2a-go client, after checking that the task
// belongs to the caller. a2a-go's JSON-RPC handlers (1.0, and 0.3 via
// a2av0) decode the client's request into these typed calls and the client
// encodes them in whatever version and binding the upstream card offers, so
// a 0.3 client can reach a 1.0 agent and the other way round. The request
// the upstream receives is re-encoded from what the gateway checked, so a
// body the gateway and upstream would parse differently cannot slip a
// different task id past the ownership check.
type proxy struct{}

var _ a2asrv.RequestHandler = proxy{}

// unary runs one non-streaming upstream call bounded by the agent timeout.
func unary[Req, Resp any](ctx context.Context, req Req, check func(*call, Req) error,
	do func(*upstream, context.Context, Req) (Resp, error)) (Resp, *call, error) {
	var zero Resp
	c, err := callFrom(ctx)
	if err != nil {
		return zero, nil, err
	}
	if err := check(c, req); err != nil {
		return zero, c, err
	}
	up, err := c.agent.upstream(ctx)
	if err != nil {
		return zero, c, c.record(err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	resp, err := do(up, c.outgoing(ctx), req)
	if err != nil {
		return zero, c, c.upstreamError(ctx, err)
	}
	return resp, c, nil
}

// stream relays upstream events as they arrive; when the client goes away
// the handler stops ranging, which closes the upstream stream.
//
// The stream's end (call.ends) goes on the upstream call's context only:
// a2a-go's handler drops a stream whose own context ends without writing
// anything, while an upstream call that fails is reported to the client as
// the stream's final JSON-RPC error event.
func stream[Req any](ctx context.Context, req Req, check func(*call, Req) error,
	do func(*upstream, context.Context, Req) iter.Seq2[a2a.Event, error]) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		c, err := callFrom(ctx)
		if err != nil {
			yield(nil, err)
			return
		}
		defer func() {
			c.mu.Lock()
			c.relayed = true
			c.mu.Unlock()
		}()
		ctx := ctx // the closure's own: the outer ctx must not collect a cancel per run
		if c.ends != nil {
			var cancel context.CancelCauseFunc
			ctx, cancel = context.WithCancelCause(ctx)
			defer cancel(nil)
			defer context.AfterFunc(c.ends, func() { cancel(endedBy(c.ends)) })()
		}
		if err := check(c, req); err != nil {
			yield(nil, err)
			return
		}
		up, err := c.agent.upstream(ctx)
		if err != nil {
			yield(nil, c.record(err))
			return
		}
		events := 0
		for ev, err := range do(up, c.outgoing(ctx), req) {
			if err != nil {
				yield(nil, c.upstreamError(ctx, err))
				return
			}
			events++
			if err := c.observe(ev); err != nil {
				yield(nil, err)
				return
			}
			if !yield(ev, nil) {
				// a2a-go stops taking events only when its request ended:
				// it could not write to the client.
				c.record(errClientClosed)
				return
			}
		}
		if events == 0 && ctx.Err() == nil {
			// A stream answers with at least one event; an empty one would
			// reach the client as success with nothing in it.
			yield(nil, c.record(errInvalidAgentResponse))
		}
	}
}

// endedBy is the error a stream whose context ends has its upstream call
// cancelled with: errStreamDuration at the deadline, the gateway's own cause
// (a shutdown) as a server error, and a plain cancel (the client connection
// done with) as is.
func endedBy(ends context.Context) error {
	switch cause := context.Cause(ends); {
	case errors.Is(cause, context.DeadlineExceeded):
		return errStreamDuration
	case errors.Is(cause, context.Canceled):
		return cause
	default:
		return a2a.NewError(a2a.ErrServerError, cause.Error())
	}
}

func (proxy) SendMessage(ctx context.Context, req *a2a.SendMessageRequest) (a2a.SendMessageResult, error) {
	res, c, err := unary(ctx, req, (*call).checkSend,
		func(u *upstream, ctx context.Context, r *a2a.SendMessageRequest) (a2a.SendMessageResult, error) {
			return u.client.SendMessage(ctx, r)
		})
	if err != nil {
		return nil, err
	}
	if err := c.observe(res); err != nil {
		return nil, err
	}
	return res, nil
}

func (proxy) SendStreamingMessage(ctx context.Context, req *a2a.SendMessageRequest) iter.Seq2[a2a.Event, error] {
	return stream(ctx, req, (*call).checkSend,
		func(u *upstream, ctx context.Context, r *a2a.SendMessageRequest) iter.Seq2[a2a.Event, error] {
			return u.client.SendStreamingMessage(ctx, r)
		})
}

func (proxy) SubscribeToTask(ctx context.Context, req *a2a.SubscribeToTaskRequest) iter.Seq2[a2a.Event, error] {
	return stream(ctx, req,
		func(c *call, r *a2a.SubscribeToTaskRequest) error { return c.checkTask(r.ID) },
		func(u *upstream, ctx context.Context, r *a2a.SubscribeToTaskRequest) iter.Seq2[a2a.Event, error] {
			return u.client.SubscribeToTask(ctx, r)
		})
}

func (proxy) GetTask(ctx context.Context, req *a2a.GetTaskRequest) (*a2a.Task, error) {
	task, c, err := unary(ctx, req,
		func(c *call, r *a2a.GetTaskRequest) error { return c.checkTask(r.ID) },
		func(u *upstream, ctx context.Context, r *a2a.GetTaskRequest) (*a2a.Task, error) {
			return u.client.GetTask(ctx, r)
		})
	if err != nil {
		return nil, err
	}
	if err := c.observe(task); err != nil {
		return nil, err
	}
	return task, nil
}

// ListTasks filters the upstream's page down to the caller's tasks. The
// upstream sees one caller (the gateway), so a page can come back shorter
// than asked; nextPageToken still walks the upstream's list.
func (proxy) ListTasks(ctx context.Context, req *a2a.ListTasksRequest) (*a2a.ListTasksResponse, error) {
	resp, c, err := unary(ctx, req,
		func(*call, *a2a.ListTasksRequest) error { return nil },
		func(u *upstream, ctx context.Context, r *a2a.ListTasksRequest) (*a2a.ListTasksResponse, error) {
			return u.client.ListTasks(ctx, r)
		})
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return nil, c.record(errInvalidAgentResponse)
	}
	out := *resp
	out.Tasks = make([]*a2a.Task, 0, len(resp.Tasks))
	for _, t := range resp.Tasks {
		if t != nil && c.owners.owns(c.taskRef(t.ID), c.keyID()) {
			out.Tasks = append(out.Tasks, t)
		}
	}
	// The upstream's total counts every key's tasks: passed on, it would
	// tell a key how many other keys have. The caller's own total would take
	// a walk over every page, so each page reports its own count, and
	// nextPageToken says whether more may follow.
	out.TotalSize = len(out.Tasks)
	return &out, nil
}

func (proxy) CancelTask(ctx context.Context, req *a2a.CancelTaskRequest) (*a2a.Task, error) {
	task, c, err := unary(ctx, req,
		func(c *call, r *a2a.CancelTaskRequest) error { return c.checkTask(r.ID) },
		func(u *upstream, ctx context.Context, r *a2a.CancelTaskRequest) (*a2a.Task, error) {
			return u.client.CancelTask(ctx, r)
		})
	if err != nil {
		return nil, err
	}
	if err := c.observe(task); err != nil {
		return nil, err
	}
	return task, nil
}

func (proxy) GetTaskPushConfig(ctx context.Context, req *a2a.GetTaskPushConfigRequest) (*a2a.PushConfig, error) {
	resp, _, err := unary(ctx, req,
		func(c *call, r *a2a.GetTaskPushConfigRequest) error { return c.checkPushTask(r.TaskID) },
		func(u *upstream, ctx context.Context, r *a2a.GetTaskPushConfigRequest) (*a2a.PushConfig, error) {
			return u.client.GetTaskPushConfig(ctx, r)
		})
	return resp, err
}

func (proxy) ListTaskPushConfigs(ctx context.Context, req *a2a.ListTaskPushConfigRequest) (*a2a.ListTaskPushConfigResponse, error) {
	resp, _, err := unary(ctx, req,
		func(c *call, r *a2a.ListTaskPushConfigRequest) error { return c.checkPushTask(r.TaskID) },
		func(u *upstream, ctx context.Context, r *a2a.ListTaskPushConfigRequest) (*a2a.ListTaskPushConfigResponse, error) {
			configs, err := u.client.ListTaskPushConfigs(ctx, r)
			if err != nil {
				return nil, err
			}
			return &a2a.ListTaskPushConfigResponse{Configs: configs}, nil
		})
	return resp, err
}

func (proxy) CreateTaskPushConfig(ctx context.Context, req *a2a.PushConfig) (*a2a.PushConfig, error) {
	resp, _, err := unary(ctx, req,
		func(c *call, r *a2a.PushConfig) error { return c.checkPushTask(r.TaskID) },
		func(u *upstream, ctx context.Context, r *a2a.PushConfig) (*a2a.PushConfig, error) {
			return u.client.CreateTaskPushConfig(ctx, r)
		})
	return resp, err
}

func (proxy) DeleteTaskPushConfig(ctx context.Context, req *a2a.DeleteTaskPushConfigRequest) error {
	_, _, err := unary(ctx, req,
		func(c *call, r *a2a.DeleteTaskPushConfigRequest) error { return c.checkPushTask(r.TaskID) },
		func(u *upstream, ctx context.Context, r *a2a.DeleteTaskPushConfigRequest) (struct{}, error) {
			return struct{}{}, u.client.DeleteTaskPushConfig(ctx, r)
		})
	return err
}

// GetExtendedAgentCard forwards to the upstream and rewrites the answer like
// the public card, so it too points at the gateway only.
func (proxy) GetExtendedAgentCard(ctx context.Context, req *a2a.GetExtendedAgentCardRequest) (*a2a.AgentCard, error) {
	card, c, err := unary(ctx, req,
		func(*call, *a2a.GetExtendedAgentCardRequest) error { return nil },
		func(u *upstream, ctx context.Context, r *a2a.GetExtendedAgentCardRequest) (*a2a.AgentCard, error) {
			return u.client.GetExtendedAgentCard(ctx, r)
		})
	if err != nil {
		return nil, err
	}
	if card == nil {
		return nil, c.record(errInvalidAgentResponse)
	}
	return c.serve(rewriteCard(card, c.endpoint, c.agent.cfg.PushNotifications)), nil
}
