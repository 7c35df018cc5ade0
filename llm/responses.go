package llm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

// The Responses API (POST /v1/responses) is served by every deployment. Those whose provider speaks it, openai and
// azure, get the client's bytes with only "model" rewritten and their answer goes back as it came; anthropic
// deployments get it translated (responses_anthropic.go). A stored response lives on the provider account that
// made it, so previous_response_id only works there: responsePins remembers which deployment made each response
// this replica relayed, and a follow-up goes to that deployment alone.

// responsesTarget, for a previous_response_id this replica relayed, finds a deployment of the requested group on
// the provider account that stored it: the client may change model along a conversation, and any deployment of
// that account knows the id. A response another team (or another team-less key) made is refused as not found: the
// provider account is the gateway's, shared by every tenant, and would continue that conversation for whoever names
// its id. carried is the tokens of the conversation the follow-up continues, as far as this replica knows them: the
// provider bills them as input, though the body holds none of them.
func (g *Gateway) responsesTarget(grp *group, req *request, owner string) (d *deployment, carried int64, err error) {
	if req.previousID == "" {
		return nil, 0, nil
	}
	p, ok := g.pins.lookup(req.previousID, time.Now())
	if !ok {
		return nil, 0, nil
	}
	if p.owner != owner {
		return nil, 0, errBadRequest("previous_response_not_found", "Previous response with id %q not found.", req.previousID)
	}
	if p.account == "" {
		return nil, 0, errBadRequest("unsupported_parameter",
			"previous_response_id: response %q was answered by an Anthropic model through the gateway's translation, and %s; send the whole conversation in input instead",
			req.previousID, errNoStore)
	}
	for _, d := range grp.responses.deployments {
		if d.account == p.account {
			return d, p.tokens, nil
		}
	}
	return nil, p.tokens, nil
}

// unsupported refuses a call to a group none of whose deployments can serve it.
func unsupported(grp *group, kind callKind, req *request) error {
	if len(grp.serving(kind, req).deployments) > 0 {
		return nil
	}
	switch {
	case kind == kindResponses && !req.onProvider():
		return errBadRequest("invalid_request", "%v", req.untranslatable())
	case kind == kindResponses:
		return errBadRequest("unsupported_parameter",
			"model %q serves the Responses API through a translation to Anthropic's Messages API (its deployments' providers: %s), and %s: "+
				"previous_response_id, \"store\": true and conversation need an openai or azure deployment; send the whole conversation in input, with \"store\": false or without it",
			grp.name, providersOf(grp), errNoStore)
	default:
		return errBadRequest("model_not_supported",
			"model %q cannot count tokens: its deployments' providers (%s) have no token counting endpoint, only anthropic does",
			grp.name, providersOf(grp))
	}
}

func providersOf(grp *group) string {
	var names []string
	for _, d := range grp.deployments {
		if !slices.Contains(names, string(d.provider)) {
			names = append(names, string(d.provider))
		}
	}
	return strings.Join(names, ", ")
}

// routePinned makes a follow-up's one attempt, on a deployment of the account that stored its
// previous_response_id. It is neither retried nor sent to a fallback: any other account would answer that the id
// does not exist.
func (g *Gateway) routePinned(c *call, d *deployment) (*result, error) {
	one := &group{name: d.group, strategy: StrategyWeighted, deployments: []*deployment{d}}
	if pick(one, nil, time.Now()) == nil {
		ae := unavailable(one, time.Now())
		ae.message = fmt.Sprintf("deployment %s, on the account that stored previous_response_id %q, is not available (cooling down or at capacity); "+
			"the call is not sent to another deployment, which would not know the id", d.label, c.req.previousID)
		return nil, ae
	}
	res, ae, class := g.attempt(c, d)
	if ae != nil {
		if class == outcomeRetry || class == outcomeContextWindow {
			ae.message += fmt.Sprintf("; not retried on another deployment, which would not know previous_response_id %q", c.req.previousID)
		}
		return nil, ae
	}
	return res, nil
}

// Bounds of responsePins: a follow-up usually comes within minutes; an older id, or one pushed out by newer
// ones, routes like a call without one.
const (
	responsePinTTL = 24 * time.Hour
	responsePinMax = 100_000
	// maxPinnedIDLen skips ids no provider makes, so an upstream cannot fill memory through them.
	maxPinnedIDLen = 256
)

type responsePin struct {
	account string // the deployment's account
	owner   string // pinOwner of the call that made the response
	// tokens is the response's input and output, which a follow-up carries as input; 0 while a stream runs.
	tokens  int64
	expires time.Time
}

// pinOwner is who may follow up on the responses a call makes: its key's team, or the key itself without one.
func pinOwner(team, keyID string) string {
	if team != "" {
		return "team:" + team
	}
	return "key:" + keyID
}

// responsePins maps response ids to the deployment that made them, per replica and in memory, bounded by a TTL
// and by a count past which the oldest id is forgotten.
type responsePins struct {
	ttl time.Duration
	max int

	mu   sync.Mutex
	m    map[string]responsePin
	ring []string // ids in the order they came; a new one overwrites the oldest once full
	next int
}

func newResponsePins(ttl time.Duration, max int) *responsePins {
	return &responsePins{ttl: ttl, max: max, m: map[string]responsePin{}}
}

