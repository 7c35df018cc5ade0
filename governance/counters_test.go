package governance

import (
	"testing"
	"time"
)

// At the largest limit the config allows, refilling after idle time and recovering from full debt must not
// overflow: an overflow wrapped the level negative and refused every request for minutes.
func TestRateBucketAtTheLargestLimit(t *testing.T) {
	t.Parallel()
	start := time.Unix(1_800_000_000, 0)
	cases := []struct {
		name  string
		setup func(b *rateBucket)
		after time.Duration
	}{
		{name: "idle after one request", setup: func(b *rateBucket) { b.Take(maxLimit, 1, start) }, after: 40 * time.Second},
		{name: "long idle", setup: func(b *rateBucket) { b.Take(maxLimit, 1, start) }, after: time.Hour},
		{name: "full debt", setup: func(b *rateBucket) {
			b.Take(maxLimit, maxLimit, start)
			b.Give(maxLimit, -maxLimit, start) // actual usage far above the estimate
		}, after: 2*time.Minute + time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b rateBucket
			tc.setup(&b)
			r := b.Take(maxLimit, 1, start.Add(tc.after))
			if !r.Allowed || r.Remaining < maxLimit-1 || r.Reset < 0 || r.Reset > time.Minute {
				t.Fatalf("after %v: %+v (level %d)", tc.after, r, b.level)
			}
		})
	}
	// In debt, the refusal says how long until the request fits.
	var b rateBucket
	b.Take(maxLimit, maxLimit, start)
	b.Give(maxLimit, -maxLimit, start)
	r := b.Take(maxLimit, 1, start.Add(time.Second))
	if r.Allowed || r.RetryAfter <= 0 || r.RetryAfter > 2*time.Minute {
		t.Fatalf("in full debt: %+v", r)
	}
}
