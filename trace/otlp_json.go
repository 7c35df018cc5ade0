package trace

import (
	"crypto/rand"
	"encoding/hex"
	"runtime/debug"
	"strconv"
	"strings"
	"unicode/utf8"
)

// OTLP span kinds and status codes, as the OTLP JSON encoding writes enums: integers.
const (
	otlpKindServer = 2
	otlpKindClient = 3

	otlpStatusError = 2
)

// otlpResource is the resource and scope prefix of every export request, encoded once: service.name,
// service.version (the module version the binary was built from, when known) and service.instance.id (random
// per process, as the resource conventions recommend when there is no better id).
func otlpResource() []byte {
	var id [16]byte
	_, _ = rand.Read(id[:])
	id[6], id[8] = id[6]&0x0f|0x40, id[8]&0x3f|0x80 // a UUIDv4
	h := hex.EncodeToString(id[:])
	uuid := h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]

	b := []byte(`{"resourceSpans":[{"resource":{"attributes":[`)
	b = appendStrAttr(b, "service.name", "switchboard")
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		b = appendStrAttr(append(b, ','), "service.version", bi.Main.Version)
	}
	b = appendStrAttr(append(b, ','), "service.instance.id", uuid)
	return append(b, `]},"scopeSpans":[{"scope":{"name":"switchboard"},"spans":[`...)
}

const otlpSuffix = `]}]}]}`

// appendOTLPSpan appends s as one OTLP span in the JSON encoding
// (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): ids as hex, times and 64-bit integers as
// decimal strings, enums as integers. Attributes follow the OTel GenAI conventions where one exists and are
// switchboard.* otherwise.
func appendOTLPSpan(b []byte, s *Span) []byte {
	b = append(b, `{"traceId":"`...)
	b = hex.AppendEncode(b, s.TraceID[:])
	b = append(b, `","spanId":"`...)
	b = hex.AppendEncode(b, s.SpanID[:])
	b = append(b, '"')
	if !s.ParentSpanID.IsZero() {
		b = append(b, `,"parentSpanId":"`...)
		b = hex.AppendEncode(b, s.ParentSpanID[:])
		b = append(b, '"')
	}
	if s.traceState != "" {
		b = appendJSONString(append(b, `,"traceState":`...), s.traceState)
	}
	b = appendJSONString(append(b, `,"name":`...), s.Name)
	kind := otlpKindServer
	if s.isAttempt() {
		// An attempt is the gateway calling a provider; every other span is a call the gateway served.
		kind = otlpKindClient
	}
	b = strconv.AppendInt(append(b, `,"kind":`...), int64(kind), 10)
	start := s.Start.UnixNano()
	b = strconv.AppendInt(append(b, `,"startTimeUnixNano":"`...), start, 10)
	b = strconv.AppendInt(append(b, `","endTimeUnixNano":"`...), start+int64(s.Duration), 10)
	b = append(b, `","attributes":[`...)
	b = appendSpanAttrs(b, s)
	b = append(b, `],"status":{`...)
	if s.Status == StatusError {
		// Unset, not Ok, for a success: the conventions leave Ok to the application's own code.
		b = strconv.AppendInt(append(b, `"code":`...), otlpStatusError, 10)
		if s.Error != "" {
			b = appendJSONString(append(b, `,"message":`...), s.Error)
		}
	}
	return append(b, "}}"...)
}

func (s *Span) isAttempt() bool {
	return s.Layer == LayerLLM && strings.HasPrefix(s.Name, "attempt ")
}

