// Package redisgov shares governance between gateway replicas through one
// Redis: rate, concurrency and spend counters (governance.Counters), the
// runtime keys and teams created through /admin (governance.Store, with a
// change notification and a lookup by key hash), and A2A task ownership.
//
// Exactness. Every counter operation is one Lua script, so a limit holds
// across replicas exactly as MemoryCounters holds it within one process;
// nothing is cached locally except counter handles. A Governor's Reserve
// and Settle each run all their counter operations in one script
// (governance.BatchCounters), so a decision costs two round trips however
// many limits apply. The bounds that remain:
//   - Rate buckets refill by the caller's clock, as in memory: replicas whose
//     clocks differ by d refill up to d early or late (keep NTP running).
//   - A replica that dies holding concurrency slots or budget holds keeps
//     them until its lease (leaseTTL, in Redis's clock) lapses; then the next
//     Acquire or Hold drops them. A live replica cut off from Redis for longer
//     than leaseTTL may see its slots and holds dropped by others (so up to
//     its in-flight count is over-admitted) and rewrites them from its own
//     books once it reaches Redis again.
//   - A call that fails or times out is never retried, because its script
//     may have run and a retry could count twice. A failed Release, Hold or
//     Settle (alone or in a batch) leaves this replica's slots or holds wrong in Redis until the
//     next heartbeat rewrites them from its books (within leaseTTL/3). The
//     actual spend of a Settle that failed is not counted (it is still in the
//     request's span); a Give that failed leaves a token bucket short by its
//     units until it refills.
//   - fail_mode open admits while Redis does not answer: no limit and no
//     budget is enforced for those requests, and only the spend of their
//     settles that reach Redis is counted.
//   - Spend in Redis is the truth: SetSpent (start-up rebuild from storage)
//     only seeds a counter Redis does not have for the period. Run Redis with
//     persistence (appendonly) or a flush forgets the current periods' spend
//     until replicas restart and seed it again from storage.
package redisgov

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gw/switchboard/governance"
)

const (
	// leaseTTL is how long a replica's slots and holds outlive its last
	// heartbeat; the heartbeat runs every leaseTTL/3.
	leaseTTL = 15 * time.Second
	// logEvery rate-limits the error log per operation.
	logEvery = 10 * time.Second
	// reloadEvery is a backstop for change notifications lost while the
	// subscription reconnects.
	reloadEvery = 30 * time.Second
)

// Shared is one connection to the shared Redis and everything built on it.
type Shared struct {
	client   *redis.Client
	log      *slog.Logger
	prefix   string
	timeout  time.Duration
	failOpen bool
	replica  string // random per process: a restarted replica owns nothing
	leaseKey string
	errors   *prometheus.CounterVec
	lastLog  sync.Map // op → *atomic.Int64 (unix nanos of the last log line)
	counters *Counters

	stop    chan struct{}
	done    sync.WaitGroup
	closing sync.Once
}

// Open connects to cfg.Addr, checks that Redis answers, starts the replica
// lease heartbeat and registers switchboard_governance_redis_errors_total
// on reg (nil: not registered).
func Open(ctx context.Context, cfg governance.RedisConfig, log *slog.Logger, reg prometheus.Registerer) (*Shared, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("governance.%w", err)
	}
	cfg = cfg.WithDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_governance_redis_errors_total",
		Help: "Redis calls of shared governance that failed or timed out, by operation.",
	}, []string{"op"})
	if reg != nil {
		if err := reg.Register(errs); err != nil {
			return nil, fmt.Errorf("redisgov metrics: %w", err)
		}
	}
	s := &Shared{
		client: redis.NewClient(&redis.Options{
			Addr: cfg.Addr, Username: cfg.Username, Password: cfg.Password, DB: cfg.DB,
			DialTimeout: max(cfg.Timeout, time.Second), ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout,
			ContextTimeoutEnabled: true, PoolTimeout: cfg.Timeout, DisableIdentity: true,
			PoolSize: 64, MinIdleConns: 4,
		}),
		log:      log,
		prefix:   cfg.Prefix,
		timeout:  cfg.Timeout,
		failOpen: cfg.FailMode == governance.FailOpen,
		replica:  hex.EncodeToString(id),
		errors:   errs,
		stop:     make(chan struct{}),
	}
	s.leaseKey = s.prefix + "replicas"
	s.counters = newCounters(s)
	if err := s.client.Ping(ctx).Err(); err != nil {
		_ = s.client.Close()
		return nil, fmt.Errorf("redis at %s: %w", cfg.Addr, err)
	}
	if err := s.renewLease(ctx); err != nil {
		_ = s.client.Close()
		return nil, fmt.Errorf("redis at %s: %w", cfg.Addr, err)
	}
	s.done.Add(1)
	go s.heartbeat()
	return s, nil
}

// Counters is the shared governance.Counters.
func (s *Shared) Counters() *Counters { return s.counters }

// Ping reports whether Redis answers (for /readyz).
func (s *Shared) Ping(ctx context.Context) error { return s.client.Ping(ctx).Err() }

// Close stops the heartbeat, gives up this replica's lease (so its slots
// and holds are dropped at once) and closes the connections.
func (s *Shared) Close(ctx context.Context) error {
	var err error
	s.closing.Do(func() {
		close(s.stop)
		s.done.Wait()
		err = errors.Join(s.client.ZRem(ctx, s.leaseKey, s.replica).Err(), s.client.Close())
	})
	return err
}

func (s *Shared) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

func (s *Shared) renewLease(ctx context.Context) error {
	return leaseScript.Run(ctx, s.client, []string{s.leaseKey}, s.replica, leaseTTL.Milliseconds()).Err()
}

// heartbeat renews the lease and repairs what failed calls left wrong;
// after a lapse every slot and hold is rewritten, since others may have
// dropped them.
func (s *Shared) heartbeat() {
	defer s.done.Done()
	t := time.NewTicker(leaseTTL / 3)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), leaseTTL/3)
		if err := s.renewLease(ctx); err != nil {
			s.fail("lease", err)
		} else {
			s.counters.repair(ctx, time.Since(lastOK) > leaseTTL)
			lastOK = time.Now()
		}
		cancel()
	}
}

// fail counts a failed call and logs it at most once per logEvery per op.
func (s *Shared) fail(op string, err error) {
	s.errors.WithLabelValues(op).Inc()
	if err == nil {
		err = errors.New("unexpected reply")
	}
	v, _ := s.lastLog.LoadOrStore(op, new(atomic.Int64))
	last := v.(*atomic.Int64)
	now := time.Now().UnixNano()
	prev := last.Load()
	if now-prev < int64(logEvery) || !last.CompareAndSwap(prev, now) {
		return
	}
	mode := "closed: refusing requests with 503"
	if s.failOpen {
		mode = "open: admitting requests without limits or budgets"
	}
	// go-redis errors carry the address and the server's message, never the password.
	s.log.Error("governance redis call failed", "op", op, "err", err, "fail_mode", mode)
}
