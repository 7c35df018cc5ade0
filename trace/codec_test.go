package trace

import (
	"reflect"
	"testing"
	"time"
)

func fullSpan(i int) Span {
	return Span{
		TraceID: TraceID{1, 2, 3, byte(i)}, SpanID: SpanID{9, byte(i)}, ParentSpanID: SpanID{7},
		Layer: LayerLLM, Name: "chat gpt-4o-mini", Start: time.Unix(1_700_000_000, 123456789).UTC(),
		Duration: 1500 * time.Millisecond, Status: StatusError, HTTPStatus: 502, Error: "upstream: bad gateway",
		KeyID: "k1", KeyName: "ci-agent", Team: "platform", Org: "acme",
		Model: "gpt-4o-mini", Provider: "openai", Deployment: "openai/gpt-4o-mini",
		ToolServer: "weather", Tool: "get_forecast", Agent: "researcher",
		InputTokens: 1234, OutputTokens: -5, CachedTokens: 1 << 40, CostNanoUSD: 123_456_789_012,
		Retries: 2, Fallbacks: 1, TTFT: 250 * time.Millisecond,
		Attrs: []Attr{{"task_id", "t-1"}, {"state", "working"}, {"state", "completed"}},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		spans []Span
	}{
		{"empty batch", []Span{}},
		{"full spans", []Span{fullSpan(1), fullSpan(2)}},
		{"zero span", []Span{{Start: time.Unix(0, 0).UTC()}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeSpans(appendSpans(nil, tc.spans))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.spans) {
				t.Fatalf("got %+v\nwant %+v", got, tc.spans)
			}
		})
	}
}

func TestCodecRejectsDamage(t *testing.T) {
	t.Parallel()
	good := appendSpans(nil, []Span{fullSpan(1)})
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"wrong version", append([]byte{99}, good[1:]...)},
		{"truncated", good[:len(good)-3]},
		{"trailing bytes", append(append([]byte{}, good...), 0)},
		{"huge count", []byte{codecVersion, 0xff, 0xff, 0xff, 0xff, 0x0f}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := decodeSpans(tc.b); err == nil {
				t.Fatal("damaged batch decoded")
			}
		})
	}
}
