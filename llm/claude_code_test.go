package llm

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

// claudeCodeTurn is a second turn as Claude Code 2.1 sends it to POST /v1/messages?beta=true (captured, shortened):
// its first turn called toolUse, and results is what the tool answered, the last message's content.
func claudeCodeTurn(model, toolUse, results string) string {
	return `{"model":"` + model + `","max_tokens":32000,"stream":true,
	"thinking":{"budget_tokens":31999,"type":"enabled"},
	"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},
	"output_config":{"effort":"high"},
	"metadata":{"user_id":"{\"device_id\":\"838cf692\",\"account_uuid\":\"\",\"session_id\":\"e8d95648\"}"},
	"system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.197.1c0; cc_entrypoint=sdk-cli;"},
	          {"type":"text","text":"You are a Claude agent, built on Anthropic's Claude Agent SDK.","cache_control":{"type":"ephemeral"}}],
	"tools":[{"name":"Read","description":"Reads a file from the local filesystem.","input_schema":{"type":"object",
	          "properties":{"file_path":{"type":"string"}},"required":["file_path"]}}],
	"messages":[
	 {"role":"user","content":[{"type":"text","text":"look at shot.png"}]},
	 {"role":"assistant","content":[` + toolUse + `]},
	 {"role":"user","content":` + results + `}]}`
}

// Claude Code's Read tool answers for an image file with an image block in its tool_result, as MCP tools that
// take screenshots do. Through an OpenAI-compatible deployment the image was dropped and the model got an empty
// tool message; a PDF, which chat cannot carry, was dropped too, where it is now refused.
func TestClaudeCodeToolResultsThroughOpenAI(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	h := newHarness(t, oneModel("claude-sonnet-4-5-20250929", openaiDep(m, "gpt-4.1")))
	const png = "iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAEklEQVR4nGP4z8CAB+GTG8HSALfKY52fTcuYAAAAAElFTkSuQmCC"
	readPNG := `{"type":"tool_use","id":"toolu_01","name":"Read","input":{"file_path":"/work/shot.png"}}`
	image := `{"type":"image","source":{"type":"base64","data":"` + png + `","media_type":"image/png"}}`
	dataURL := "data:image/png;base64," + png
	type sent struct {
		role, content string
		parts         []openai.ChatMessagePart
	}
	cases := []struct {
		name, toolUse, results string
		status                 int
		errText                string
		want                   []sent // the upstream's messages after the system prompt, the first user turn and the call
	}{
		{"Read of an image file", readPNG,
			`[{"type":"tool_result","tool_use_id":"toolu_01","content":[` + image + `],"cache_control":{"type":"ephemeral"}}]`,
			http.StatusOK, "", []sent{
				{role: "tool", content: "[the result's images follow in the next user message]"},
				{role: "user", parts: []openai.ChatMessagePart{
					{Type: "text", Text: "Images returned by tool call toolu_01:"},
					{Type: "image_url", ImageURL: &openai.ChatMessageImageURL{URL: dataURL}}}},
			}},
		{"screenshot tool with text, then the user's words", `{"type":"tool_use","id":"toolu_02","name":"Read","input":{}}`,
			`[{"type":"tool_result","tool_use_id":"toolu_02","content":[{"type":"text","text":"page loaded"},` + image + `]},
			  {"type":"text","text":"what do you see?"}]`,
			http.StatusOK, "", []sent{
				{role: "tool", content: "page loaded\n\n[the result's images follow in the next user message]"},
				{role: "user", parts: []openai.ChatMessagePart{
					{Type: "text", Text: "Images returned by tool call toolu_02:"},
					{Type: "image_url", ImageURL: &openai.ChatMessageImageURL{URL: dataURL}},
					{Type: "text", Text: "what do you see?"}}},
			}},
		{"failed Read", readPNG,
			`[{"type":"tool_result","tool_use_id":"toolu_01","is_error":true,"content":"<tool_use_error>File does not exist.</tool_use_error>"}]`,
			http.StatusOK, "", []sent{{role: "tool", content: "Error: <tool_use_error>File does not exist.</tool_use_error>"}}},
		{"Read of a PDF", `{"type":"tool_use","id":"toolu_03","name":"Read","input":{"file_path":"/work/spec.pdf"}}`,
			`[{"type":"tool_result","tool_use_id":"toolu_03","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0xLjQK"}}]}]`,
			http.StatusBadRequest, `tool_result toolu_03: content block type "document" cannot be translated`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := m.Requests()
			body := claudeCodeTurn("claude-sonnet-4-5-20250929", tc.toolUse, tc.results)
			status, _, _, raw := h.post("/v1/messages?beta=true", "", body, "x-api-key", keyAll, "anthropic-version", "2023-06-01",
				"anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27")
			if status != tc.status {
				t.Fatalf("answered %d %s, want %d", status, raw, tc.status)
			}
			if tc.errText != "" {
				var e struct {
					Type  string
					Error struct{ Type, Message string }
				}
				if json.Unmarshal(raw, &e) != nil || e.Type != "error" || e.Error.Type != "invalid_request_error" ||
					!strings.Contains(e.Error.Message, tc.errText) || m.Requests() != before {
					t.Fatalf("got %s (upstream calls %d -> %d), want an Anthropic invalid_request_error saying %q and no upstream call",
						raw, before, m.Requests(), tc.errText)
				}
				return
			}
			var up struct {
				Messages []openai.ChatCompletionMessage
			}
			upstream := m.LastRequest().Body
			if err := json.Unmarshal(upstream, &up); err != nil || len(up.Messages) != 3+len(tc.want) {
				t.Fatalf("upstream got %s (%v), want %d messages", upstream, err, 3+len(tc.want))
			}
			for i, w := range tc.want {
				g := up.Messages[3+i]
				if g.Role != w.role || g.Content != w.content || !sameParts(g.MultiContent, w.parts) {
					t.Errorf("upstream message %d: %+v, want %+v", 3+i, g, w)
				}
			}
		})
	}
}

