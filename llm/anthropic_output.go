package llm

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Thinking and structured output: what an Anthropic request asks of its reply beyond the messages, and the
// OpenAI chat parameters they become.

type anthropicThinking struct {
	Type         string `json:"type"` // enabled | adaptive | disabled
	BudgetTokens int64  `json:"budget_tokens,omitempty"`
}

type anthropicOutput struct {
	Effort string           `json:"effort,omitempty"` // low | medium | high | max
	Format *anthropicFormat `json:"format,omitempty"`
}

// anthropicFormat asks for structured output: a reply that is JSON matching Schema.
type anthropicFormat struct {
	Type   string          `json:"type"` // json_schema
	Schema json.RawMessage `json:"schema"`
}

// openAIResponseFormat is chat's response_format for a JSON schema.
type openAIResponseFormat struct {
	Type       string `json:"type"`
	JSONSchema struct {
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
		Strict bool            `json:"strict"`
	} `json:"json_schema"`
}

// responseFormat translates structured output, which Claude Code asks of its small model for session titles
// and memory selection and parses as JSON. Anthropic guarantees the schema, as OpenAI's strict mode does; but
// strict mode refuses a schema with an optional property or open object, which Anthropic takes, so such a
// schema goes without strict, as guidance, rather than failing the call.
func (in *anthropicRequest) responseFormat() (*openAIResponseFormat, error) {
	f := in.OutputFormat
	if f == nil && in.OutputConfig != nil {
		f = in.OutputConfig.Format
	}
	if f == nil {
		return nil, nil
	}
	if f.Type != "json_schema" || len(f.Schema) == 0 {
		return nil, fmt.Errorf("output format %q cannot be translated: only json_schema with a schema can", f.Type)
	}
	var schema any
	if err := json.Unmarshal(f.Schema, &schema); err != nil {
		return nil, fmt.Errorf("output format schema: %v", err)
	}
	out := &openAIResponseFormat{Type: "json_schema"}
	out.JSONSchema.Name, out.JSONSchema.Schema, out.JSONSchema.Strict = "structured_output", f.Schema, strictSchema(schema)
	return out, nil
}

// strictSchema reports whether OpenAI's strict mode takes schema: every object closed (additionalProperties
// false) with every property required, in nested schemas too.
func strictSchema(schema any) bool {
	switch v := schema.(type) {
	case []any:
		for _, s := range v {
			if !strictSchema(s) {
				return false
			}
		}
	case map[string]any:
		props, _ := v["properties"].(map[string]any)
		if v["type"] == "object" || props != nil {
			if v["additionalProperties"] != false {
				return false
			}
			required, _ := v["required"].([]any)
			for name := range props {
				if !slices.Contains(required, any(name)) {
					return false
				}
			}
		}
		for _, s := range props {
			if !strictSchema(s) {
				return false
			}
		}
		for _, k := range []string{"items", "anyOf", "oneOf", "allOf", "$defs", "definitions"} {
			sub := v[k]
			if defs, ok := sub.(map[string]any); ok && (k == "$defs" || k == "definitions") {
				for _, s := range defs {
					if !strictSchema(s) {
						return false
					}
				}
				continue
			}
			if sub != nil && !strictSchema(sub) {
				return false
			}
		}
	}
	return true
}

// reasoningEffort is OpenAI's reasoning_effort for the request's thinking, as LiteLLM maps it: its effort when
// it names one, else its budget (under 4,096 tokens low, under 16,384 medium, more high), and medium for
// adaptive thinking without an effort. No thinking, or thinking disabled, leaves the model's default.
func (in *anthropicRequest) reasoningEffort() string {
	if in.Thinking == nil || (in.Thinking.Type != "enabled" && in.Thinking.Type != "adaptive") {
		return ""
	}
	if in.OutputConfig != nil {
		switch in.OutputConfig.Effort {
		case "low", "medium", "high":
			return in.OutputConfig.Effort
		case "max":
			// OpenAI's levels above high exist for a few models only.
			return "high"
		}
	}
	switch b := in.Thinking.BudgetTokens; {
	case in.Thinking.Type == "adaptive":
		return "medium"
	case b < 4096:
		return "low"
	case b < 16384:
		return "medium"
	}
	return "high"
}
