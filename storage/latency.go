package storage

import (
	"math"
	"time"
)

// latencyBase is the ratio between the bounds of neighbouring latency
// histogram buckets: bucket k holds durations d with round(log(d)/log(1.01))
// = k, i.e. within a factor 1.01^±0.5 of 1.01^k, so reading a bucket as
// 1.01^k is off by at most 0.5%.
const latencyBase = "1.01"

// histogramPercentiles reads the nearest-rank 50th, 95th and 99th
// percentiles off a latency histogram sorted by bucket; buckets without
// calls are ignored and no calls give zeros.
func histogramPercentiles(buckets []uint16, calls []uint64) (p50, p95, p99 time.Duration) {
	var n uint64
	for _, c := range calls {
		n += c
	}
	if n == 0 || len(buckets) != len(calls) {
		return 0, 0, 0
	}
	at := func(pct uint64) time.Duration {
		rank := (n*pct + 99) / 100
		var seen uint64
		for i, c := range calls {
			if seen += c; seen >= rank {
				return bucketValue(buckets[i])
			}
		}
		return bucketValue(buckets[len(buckets)-1])
	}
	return at(50), at(95), at(99)
}

func bucketValue(k uint16) time.Duration {
	if k == 0 {
		return 0
	}
	return time.Duration(math.Round(math.Pow(1.01, float64(k))))
}
