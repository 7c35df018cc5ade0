package a2a

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"

	"github.com/a2aproject/a2a-go/v2/a2a"
)

// Method names of the two JSON-RPC dialects; they do not overlap.
var (
	v1Methods = map[string]bool{
		"SendMessage": true, "SendStreamingMessage": true, "GetTask": true, "ListTasks": true,
		"CancelTask": true, "SubscribeToTask": true, "GetTaskPushNotificationConfig": true,
		"CreateTaskPushNotificationConfig": true, "ListTaskPushNotificationConfigs": true,
		"DeleteTaskPushNotificationConfig": true, "GetExtendedAgentCard": true,
	}
	v0Methods = map[string]bool{
		"message/send": true, "message/stream": true, "tasks/get": true, "tasks/cancel": true,
		"tasks/resubscribe": true, "tasks/pushNotificationConfig/get": true,
		"tasks/pushNotificationConfig/set": true, "tasks/pushNotificationConfig/list": true,
		"tasks/pushNotificationConfig/delete": true, "agent/getAuthenticatedExtendedCard": true,
	}
)

// envelope is what the gateway reads of a JSON-RPC request before deciding
// anything: the id (for error replies), the method and the client's dialect.
// The params are decoded by a2a-go's handler, with the same decoder, so both
// see the same method.
type envelope struct {
	ID     any
	Method string
	v1     bool
}

// readEnvelope reads the body (fiber has bounded its size) and puts it back
// for the a2a-go handler. The dialect comes from A2A-Version as the official
// JS SDK decides it (none or 0.x: 0.3); without the header a 1.0 method name
// also selects 1.0, since the names of the two versions are disjoint.
func readEnvelope(r *http.Request) (envelope, error) {
	var env envelope
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return env, a2a.NewError(a2a.ErrParseError, "cannot read the request body")
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '[' && json.Valid(body) {
		return env, a2a.NewError(a2a.ErrInvalidRequest, "batch requests are not supported")
	}
	var raw struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      any             `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return env, a2a.NewError(a2a.ErrParseError, "request is not a JSON-RPC object")
	}
	switch raw.ID.(type) {
	case nil, string, float64:
		env.ID = raw.ID
	default:
		return env, a2a.NewError(a2a.ErrInvalidRequest, "id must be a string, a number or null")
	}
	env.Method = raw.Method
	if raw.JSONRPC != "2.0" {
		return env, a2a.NewError(a2a.ErrInvalidRequest, `jsonrpc must be "2.0"`)
	}
	version := r.Header.Get(a2a.SvcParamVersion)
	switch {
	case isV1(version):
		env.v1 = true
	case version == "":
		env.v1 = v1Methods[raw.Method]
	case isV0(version):
	default:
		return env, a2a.NewError(a2a.ErrVersionNotSupported, "A2A-Version "+version+" is not supported (1.0 and 0.3 are)")
	}
	if (env.v1 && !v1Methods[raw.Method]) || (!env.v1 && !v0Methods[raw.Method]) {
		return env, a2a.NewError(a2a.ErrMethodNotFound, "method not found")
	}
	// a2a-go decodes missing params as an empty body: a parse error.
	switch {
	case len(raw.Params) > 0 && string(raw.Params) != "null":
	case !optionalParams[raw.Method]:
		return env, a2a.NewError(a2a.ErrInvalidParams, "params are required for "+raw.Method)
	case len(raw.Params) == 0:
		var fields map[string]json.RawMessage
		if json.Unmarshal(body, &fields) == nil {
			fields["params"] = json.RawMessage("{}")
			if withParams, err := json.Marshal(fields); err == nil {
				r.Body = io.NopCloser(bytes.NewReader(withParams))
			}
		}
	}
	return env, nil
}

// optionalParams are the methods whose params may be left out.
var optionalParams = map[string]bool{"ListTasks": true, "GetExtendedAgentCard": true, "agent/getAuthenticatedExtendedCard": true}

// metricMethod bounds the method label to the known names.
func metricMethod(m string) string {
	if v1Methods[m] || v0Methods[m] {
		return m
	}
	return "other"
}
