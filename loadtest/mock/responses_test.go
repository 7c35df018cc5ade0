package mock

import (
	"context"
	"errors"
	"strings"
	"testing"

	oai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

func TestResponsesWithOfficialSDK(t *testing.T) {
	t.Parallel()
	s := startLLM(t, LLMOptions{APIKey: "sk-mock"})
	c := oai.NewClient(option.WithBaseURL(s.URL+"/v1/"), option.WithAPIKey("sk-mock"), option.WithMaxRetries(0))
	ctx := context.Background()
	params := func(prompt string, maxOut int64) responses.ResponseNewParams {
		return responses.ResponseNewParams{Model: "gpt-4o-mini", Input: responses.ResponseNewParamsInputUnion{OfString: oai.String(prompt)},
			MaxOutputTokens: oai.Int(maxOut), Instructions: oai.String("be brief")}
	}

	r, err := c.Responses.New(ctx, params("echo these four words", 100))
	if err != nil {
		t.Fatal(err)
	}
	if r.OutputText() != "echo these four words" || r.Status != "completed" || r.Usage.InputTokens != 6 || r.Usage.OutputTokens != 4 ||
		!strings.HasPrefix(r.ID, "resp_") {
		t.Fatalf("response %s", r.RawJSON())
	}

	// A stream carries the OpenAI event sequence; max_output_tokens cuts it to response.incomplete.
	p := params(strings.Repeat("w ", 20), 16)
	p.PreviousResponseID = oai.String(r.ID)
	st := c.Responses.NewStreaming(ctx, p)
	var types []string
	var text strings.Builder
	var final responses.Response
	for i := int64(0); st.Next(); i++ {
		ev := st.Current()
		if ev.SequenceNumber != i {
			t.Fatalf("event %d has sequence_number %d", i, ev.SequenceNumber)
		}
		types = append(types, ev.Type)
		if ev.Type == "response.output_text.delta" {
			text.WriteString(ev.Delta)
		}
		final = ev.Response
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"}
	if strings.Join(types[:4], " ") != strings.Join(want, " ") || types[len(types)-1] != "response.incomplete" ||
		text.String() != strings.TrimSpace(strings.Repeat("w ", 16)) || final.Usage.OutputTokens != 16 ||
		final.IncompleteDetails.Reason != "max_output_tokens" || final.PreviousResponseID != r.ID {
		t.Fatalf("events %v, text %q, final %s", types, text.String(), final.RawJSON())
	}

	// An id this server never made is not found, as on another provider account.
	p = params("hi", 100)
	p.PreviousResponseID = oai.String("resp_elsewhere")
	_, err = c.Responses.New(ctx, p)
	var ae *oai.Error
	if !errors.As(err, &ae) || ae.StatusCode != 404 || ae.Code != "previous_response_not_found" {
		t.Fatalf("unknown previous_response_id: %v", err)
	}
}
