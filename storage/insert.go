package storage

import (
	"context"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// insert runs one batch INSERT on ClickHouse: query names the table and
// columns, fill appends the rows.
//
// The batch never sees ctx itself. clickhouse-go's Batch.Send watches its
// context on a goroutine that closes the TCP connection when the context is
// done, and stops that goroutine without waiting for it; a caller that
// cancels its context as soon as Send returns (every context.WithTimeout
// does) can have the goroutine pick the cancellation, not the stop, and
// close a connection already back in the pool. The next query on it then
// fails with "use of closed network connection". The batch gets an
// insertContext instead, whose Done can close only while the insert runs.
func insert(ctx context.Context, conn driver.Conn, query string, fill func(driver.Batch) error) error {
	ictx := newInsertContext(ctx)
	defer ictx.release()
	batch, err := conn.PrepareBatch(ictx, query)
	if err != nil {
		return err
	}
	defer batch.Abort()
	if err := fill(batch); err != nil {
		return err
	}
	return batch.Send()
}

// insertContext follows its parent's cancellation and deadline until
// release, and is never done after it.
type insertContext struct {
	context.Context // the parent's values, without its cancellation
	parent          context.Context
	done            chan struct{}
	once            sync.Once
	err             error // set before done is closed
	stop            func() bool
}

func newInsertContext(parent context.Context) *insertContext {
	c := &insertContext{Context: context.WithoutCancel(parent), parent: parent, done: make(chan struct{})}
	c.stop = context.AfterFunc(parent, func() {
		c.once.Do(func() {
			c.err = parent.Err()
			close(c.done)
		})
	})
	return c
}

func (c *insertContext) Deadline() (time.Time, bool) { return c.parent.Deadline() }

func (c *insertContext) Done() <-chan struct{} { return c.done }

func (c *insertContext) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// release ends the link to the parent: from now on the context is never done.
func (c *insertContext) release() {
	c.stop()
	c.once.Do(func() {})
}
