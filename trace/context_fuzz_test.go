package trace

import (
	"encoding/hex"
	"strings"
	"testing"
)

// FuzzParseTraceparent checks that whatever ParseTraceparent accepts is a
// valid context that renders back to the version-00 prefix it was read from
// (with the reserved flag bits cleared), and that the rendering parses to the
// same context.
func FuzzParseTraceparent(f *testing.F) {
	for _, s := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
		" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\t",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		sc, ok := ParseTraceparent(v)
		if !ok {
			if sc != (SpanContext{}) {
				t.Fatalf("rejected %q but returned %+v", v, sc)
			}
			return
		}
		if !sc.IsValid() {
			t.Fatalf("accepted %q as an invalid context", v)
		}
		out := sc.Traceparent()
		trimmed := strings.Trim(v, " \t")
		var flags [1]byte
		if _, err := hex.Decode(flags[:], []byte(trimmed[53:55])); err != nil {
			t.Fatalf("accepted %q with flags that are not hex", v)
		}
		if out[2:53] != trimmed[2:53] || out[53:] != hex.EncodeToString([]byte{flags[0] & knownFlags}) {
			t.Fatalf("%q rendered as %q", v, out)
		}
		again, ok := ParseTraceparent(out)
		if !ok || again != sc {
			t.Fatalf("%q rendered as %q, which parses to %+v, %v", v, out, again, ok)
		}
	})
}

// FuzzFromHeaders checks that a propagated tracestate is one the W3C list
// rules allow and that it only travels with a valid traceparent.
func FuzzFromHeaders(f *testing.F) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	f.Add(tp, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
	f.Add(tp, "a=b, ,c=d")
	f.Add(tp, "tenant@vendor=x")
	f.Add(tp, "bad key=x")
	f.Add(tp, "k=v=w")
	f.Add("garbage", "k=v")
	f.Fuzz(func(t *testing.T, traceparent, tracestate string) {
		headers := map[string]string{HeaderTraceparent: traceparent, HeaderTracestate: tracestate}
		sc := FromHeaders(func(name string) string { return headers[name] })
		if !sc.IsValid() {
			if sc.TraceState != "" {
				t.Fatalf("tracestate %q kept without a valid traceparent", sc.TraceState)
			}
			return
		}
		if sc.TraceState != "" {
			if !validTracestate(sc.TraceState) || sc.TraceState != strings.Trim(tracestate, " \t") {
				t.Fatalf("tracestate %q propagated from %q", sc.TraceState, tracestate)
			}
			for _, c := range []byte(sc.TraceState) {
				if c == '\r' || c == '\n' {
					t.Fatalf("tracestate %q would split a header", sc.TraceState)
				}
			}
		}
		injected := map[string]string{}
		InjectHeaders(sc, func(name, value string) { injected[name] = value })
		back := FromHeaders(func(name string) string { return injected[name] })
		if back != sc {
			t.Fatalf("inject then extract: %+v, want %+v", back, sc)
		}
		meta := map[string]any{}
		InjectMeta(meta, sc)
		if fromMeta := FromMeta(meta); fromMeta != sc {
			t.Fatalf("_meta round trip: %+v, want %+v", fromMeta, sc)
		}
	})
}