func sameParts(a, b []openai.ChatMessagePart) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type != b[i].Type || a[i].Text != b[i].Text || (a[i].ImageURL == nil) != (b[i].ImageURL == nil) ||
			(a[i].ImageURL != nil && a[i].ImageURL.URL != b[i].ImageURL.URL) {
			return false
		}
	}
	return true
}

// Claude Code asks for extended thinking and an effort level (its /model effort setting) on every turn. Through
// an OpenAI-compatible reasoning model (o-series, GPT-5) neither reached the upstream, which thought at its
// default; now they arrive as reasoning_effort, and only to models that take it.
func TestClaudeCodeThinkingBecomesReasoningEffort(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	h := newHarness(t, Config{Models: []ModelConfig{
		{Name: "claude-opus-4-5-20251101", Deployments: []DeploymentConfig{openaiDep(m, "gpt-5.1")}},
		{Name: "claude-sonnet-4-5-20250929", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4.1")}},
	}})
	const opus, sonnet = "claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929"
	cases := []struct {
		name, model, thinking, effort string
	}{
		// What Claude Code 2.1 sends for a claude-opus-4-5 model name.
		{"enabled with effort", opus, `"thinking":{"budget_tokens":31999,"type":"enabled"},"output_config":{"effort":"high"},`, "high"},
		// ... and for a model name it does not know.
		{"adaptive with effort", opus, `"thinking":{"type":"adaptive"},"output_config":{"effort":"low"},`, "low"},
		{"adaptive alone", opus, `"thinking":{"type":"adaptive"},`, "medium"},
		{"effort max", opus, `"thinking":{"type":"adaptive"},"output_config":{"effort":"max"},`, "high"},
		{"small budget", opus, `"thinking":{"budget_tokens":1024,"type":"enabled"},`, "low"},
		{"middle budget", opus, `"thinking":{"budget_tokens":8000,"type":"enabled"},`, "medium"},
		{"thinking disabled", opus, `"thinking":{"type":"disabled"},"output_config":{"effort":"high"},`, ""},
		{"no thinking", opus, ``, ""},
		{"not a reasoning model", sonnet, `"thinking":{"budget_tokens":31999,"type":"enabled"},"output_config":{"effort":"high"},`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"model":"` + tc.model + `","max_tokens":32000,"stream":true,` + tc.thinking + `
			"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},
			"system":[{"type":"text","text":"You are a Claude agent, built on Anthropic's Claude Agent SDK.","cache_control":{"type":"ephemeral"}}],
			"messages":[{"role":"user","content":[{"type":"text","text":"say hello"}]}]}`
			status, _, _, raw := h.post("/v1/messages?beta=true", "", body, "x-api-key", keyAll, "anthropic-version", "2023-06-01",
				"anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14,effort-2025-11-24")
			var up map[string]json.RawMessage
			upstream := m.LastRequest().Body
			if status != http.StatusOK || json.Unmarshal(upstream, &up) != nil {
				t.Fatalf("answered %d %s; upstream got %s", status, raw, upstream)
			}
			got := ""
			if e, ok := up["reasoning_effort"]; ok {
				_ = json.Unmarshal(e, &got)
				if got == "" {
					t.Fatalf("upstream got reasoning_effort %s", e)
				}
			}
			if got != tc.effort || up["thinking"] != nil || up["output_config"] != nil {
				t.Fatalf("upstream got reasoning_effort %q (body %s), want %q and no Anthropic fields", got, upstream, tc.effort)
			}
		})
	}
}

// Claude Code asks its small model for structured output: a session title (output_config.format) and the
// memories to load (the older top-level output_format), and parses the reply as JSON. Through an
// OpenAI-compatible deployment the schema was dropped, so the model answered in prose; now it is chat's
// response_format, strict when OpenAI's strict mode takes the schema.
func TestClaudeCodeStructuredOutputThroughOpenAI(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	h := newHarness(t, oneModel("claude-haiku-4-5-20251001", openaiDep(m, "gpt-4.1-mini")))
	const title = `{"type":"object","properties":{"title":{"type":"string"}},"required":["title"],"additionalProperties":false}`
	const memories = `{"type":"object","properties":{"selected_memories":{"type":"array","items":{"type":"string"}},` +
		`"selected_knowledge_ids":{"type":"array","items":{"type":"string"}}},"required":["selected_memories"],"additionalProperties":false}`
	const nestedOpen = `{"type":"object","properties":{"files":{"type":"array","items":{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}}},"required":["files"],"additionalProperties":false}`
	cases := []struct {
		name, format string
		status       int
		schema       string
		strict       bool
	}{
		{"session title", `"output_config":{"format":{"type":"json_schema","schema":` + title + `}},`, http.StatusOK, title, true},
		{"memory selection", `"output_format":{"type":"json_schema","schema":` + memories + `},`, http.StatusOK, memories, false},
		{"open nested object", `"output_config":{"format":{"type":"json_schema","schema":` + nestedOpen + `}},`, http.StatusOK, nestedOpen, false},
		{"effort only", `"output_config":{"effort":"low"},`, http.StatusOK, "", false},
		{"unknown format", `"output_config":{"format":{"type":"xml"}},`, http.StatusBadRequest, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := m.Requests()
			body := `{"model":"claude-haiku-4-5-20251001","max_tokens":32000,"stream":true,"temperature":1,"thinking":{"type":"disabled"},` + tc.format + `
			"system":[{"type":"text","text":"You are Claude Code, Anthropic's official CLI for Claude."},
			          {"type":"text","text":"Generate a concise, sentence-case title (3-7 words) that captures the main topic or goal."}],
			"messages":[{"role":"user","content":[{"type":"text","text":"<session>\ncall tool Glob please\n</session>"}]}]}`
			status, _, _, raw := h.post("/v1/messages?beta=true", "", body, "authorization", "Bearer "+keyAll, "anthropic-version", "2023-06-01",
				"anthropic-beta", "interleaved-thinking-2025-05-14,structured-outputs-2025-12-15")
			if status != tc.status {
				t.Fatalf("answered %d %s, want %d", status, raw, tc.status)
			}
			if status != http.StatusOK {
				if !strings.Contains(string(raw), `"type":"invalid_request_error"`) || m.Requests() != before {
					t.Fatalf("got %s, want an Anthropic invalid_request_error and no upstream call", raw)
				}
				return
			}
			var up struct {
				ResponseFormat *struct {
					Type       string `json:"type"`
					JSONSchema struct {
						Name   string          `json:"name"`
						Schema json.RawMessage `json:"schema"`
						Strict bool            `json:"strict"`
					} `json:"json_schema"`
				} `json:"response_format"`
				OutputConfig json.RawMessage `json:"output_config"`
				OutputFormat json.RawMessage `json:"output_format"`
			}
			upstream := m.LastRequest().Body
			if err := json.Unmarshal(upstream, &up); err != nil || up.OutputConfig != nil || up.OutputFormat != nil {
				t.Fatalf("upstream got %s (%v)", upstream, err)
			}
			if tc.schema == "" {
				if up.ResponseFormat != nil {
					t.Fatalf("upstream got a response_format: %s", upstream)
				}
				return
			}
			rf := up.ResponseFormat
			if rf == nil || rf.Type != "json_schema" || rf.JSONSchema.Name == "" || string(rf.JSONSchema.Schema) != tc.schema ||
				rf.JSONSchema.Strict != tc.strict {
				t.Fatalf("upstream got %s, want response_format json_schema with the schema unchanged, strict %v", upstream, tc.strict)
			}
		})
	}
}