func (p *responsePins) remember(id string, d *deployment, owner string, tokens int64) {
	if id == "" || len(id) > maxPinnedIDLen {
		return
	}
	v := responsePin{account: d.account, owner: owner, tokens: tokens, expires: time.Now().Add(p.ttl)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.m[id]; ok {
		// The first deployment to relay an id made it: another that echoes it later does not take it over.
		return
	}
	if p.ring == nil {
		p.ring = make([]string, p.max)
	}
	if old := p.ring[p.next]; old != "" {
		delete(p.m, old)
	}
	p.ring[p.next] = id
	p.next = (p.next + 1) % p.max
	p.m[id] = v
}

// carried is what a follow-up on a response with this usage carries as input: all of it, saturated rather than
// wrapped (an upstream's counts are only checked not to be negative).
func (u Usage) carried() int64 { return saturatingAdd(u.Input, u.Output) }

func saturatingAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// carry records the tokens of a streamed response, known only at its end, on the pin its start made.
func (p *responsePins) carry(id string, tokens int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if v, ok := p.m[id]; ok {
		v.tokens = tokens
		p.m[id] = v
	}
}

func (p *responsePins) lookup(id string, now time.Time) (responsePin, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[id]
	// An expired pin stays in the map until the ring overwrites its slot: deleting it here would let that slot
	// later delete the same id remembered anew.
	if !ok || now.After(v.expires) {
		return responsePin{}, false
	}
	return v, true
}

// responseID is the "id" of a Responses API response object ("" when absent or not a plain string).
func responseID(obj []byte) string {
	raw := topLevelValue(obj, "id")
	if len(raw) < 2 || raw[0] != '"' || bytes.IndexByte(raw, '\\') >= 0 {
		return ""
	}
	return string(raw[1 : len(raw)-1])
}

// responsesStream relays a Responses API stream unchanged. It learns the response's id from response.created,
// the usage from the terminal response.completed, response.incomplete or response.failed, and ends on an
// error event.
type responsesStream struct {
	pins     *responsePins
	d        *deployment
	owner    string
	id       string // of the response, from response.created
	finished bool
	u        Usage
	deltas   int64 // relayed *.delta events, each about one token
	seq      int64 // the last sequence_number seen: the gateway's own error event follows on from it
}

func (s *responsesStream) event(ev, out []byte) ([]byte, error) {
	name, data := sseData(ev)
	out = append(out, ev...)
	if data == nil {
		return out, nil
	}
	if name == "" {
		// "event:" lines are optional in SSE; the type is in the data too.
		if raw := topLevelValue(data, "type"); len(raw) >= 2 && raw[0] == '"' {
			name = string(raw[1 : len(raw)-1])
		}
	}
	if n, err := intMember(data, "sequence_number"); err == nil && n > s.seq {
		s.seq = n
	}
	switch name {
	case "response.created":
		if r := topLevelValue(data, "response"); r != nil {
			// Pinned now, not at the end: a client may send its follow-up as soon as it read response.completed.
			s.id = responseID(r)
			s.pins.remember(s.id, s.d, s.owner, 0)
		}
	case "response.completed", "response.incomplete":
		s.finished = true
		s.readUsage(data)
	case "response.failed":
		// Terminal, and billed by its usage when it has one, but the model failed: the call is an error.
		s.finished = true
		s.readUsage(data)
		return out, errUpstreamStreamError
	case "error":
		return out, errUpstreamStreamError
	default:
		if strings.HasSuffix(name, ".delta") {
			s.deltas++
		}
		if bytes.HasPrefix(data, []byte(`{"error"`)) {
			return out, errUpstreamStreamError
		}
	}
	return out, nil
}

func (s *responsesStream) readUsage(data []byte) {
	r := topLevelValue(data, "response")
	if r == nil || r[0] != '{' {
		return
	}
	if raw := topLevelValue(r, "usage"); raw != nil && raw[0] == '{' {
		if u, err := responsesUsage.read(raw); err == nil {
			s.u = u
			// Before the client reads the event this came in, and so before it can send a follow-up.
			s.pins.carry(s.id, u.carried())
		}
	}
}

func (s *responsesStream) done() bool           { return s.finished }
func (s *responsesStream) usage() Usage         { return s.u }
func (s *responsesStream) partialOutput() int64 { return s.deltas }

// errorEvent is the Responses API's own error event, which the SDKs raise as an error.
func (s *responsesStream) errorEvent(ae *apiError) []byte {
	b, _ := json.Marshal(struct {
		Type           string  `json:"type"`
		Code           string  `json:"code"`
		Message        string  `json:"message"`
		Param          *string `json:"param"`
		SequenceNumber int64   `json:"sequence_number"`
	}{"error", ae.code, ae.message, nil, s.seq + 1})
	out := append([]byte("event: error\ndata: "), b...)
	return append(out, "\n\n"...)
}

// refuseResponsesWebSocket answers a GET of /v1/responses. The Codex CLI, on OpenAI's built-in provider, first asks
// for the Responses API over a WebSocket and takes only a 426 as "use HTTP": any other refusal (a 404, a 405) it
// retries with backoff, some seven seconds and as many handshakes per session before it falls back to POST.
func refuseResponsesWebSocket(c *fiber.Ctx) error {
	if !strings.EqualFold(c.Get(fiber.HeaderUpgrade), "websocket") {
		c.Set(fiber.HeaderAllow, fiber.MethodPost)
		return fiber.ErrMethodNotAllowed
	}
	writeOpenAIError(c, &apiError{status: fiber.StatusUpgradeRequired, typ: "invalid_request_error", code: "websocket_not_supported",
		message: "the gateway serves the Responses API over HTTP only: POST /v1/responses"})
	return nil
}
