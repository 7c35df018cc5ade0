package storage

import (
	"cmp"
	"slices"
	"time"
)

// finishSpend orders spend rows: bucket, then cost descending, then group.
func finishSpend(rows []SpendRow) []SpendRow {
	slices.SortFunc(rows, func(a, b SpendRow) int {
		if c := a.Bucket.Compare(b.Bucket); c != 0 {
			return c
		}
		if c := cmp.Compare(b.CostNanoUSD, a.CostNanoUSD); c != 0 {
			return c
		}
		return cmp.Compare(a.Group, b.Group)
	})
	return rows
}

// bucketTime turns a bucket start in unix seconds into the row's time; the
// zero time stands for "no bucket".
func bucketTime(q SpendQuery, unix int64) time.Time {
	if q.Bucket == BucketNone {
		return time.Time{}
	}
	return time.Unix(unix, 0).UTC()
}
