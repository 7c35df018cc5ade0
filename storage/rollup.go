package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// A rollup fed by a materialized view only sees spans inserted after the view
// was created. Rather than backfilling (which would double count spans that
// arrive while the backfill runs, and spans replayed late from the spill),
// each rollup records since when it is complete: every span starting at or
// after that time was inserted after the view existed, because a span is
// written only after it started. Queries read a rollup for times from then on
// and spans before. On a database created by this version the rollups are
// complete from the beginning (since = 0).
var rollupNames = []string{"spend_daily_v2", "trace_list_v2"}

// rollupSince holds since when each rollup is complete.
type rollupSince struct {
	spend  time.Time // zero: complete from the beginning
	traces time.Time
}

// spansExist reports whether the spans table existed before this start's
// migrations, i.e. whether the database may hold spans the rollups lack.
func spansExist(ctx context.Context, conn driver.Conn, db string) (bool, error) {
	var n uint64
	err := conn.QueryRow(ctx, `SELECT count() FROM system.tables WHERE database = ? AND name = 'spans'`, db).Scan(&n)
	return n > 0, err
}

// loadRollups records, once per rollup, since when it is complete (now, on a
// database that already had spans) and reads the earliest record back: when
// several gateways start at once, each records a time after the view existed,
// so the earliest of them is still safe.
func loadRollups(ctx context.Context, conn driver.Conn, table string, hadSpans bool) (rollupSince, error) {
	var out rollupSince
	for _, name := range rollupNames {
		var n uint64
		var since int64
		if err := conn.QueryRow(ctx, `SELECT count(), min(since_ns) FROM `+table+` WHERE name = ?`, name).Scan(&n, &since); err != nil {
			return out, fmt.Errorf("read %s: %w", name, err)
		}
		if n == 0 {
			since = 0
			if hadSpans {
				since = time.Now().UnixNano()
			}
			if err := record(ctx, conn, table, name, since); err != nil {
				return out, fmt.Errorf("record %s: %w", name, err)
			}
		}
		var t time.Time
		if since > 0 {
			t = time.Unix(0, since).UTC()
		}
		switch name {
		case "spend_daily_v2":
			out.spend = t
		case "trace_list_v2":
			out.traces = t
		}
	}
	return out, nil
}

func record(ctx context.Context, conn driver.Conn, table, name string, since int64) error {
	return insert(ctx, conn, `INSERT INTO `+table+` (name, since_ns)`, func(b driver.Batch) error {
		return b.Append(name, since)
	})
}

// nextMidnight is the first UTC midnight at or after t (zero stays zero): the
// first whole day a rollup complete since t holds entirely.
func nextMidnight(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	d := t.UTC().Truncate(24 * time.Hour)
	if d.Before(t) {
		d = d.Add(24 * time.Hour)
	}
	return d
}
