package storage

import (
	"cmp"
	"slices"
	"time"
)

// finishSpend merges rows that share bucket and group (ClickHouse answers a
// range from several tables) and orders them: bucket, then cost descending,
// then group.
func finishSpend(rows []SpendRow) []SpendRow {
	type key struct {
		bucket int64
		group  string
	}
	at := make(map[key]int, len(rows))
	out := rows[:0]
	for _, r := range rows {
		k := key{r.Bucket.UnixNano(), r.Group}
		if i, ok := at[k]; ok {
			o := &out[i]
			o.CostNanoUSD += r.CostNanoUSD
			o.Requests += r.Requests
			o.Errors += r.Errors
			o.InputTokens += r.InputTokens
			o.OutputTokens += r.OutputTokens
			o.CachedTokens += r.CachedTokens
			continue
		}
		at[k] = len(out)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b SpendRow) int {
		if c := a.Bucket.Compare(b.Bucket); c != 0 {
			return c
		}
		if c := cmp.Compare(b.CostNanoUSD, a.CostNanoUSD); c != 0 {
			return c
		}
		return cmp.Compare(a.Group, b.Group)
	})
	return out
}

// bucketTime turns a bucket start in unix seconds into the row's time; the
// zero time stands for "no bucket".
func bucketTime(q SpendQuery, unix int64) time.Time {
	if q.Bucket == BucketNone {
		return time.Time{}
	}
	return time.Unix(unix, 0).UTC()
}
