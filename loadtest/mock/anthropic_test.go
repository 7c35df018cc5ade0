package mock

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func postMessages(t *testing.T, s *LLMServer, headers map[string]string, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodPost, s.URL+"/v1/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

type sseRecord struct {
	event string
	data  map[string]any
}

func readSSE(t *testing.T, r io.Reader) []sseRecord {
	t.Helper()
	var out []sseRecord
	var cur sseRecord
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.data); err != nil {
				t.Fatalf("bad data line %q: %v", line, err)
			}
		case line == "":
			out = append(out, cur)
			cur = sseRecord{}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var anthropicHeaders = map[string]string{"x-api-key": "ak", "anthropic-version": "2023-06-01"}

func TestAnthropicMessages(t *testing.T) {
	t.Parallel()
	s := startLLM(t, LLMOptions{APIKey: "ak"})
	body := `{"model":"claude-sonnet-4-5","max_tokens":2,"system":"sys prompt","messages":[{"role":"user","content":[{"type":"text","text":"alpha beta gamma"}]}]}`
	resp := postMessages(t, s, anthropicHeaders, body)
	var msg struct {
		Type       string `json:"type"`
		Role       string `json:"role"`
		StopReason string `json:"stop_reason"`
		Content    []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		Usage struct {
			InputTokens  int `json:"input_tokens"`
			OutputTokens int `json:"output_tokens"`
		} `json:"usage"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&msg); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || msg.Type != "message" || msg.Role != "assistant" || msg.StopReason != "max_tokens" ||
		len(msg.Content) != 1 || msg.Content[0].Text != "alpha beta" || msg.Usage.InputTokens != 5 || msg.Usage.OutputTokens != 2 {
		t.Fatalf("status %d message %+v", resp.StatusCode, msg)
	}
}

func TestAnthropicStreamEventSequence(t *testing.T) {
	t.Parallel()
	s := startLLM(t, LLMOptions{})
	tests := []struct {
		name      string
		body      string
		deltaType string
		stop      string
		joined    string
	}{
		{"text", `{"model":"m","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi there"}]}`,
			"text_delta", "end_turn", "hi there"},
		{"tool use", `{"model":"m","max_tokens":100,"stream":true,"tools":[{"name":"get_forecast","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],"messages":[{"role":"user","content":"call tool please"}]}`,
			"input_json_delta", "tool_use", `{"city":"mock"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := postMessages(t, s, anthropicHeaders, tt.body)
			if ct := resp.Header.Get("content-type"); !strings.HasPrefix(ct, "text/event-stream") {
				t.Fatalf("content-type %q", ct)
			}
			events := readSSE(t, resp.Body)
			var names []string
			var joined strings.Builder
			for _, e := range events {
				if e.data["type"] != e.event {
					t.Fatalf("event %q carries type %v", e.event, e.data["type"])
				}
				if len(names) == 0 || names[len(names)-1] != e.event {
					names = append(names, e.event)
				}
				if e.event == "content_block_delta" {
					d := e.data["delta"].(map[string]any)
					if d["type"] != tt.deltaType {
						t.Fatalf("delta type %v", d["type"])
					}
					text, _ := d["text"].(string)
					partial, _ := d["partial_json"].(string)
					joined.WriteString(text + partial)
				}
				if e.event == "message_delta" {
					if e.data["delta"].(map[string]any)["stop_reason"] != tt.stop {
						t.Fatalf("message_delta %v", e.data)
					}
					if e.data["usage"].(map[string]any)["output_tokens"] == nil {
						t.Fatal("message_delta without usage")
					}
				}
			}
			want := []string{"message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop", "message_delta", "message_stop"}
			if !slices.Equal(names, want) {
				t.Fatalf("events %v, want %v", names, want)
			}
			if joined.String() != tt.joined {
				t.Fatalf("joined deltas %q, want %q", joined.String(), tt.joined)
			}
		})
	}
}

func TestAnthropicErrors(t *testing.T) {
	t.Parallel()
	s := startLLM(t, LLMOptions{APIKey: "ak"})
	body := `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name     string
		headers  map[string]string
		body     string
		status   int
		wantType string
	}{
		{"wrong key", map[string]string{"x-api-key": "nope", "anthropic-version": "2023-06-01"}, body, 401, "authentication_error"},
		{"no version", map[string]string{"x-api-key": "ak"}, body, 400, "invalid_request_error"},
		{"broken json", anthropicHeaders, `{"model":`, 400, "invalid_request_error"},
		{"overloaded", map[string]string{"x-api-key": "ak", "anthropic-version": "2023-06-01", HeaderFail: "529"}, body, 529, "overloaded_error"},
		{"too long", anthropicHeaders, `{"model":"context-limit-5","max_tokens":10,"messages":[{"role":"user","content":"far too long"}]}`, 400, "invalid_request_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := postMessages(t, s, tt.headers, tt.body)
			var e struct {
				Type  string `json:"type"`
				Error struct {
					Type    string `json:"type"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || e.Type != "error" || e.Error.Type != tt.wantType || e.Error.Message == "" {
				t.Fatalf("status %d body %+v", resp.StatusCode, e)
			}
		})
	}
}

func TestAnthropicStreamFailAfter(t *testing.T) {
	t.Parallel()
	s := startLLM(t, LLMOptions{})
	h := map[string]string{"anthropic-version": "2023-06-01", HeaderFailAfter: "3"}
	resp := postMessages(t, s, h, `{"model":"m","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"a b c d"}]}`)
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("stream ended cleanly: %s", b)
	}
	if strings.Contains(string(b), "message_stop") || strings.Count(string(b), "event: ") != 3 {
		t.Fatalf("got %s", b)
	}
}
