package redisgov

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gw/switchboard/governance"
)

// Store keeps governance records in one Redis hash per kind and announces
// every change on a channel, so other replicas reload at once.
type Store struct{ s *Shared }

// Store returns the shared record store (governance.Store and governance.RecordLookup).
func (s *Shared) Store() *Store { return &Store{s: s} }

var (
	_ governance.RecordLookup = (*Store)(nil)
	_ governance.GuardedStore = (*Store)(nil)
)

type envelope struct {
	Data      json.RawMessage `json:"data"`
	UpdatedAt time.Time       `json:"updated_at"`
}

func (st *Store) hash(kind string) string { return st.s.prefix + "records:" + kind }

func (st *Store) channel() string { return st.s.prefix + "records" }

// names is the hash of kind's unique names: name → id of the record that
// claimed it. An entry is only a claim; the record decides (see putIfScript).
func (st *Store) names(kind string) string { return st.s.prefix + "names:" + kind }

func enveloped(data []byte) ([]byte, error) {
	raw := data
	if !json.Valid(raw) {
		// The index records hold a bare id; keep them valid JSON in the envelope.
		raw, _ = json.Marshal(string(data))
	}
	return json.Marshal(envelope{Data: raw, UpdatedAt: time.Now().UTC()})
}

// PutRecord implements governance.Store.
func (st *Store) PutRecord(ctx context.Context, kind, id string, data []byte) error {
	v, err := enveloped(data)
	if err != nil {
		return err
	}
	_, err = st.s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, st.hash(kind), id, v)
		p.Publish(ctx, st.channel(), st.s.replica)
		return nil
	})
	return err
}

// PutRecordIf implements governance.GuardedStore.
func (st *Store) PutRecordIf(ctx context.Context, kind, id string, data []byte, guard governance.Guard) error {
	v, err := enveloped(data)
	if err != nil {
		return err
	}
	// An unused parent hash is still named, as the script declares all its keys.
	parentKind := guard.Parent.Kind
	if parentKind == "" {
		parentKind = kind
	}
	verdict, err := putIfScript.Run(ctx, st.s.client, []string{st.hash(kind), st.names(kind), st.hash(parentKind)},
		id, v, int(guard.Pre), guard.Name, st.channel(), st.s.replica, guard.Parent.ID).Text()
	if err != nil {
		return err
	}
	switch verdict {
	case "ok":
		return nil
	case "exists":
		return governance.ErrRecordExists
	case "gone":
		return governance.ErrRecordGone
	case "taken":
		return governance.ErrNameTaken
	case "orphan":
		return governance.ErrParentGone
	}
	return fmt.Errorf("redisgov: unexpected answer %q from the record script", verdict)
}

// DeleteRecord implements governance.Store. The record's name claim goes
// with it, so the names hash does not keep every name ever used.
func (st *Store) DeleteRecord(ctx context.Context, kind, id string) error {
	return st.DeleteRecordIf(ctx, kind, id, governance.Reference{})
}

// DeleteRecordIf implements governance.GuardedStore.
func (st *Store) DeleteRecordIf(ctx context.Context, kind, id string, ref governance.Reference) error {
	users := kind
	if ref.Kind != "" {
		users = ref.Kind
	}
	answer, err := deleteScript.Run(ctx, st.s.client, []string{st.hash(kind), st.names(kind), st.hash(users)},
		id, st.channel(), st.s.replica, ref.Field).StringSlice()
	if err != nil {
		return err
	}
	if len(answer) > 0 && answer[0] == "in_use" {
		return &governance.RecordInUseError{Names: answer[1:]}
	}
	return nil
}

// ListRecords implements governance.Store.
func (st *Store) ListRecords(ctx context.Context, kind string) ([]governance.Record, error) {
	all, err := st.s.client.HGetAll(ctx, st.hash(kind)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]governance.Record, 0, len(all))
	for id, v := range all {
		var e envelope
		if err := json.Unmarshal([]byte(v), &e); err != nil {
			st.s.log.Warn("skipping unreadable record in redis", "kind", kind, "id", id)
			continue
		}
		out = append(out, governance.Record{Kind: kind, ID: id, Data: unwrap(e.Data), UpdatedAt: e.UpdatedAt})
	}
	return out, nil
}

// GetRecord implements governance.RecordLookup.
func (st *Store) GetRecord(ctx context.Context, kind, id string) ([]byte, bool, error) {
	v, err := st.s.client.HGet(ctx, st.hash(kind), id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var e envelope
	if err := json.Unmarshal([]byte(v), &e); err != nil {
		return nil, false, err
	}
	return unwrap(e.Data), true, nil
}

func unwrap(raw json.RawMessage) []byte {
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return []byte(s)
	}
	return raw
}

// Watch calls reload whenever another replica changes a record, after every
// (re)subscription (changes may have been missed meanwhile) and every
// reloadEvery as a backstop. It returns when ctx ends or Close is called.
func (st *Store) Watch(ctx context.Context, reload func(context.Context) error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-st.s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	ps := st.s.client.Subscribe(ctx, st.channel())
	defer func() { _ = ps.Close() }()
	msgs := make(chan any)
	go func() {
		defer close(msgs)
		for {
			m, err := ps.Receive(ctx)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				// go-redis reconnects on the next Receive; don't spin meanwhile.
				select {
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
					return
				}
				continue
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	backstop := time.NewTicker(reloadEvery)
	defer backstop.Stop()
	do := func() {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		defer rcancel()
		if err := reload(rctx); err != nil && ctx.Err() == nil {
			st.s.fail("records_reload", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-backstop.C:
			do()
		case m, ok := <-msgs:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *redis.Subscription:
				do()
			case *redis.Message:
				if m.Payload != st.s.replica {
					do()
				}
			}
		}
	}
}