func appendSpanAttrs(b []byte, s *Span) []byte {
	n := len(b)
	attr := func(key, val string) {
		if val == "" {
			return
		}
		if len(b) > n {
			b = append(b, ',')
		}
		b = appendStrAttr(b, key, val)
	}
	intAttr := func(key string, v int64) {
		if len(b) > n {
			b = append(b, ',')
		}
		b = appendJSONString(append(b, `{"key":`...), key)
		b = strconv.AppendInt(append(b, `,"value":{"intValue":"`...), v, 10)
		b = append(b, `"}}`...)
	}

	method, _, _ := strings.Cut(s.Name, " ")
	requested := s.Model
	for _, a := range s.Attrs {
		if a.Key == "requested_model" {
			requested = a.Value
		}
	}
	switch s.Layer {
	case LayerLLM:
		if !s.isAttempt() {
			attr("gen_ai.operation.name", genAIOperation(method))
		}
		attr("gen_ai.request.model", requested)
		if s.Deployment != "" {
			// Set once a deployment served the call: the model (group) that answered, fallbacks included.
			attr("gen_ai.response.model", s.Model)
		}
		if p := genAIProvider(s.Provider); p != "" {
			attr("gen_ai.provider.name", p)
			// The name before semantic conventions 1.37, which many backends still group GenAI spans by.
			attr("gen_ai.system", p)
		}
		if s.InputTokens > 0 || s.OutputTokens > 0 {
			intAttr("gen_ai.usage.input_tokens", s.InputTokens)
			intAttr("gen_ai.usage.output_tokens", s.OutputTokens)
		}
		if s.CachedTokens > 0 {
			intAttr("gen_ai.usage.cache_read.input_tokens", s.CachedTokens)
		}
	case LayerTool:
		attr("mcp.method.name", method)
		if method == "tools/call" {
			attr("gen_ai.operation.name", "execute_tool")
			attr("gen_ai.tool.name", s.Tool)
		}
	case LayerAgent:
		attr("gen_ai.operation.name", "invoke_agent")
		attr("gen_ai.agent.name", s.Agent)
	}
	if s.HTTPStatus != 0 {
		intAttr("http.response.status_code", int64(s.HTTPStatus))
	}
	if s.Status == StatusError {
		et := "_OTHER"
		if s.HTTPStatus >= 400 {
			et = strconv.Itoa(s.HTTPStatus)
		}
		attr("error.type", et)
	}

	attr("switchboard.layer", string(s.Layer))
	attr("switchboard.team", s.Team)
	attr("switchboard.org", s.Org)
	attr("switchboard.key_id", s.KeyID)
	attr("switchboard.key_name", s.KeyName)
	attr("switchboard.deployment", s.Deployment)
	attr("switchboard.tool_server", s.ToolServer)
	if s.CostNanoUSD != 0 {
		var usd [24]byte
		attr("switchboard.cost_usd", string(AppendUSD(usd[:0], s.CostNanoUSD)))
		intAttr("switchboard.cost_nano_usd", s.CostNanoUSD)
	}
	if s.Retries != 0 {
		intAttr("switchboard.retries", int64(s.Retries))
	}
	if s.Fallbacks != 0 {
		intAttr("switchboard.fallbacks", int64(s.Fallbacks))
	}
	if s.TTFT != 0 {
		intAttr("switchboard.ttft_ns", int64(s.TTFT))
	}
	for _, a := range s.Attrs {
		if a.Key == "requested_model" {
			continue
		}
		key := a.Key
		if !strings.Contains(key, ".") {
			// Already namespaced keys (a2a.method) keep their name; bare ones are ours.
			key = "switchboard." + key
		}
		attr(key, a.Value)
	}
	return b
}

// genAIOperation maps a call span's name prefix to gen_ai.operation.name. The Responses and Messages APIs are
// chats in the conventions' terms; counting tokens has no well-known value, so it keeps its own.
func genAIOperation(prefix string) string {
	switch prefix {
	case "responses":
		return "chat"
	case "":
		return ""
	}
	return prefix
}

// genAIProvider maps a deployment's provider to the conventions' gen_ai.provider.name values.
func genAIProvider(p string) string {
	if p == "azure" {
		return "azure.ai.openai"
	}
	return p
}

func appendStrAttr(b []byte, key, val string) []byte {
	b = appendJSONString(append(b, `{"key":`...), key)
	b = appendJSONString(append(b, `,"value":{"stringValue":`...), val)
	return append(b, "}}"...)
}

// AppendUSD writes nano-USD as an exact decimal USD amount without trailing zeros: 1500000 is "0.0015". A span's
// cost is written so in exports, and the LLM gateway's cost header too.
func AppendUSD(b []byte, nano int64) []byte {
	u := uint64(nano)
	if nano < 0 {
		b = append(b, '-')
		u = -u
	}
	b = strconv.AppendUint(b, u/1e9, 10)
	if frac := u % 1e9; frac != 0 {
		var f [9]byte
		for i := len(f) - 1; i >= 0; i-- {
			f[i] = byte('0' + frac%10)
			frac /= 10
		}
		end := len(f)
		for f[end-1] == '0' {
			end--
		}
		b = append(append(b, '.'), f[:end]...)
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as encoding/json does: a collector
// rejects a whole request over one bad string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
