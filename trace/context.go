package trace

import (
	"encoding/hex"
	"strings"
)

// FlagSampled is the W3C "sampled" trace flag. Spans the gateway starts a
// trace for carry it: every call is recorded.
const FlagSampled byte = 0x01

// knownFlags are the trace flags W3C Trace Context Level 2 defines: sampled
// and random (the trace id's right-most 7 bytes are random). The others are
// reserved, and "vendors MUST set those to zero" when passing a context on.
const knownFlags byte = FlagSampled | 0x02

// Header and _meta names of the W3C trace context.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// SpanContext is what travels between processes: the trace, the sender's span
// and the vendor state.
type SpanContext struct {
	TraceID    TraceID
	SpanID     SpanID
	Flags      byte
	TraceState string
}

// IsValid reports whether both ids are non-zero.
func (sc SpanContext) IsValid() bool { return !sc.TraceID.IsZero() && !sc.SpanID.IsZero() }

// Traceparent renders the context as a version-00 traceparent value, or ""
// for an invalid context.
func (sc SpanContext) Traceparent() string {
	if !sc.IsValid() {
		return ""
	}
	var b [TraceparentLen]byte
	return string(sc.AppendTraceparent(b[:0]))
}

// TraceparentLen is the length of a version-00 traceparent value.
const TraceparentLen = 55

// AppendTraceparent appends the version-00 traceparent value to dst, or
// nothing for an invalid context. With a stack buffer it lets a request set
// the header without allocating a string.
func (sc SpanContext) AppendTraceparent(dst []byte) []byte {
	if !sc.IsValid() {
		return dst
	}
	n := len(dst)
	dst = append(dst, "00-00000000000000000000000000000000-0000000000000000-00"...)
	b := dst[n:]
	hex.Encode(b[3:35], sc.TraceID[:])
	hex.Encode(b[36:52], sc.SpanID[:])
	hex.Encode(b[53:55], []byte{sc.Flags})
	return dst
}

// ParseTraceparent parses a W3C traceparent value strictly: lowercase hex,
// non-zero ids, version ff rejected, version 00 exactly 55 characters. Higher
// versions are read by their version-00 prefix, as the spec asks, provided
// any extra content is separated by '-'.
func ParseTraceparent(v string) (SpanContext, bool) {
	v = strings.Trim(v, " \t")
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return SpanContext{}, false
	}
	ver, tid, sid, flags := v[0:2], v[3:35], v[36:52], v[53:55]
	if !isLowerHex(ver) || ver == "ff" || !isLowerHex(tid) || !isLowerHex(sid) || !isLowerHex(flags) {
		return SpanContext{}, false
	}
	if ver == "00" && len(v) != 55 {
		return SpanContext{}, false
	}
	if len(v) > 55 && v[55] != '-' {
		return SpanContext{}, false
	}
	var sc SpanContext
	hex.Decode(sc.TraceID[:], []byte(tid))
	hex.Decode(sc.SpanID[:], []byte(sid))
	var f [1]byte
	hex.Decode(f[:], []byte(flags))
	sc.Flags = f[0] & knownFlags
	if !sc.IsValid() {
		return SpanContext{}, false
	}
	return sc, true
}

// validTracestate applies the W3C list rules (at most 32 members, keys of
// [a-z0-9_-*/@], printable values without ',' or '='). A tracestate that
// fails them must not be propagated.
func validTracestate(v string) bool {
	if len(v) > 512 {
		return false
	}
	members := 0
	for m := range strings.SplitSeq(v, ",") {
		m = strings.Trim(m, " \t")
		if m == "" {
			continue
		}
		members++
		key, val, ok := strings.Cut(m, "=")
		if !ok || key == "" || len(key) > 256 || val == "" || len(val) > 256 {
			return false
		}
		for i := 0; i < len(key); i++ {
			c := key[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && !strings.ContainsRune("_-*/@", rune(c)) {
				return false
			}
		}
		for i := 0; i < len(val); i++ {
			if c := val[i]; c < 0x20 || c > 0x7e || c == ',' || c == '=' {
				return false
			}
		}
	}
	return members <= 32
}

func withState(sc SpanContext, state string) SpanContext {
	state = strings.Trim(state, " \t")
	if state != "" && validTracestate(state) {
		sc.TraceState = state
	}
	return sc
}

// FromHeaders reads traceparent and tracestate through get (any header
// accessor). A missing or malformed traceparent yields the zero SpanContext,
// so the caller starts a fresh trace; a malformed tracestate is dropped.
func FromHeaders(get func(name string) string) SpanContext {
	sc, ok := ParseTraceparent(get(HeaderTraceparent))
	if !ok {
		return SpanContext{}
	}
	return withState(sc, get(HeaderTracestate))
}

// InjectHeaders writes traceparent (and tracestate when present) through set.
// An invalid context writes nothing.
func InjectHeaders(sc SpanContext, set func(name, value string)) {
	if !sc.IsValid() {
		return
	}
	set(HeaderTraceparent, sc.Traceparent())
	if sc.TraceState != "" {
		set(HeaderTracestate, sc.TraceState)
	}
}

// FromMeta reads the trace context an MCP client put in params._meta.
// Non-string values count as absent.
func FromMeta(meta map[string]any) SpanContext {
	tp, _ := meta[HeaderTraceparent].(string)
	sc, ok := ParseTraceparent(tp)
	if !ok {
		return SpanContext{}
	}
	ts, _ := meta[HeaderTracestate].(string)
	return withState(sc, ts)
}

// InjectMeta sets traceparent (and tracestate when present) in an MCP
// params._meta map, replacing whatever the client sent there; stale
// tracestate from the client is removed when sc has none.
func InjectMeta(meta map[string]any, sc SpanContext) {
	if meta == nil || !sc.IsValid() {
		return
	}
	meta[HeaderTraceparent] = sc.Traceparent()
	if sc.TraceState != "" {
		meta[HeaderTracestate] = sc.TraceState
	} else {
		delete(meta, HeaderTracestate)
	}
}
