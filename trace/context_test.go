package trace

import (
	"strings"
	"testing"
)

func TestParseTraceparent(t *testing.T) {
	t.Parallel()
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	tests := []struct {
		name, in string
		ok       bool
		flags    byte
	}{
		{"valid sampled", "00-" + tid + "-" + sid + "-01", true, 1},
		{"valid unsampled", "00-" + tid + "-" + sid + "-00", true, 0},
		{"surrounding spaces", "  00-" + tid + "-" + sid + "-01\t", true, 1},
		{"future version with extra field", "01-" + tid + "-" + sid + "-01-what-ever", true, 1},
		{"future version exact", "cc-" + tid + "-" + sid + "-09", true, 1},
		{"reserved flags cleared, random kept", "00-" + tid + "-" + sid + "-ff", true, 3},
		{"random flag alone", "00-" + tid + "-" + sid + "-02", true, 2},
		{"future version junk after flags", "01-" + tid + "-" + sid + "-01x", false, 0},
		{"version 00 with extra", "00-" + tid + "-" + sid + "-01-x", false, 0},
		{"version ff", "ff-" + tid + "-" + sid + "-01", false, 0},
		{"uppercase trace id", "00-" + strings.ToUpper(tid) + "-" + sid + "-01", false, 0},
		{"uppercase version", "0A-" + tid + "-" + sid + "-01", false, 0},
		{"zero trace id", "00-00000000000000000000000000000000-" + sid + "-01", false, 0},
		{"zero span id", "00-" + tid + "-0000000000000000-01", false, 0},
		{"short trace id", "00-" + tid[1:] + "-" + sid + "-01", false, 0},
		{"wrong separators", "00_" + tid + "_" + sid + "_01", false, 0},
		{"non hex flags", "00-" + tid + "-" + sid + "-0g", false, 0},
		{"empty", "", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc, ok := ParseTraceparent(tc.in)
			if ok != tc.ok {
				t.Fatalf("ParseTraceparent(%q) ok = %v, want %v", tc.in, ok, tc.ok)
			}
			if !ok {
				if sc != (SpanContext{}) {
					t.Fatalf("rejected value returned %+v", sc)
				}
				return
			}
			if sc.TraceID.String() != tid || sc.SpanID.String() != sid || sc.Flags != tc.flags {
				t.Fatalf("got %s %s %02x", sc.TraceID, sc.SpanID, sc.Flags)
			}
		})
	}
}

func TestTraceparentRoundTrip(t *testing.T) {
	t.Parallel()
	in := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	sc, ok := ParseTraceparent(in)
	if !ok || sc.Traceparent() != in {
		t.Fatalf("round trip: %v %q", ok, sc.Traceparent())
	}
	if (SpanContext{}).Traceparent() != "" {
		t.Fatal("invalid context must render empty")
	}
	for _, prefix := range []string{"", "traceparent: "} {
		if got := string(sc.AppendTraceparent([]byte(prefix))); got != prefix+in {
			t.Fatalf("AppendTraceparent after %q = %q", prefix, got)
		}
		if got := string((SpanContext{}).AppendTraceparent([]byte(prefix))); got != prefix {
			t.Fatalf("invalid AppendTraceparent after %q = %q", prefix, got)
		}
	}
}

func TestFromHeadersTracestate(t *testing.T) {
	t.Parallel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name, traceparent, tracestate, wantState string
		valid                                    bool
	}{
		{"both", tp, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", true},
		{"no state", tp, "", "", true},
		{"malformed state dropped", tp, "congo=a=b", "", true},
		{"uppercase key dropped", tp, "Congo=x", "", true},
		{"tenant key kept", tp, "t@vendor=v", "t@vendor=v", true},
		{"too many members dropped", tp, strings.Repeat("a=b,", 33), "", true},
		{"bad traceparent ignores state", "00-bad", "congo=x", "", false},
		{"missing traceparent", "", "congo=x", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := map[string]string{"traceparent": tc.traceparent, "tracestate": tc.tracestate}
			sc := FromHeaders(func(k string) string { return h[k] })
			if sc.IsValid() != tc.valid || sc.TraceState != tc.wantState {
				t.Fatalf("got valid=%v state=%q", sc.IsValid(), sc.TraceState)
			}
			out := map[string]string{}
			InjectHeaders(sc, func(k, v string) { out[k] = v })
			if tc.valid && (out["traceparent"] != tp || out["tracestate"] != tc.wantState) {
				t.Fatalf("injected %v", out)
			}
			if !tc.valid && len(out) != 0 {
				t.Fatalf("invalid context injected %v", out)
			}
		})
	}
}

func TestMetaRoundTrip(t *testing.T) {
	t.Parallel()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name  string
		meta  map[string]any
		valid bool
	}{
		{"strings", map[string]any{"traceparent": tp, "tracestate": "a=b", "progressToken": 7}, true},
		{"non-string traceparent", map[string]any{"traceparent": 42}, false},
		{"nil map", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc := FromMeta(tc.meta)
			if sc.IsValid() != tc.valid {
				t.Fatalf("valid = %v", sc.IsValid())
			}
			if !tc.valid {
				return
			}
			out := map[string]any{"tracestate": "stale=1"}
			child := SpanContext{TraceID: sc.TraceID, SpanID: SpanID{1}, Flags: sc.Flags}
			InjectMeta(out, child)
			if out["traceparent"] != child.Traceparent() {
				t.Fatalf("traceparent = %v", out["traceparent"])
			}
			if _, ok := out["tracestate"]; ok {
				t.Fatal("stale tracestate kept")
			}
		})
	}
}

func TestIDText(t *testing.T) {
	t.Parallel()
	id, ok := ParseTraceID("4bf92f3577b34da6a3ce929d0e0e4736")
	if !ok {
		t.Fatal("valid id rejected")
	}
	b, _ := id.MarshalText()
	var back TraceID
	if err := back.UnmarshalText(b); err != nil || back != id {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{"", "00000000000000000000000000000000", "4BF92F3577B34DA6A3CE929D0E0E4736", "xyz"} {
		if _, ok := ParseTraceID(bad); ok {
			t.Fatalf("ParseTraceID(%q) accepted", bad)
		}
	}
	var sid SpanID
	if err := sid.UnmarshalText([]byte("00f067aa0ba902b7")); err != nil || sid.String() != "00f067aa0ba902b7" {
		t.Fatalf("span id: %v %s", err, sid)
	}
}
