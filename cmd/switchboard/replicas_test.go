package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

const (
	replicaAdminKey  = "sk-replica-admin-0000000000000000"
	replicaRateKey   = "sk-replica-rate-00000000000000000"
	replicaBudgetKey = "sk-replica-budget-000000000000000"
	replicaRPM       = 600
	// replicaBudget is 0.001 USD; at 1 USD per million tokens a call costs
	// a few thousand nano-USD, so about a hundred calls fit.
	replicaBudget = 1_000_000
	// replicaMaxTokens bounds each call's output, and so its estimate.
	replicaMaxTokens = 10
)

func replicaConfig(listen, llmURL, agentURL, redisAddr, prefix, dir string) string {
	return fmt.Sprintf(`server: {listen: %q}
log: {format: text, level: warn}
models:
  - name: m
    deployments: [{provider: openai, base_url: "%s/v1", model: gpt-4o-mini}]
    pricing: {input_per_mtok: 1, output_per_mtok: 1}
a2a:
  agents: [{name: researcher, card_url: "%s/.well-known/agent-card.json"}]
governance:
  secret: replica-test-secret-0123456789
  admin_key: %s
  keys:
    - {name: rate-agent, key: %s, limits: {rpm: %d}}
    - {name: budget-agent, key: %s, budget: {usd: 0.001}}
  redis: {addr: %q, prefix: %q, timeout: 2s, fail_mode: closed}
storage: {sqlite: {path: %q}}
trace: {spill_dir: %q}
`, listen, llmURL, agentURL, replicaAdminKey, replicaRateKey, replicaRPM, replicaBudgetKey, redisAddr, prefix,
		filepath.Join(dir, "sb.db"), filepath.Join(dir, "spill"))
}

type replicaResult struct {
	code int
	cost int64 // nano-USD from x-switchboard-cost-usd
	typ  string
	body string
}

func replicaChat(t *testing.T, client *http.Client, base, key string) replicaResult {
	body := fmt.Sprintf(`{"model":"m","max_tokens":%d,"messages":[{"role":"user","content":"hello there"}]}`, replicaMaxTokens)
	code, hdr, b := replicaPost(t, client, base+"/v1/chat/completions", key, body)
	r := replicaResult{code: code, body: b}
	if c := hdr.Get("x-switchboard-cost-usd"); c != "" {
		n, err := governance.USD(c).NanoUSD()
		if err != nil {
			t.Errorf("cost header %q: %v", c, err)
		}
		r.cost = n
	}
	var e struct {
		Error struct{ Type string } `json:"error"`
	}
	if json.Unmarshal([]byte(b), &e) == nil {
		r.typ = e.Error.Type
	}
	return r
}

func replicaPost(t *testing.T, client *http.Client, url, key, body string) (int, http.Header, string) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("A2A-Version", "1.0")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// fire sends n calls spread round-robin over the replicas, conc at a time.
func fire(t *testing.T, bases []string, key string, n, conc int) []replicaResult {
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
	out := make([]replicaResult, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				out[i] = replicaChat(t, client, bases[i%len(bases)], key)
			}
		})
	}
	wg.Wait()
	return out
}

// Three gateway processes sharing one Redis behave as one gateway.
func TestReplicasShareGovernance(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts three gateways")
	}
	redisAddr := os.Getenv("SWITCHBOARD_TEST_REDIS")
	if redisAddr == "" {
		t.Skip("SWITCHBOARD_TEST_REDIS is unset (deploy/redis.sh start; SWITCHBOARD_TEST_REDIS=127.0.0.1:6379)")
	}
	dir := t.TempDir()
	bin := buildGateway(t, dir)
	llmUp, err := mock.StartLLM("127.0.0.1:0", mock.LLMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer llmUp.Close()
	agentUp, err := mock.StartA2A("127.0.0.1:0", mock.A2AOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer agentUp.Close()
	id := make([]byte, 6)
	_, _ = rand.Read(id)
	prefix := "sbreplicas:" + hex.EncodeToString(id) + ":"

	var bases []string
	for i := range 3 {
		rdir := filepath.Join(dir, fmt.Sprintf("r%d", i))
		if err := os.MkdirAll(rdir, 0o700); err != nil {
			t.Fatal(err)
		}
		addr := freeAddr(t)
		cfgPath := filepath.Join(rdir, "switchboard.yaml")
		if err := os.WriteFile(cfgPath, []byte(replicaConfig(addr, llmUp.URL, agentUp.URL, redisAddr, prefix, rdir)), 0o600); err != nil {
			t.Fatal(err)
		}
		base := runGateway(t, bin, cfgPath, addr).base
		waitFor(t, fmt.Sprintf("replica %d to be ready", i), func() bool {
			resp, err := http.Get(base + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		bases = append(bases, base)
	}

	t.Run("rpm holds across replicas", func(t *testing.T) {
		start := time.Now()
		res := fire(t, bases, replicaRateKey, 900, 30)
		elapsed := time.Since(start)
		var ok, limited int
		for _, r := range res {
			switch {
			case r.code == http.StatusOK:
				ok++
			case r.code == http.StatusTooManyRequests && r.typ == "rate_limit_exceeded":
				limited++
			default:
				t.Fatalf("unexpected answer %d %s", r.code, r.body)
			}
		}
		// The bucket refills rpm/60 per second while the calls run: that much
		// more is the limit working, not leaking.
		refill := int(elapsed.Seconds()*replicaRPM/60) + 1
		t.Logf("rpm %d over 3 replicas: %d admitted, %d limited in %v (refill allowance %d)", replicaRPM, ok, limited, elapsed, refill)
		if ok < replicaRPM*99/100 || ok > replicaRPM*101/100+refill {
			t.Fatalf("admitted %d, want %d..%d", ok, replicaRPM*99/100, replicaRPM*101/100+refill)
		}
	})

	t.Run("budget is not overspent in parallel", func(t *testing.T) {
		client := &http.Client{Timeout: 30 * time.Second}
		// Spend most of the budget first, one call at a time.
		var spent int64
		var maxCost int64
		for i := 0; spent < replicaBudget*9/10; i++ {
			r := replicaChat(t, client, bases[i%3], replicaBudgetKey)
			if r.code != http.StatusOK {
				t.Fatalf("pre-spend call %d: %d %s", i, r.code, r.body)
			}
			spent += r.cost
			maxCost = max(maxCost, r.cost)
		}
		res := fire(t, bases, replicaBudgetKey, 1000, 100)
		var ok, denied int
		for _, r := range res {
			switch {
			case r.code == http.StatusOK:
				ok++
				spent += r.cost
				maxCost = max(maxCost, r.cost)
			case r.code == http.StatusTooManyRequests && r.typ == "budget_exceeded":
				denied++
			default:
				t.Fatalf("unexpected answer %d %s", r.code, r.body)
			}
		}
		// A call's estimate is at most (request bytes + max_tokens) tokens at 1 USD per million.
		estimate := int64(200+replicaMaxTokens) * 1000
		t.Logf("budget %d nano-USD: %d admitted, %d denied, settled %d (overspend %d; one estimate ≤ %d)",
			replicaBudget, ok, denied, spent, spent-replicaBudget, estimate)
		if spent > replicaBudget+estimate {
			t.Fatalf("settled %d nano-USD against a budget of %d", spent, replicaBudget)
		}
		if denied == 0 {
			t.Fatal("nothing was denied: the budget was not reached")
		}
		// Every replica reports the same spend, equal to the sum of the calls' costs.
		for i, base := range bases {
			code, _, body := replicaGet(t, base+"/admin/keys/budget-agent/usage")
			var u struct {
				Key struct {
					SpendNanoUSD int64 `json:"spend_nano_usd"`
				} `json:"key"`
			}
			if code != http.StatusOK || json.Unmarshal([]byte(body), &u) != nil || u.Key.SpendNanoUSD != spent {
				t.Fatalf("replica %d usage: %d %s, want spend %d", i, code, body, spent)
			}
		}
	})

	t.Run("key created on A authenticates on B at once", func(t *testing.T) {
		client := &http.Client{Timeout: 30 * time.Second}
		code, _, body := replicaPost(t, client, bases[0]+"/admin/keys", replicaAdminKey, `{"name":"fresh-agent"}`)
		var created struct{ Key string }
		if code != http.StatusCreated || json.Unmarshal([]byte(body), &created) != nil || created.Key == "" {
			t.Fatalf("create key on A: %d %s", code, body)
		}
		for i, base := range bases[1:] {
			if r := replicaChat(t, client, base, created.Key); r.code != http.StatusOK {
				t.Fatalf("replica %d refused the new key: %d %s", i+1, r.code, r.body)
			}
		}
	})

	t.Run("A2A task created via A is found via B", func(t *testing.T) {
		client := &http.Client{Timeout: 30 * time.Second}
		send := `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`
		code, _, body := replicaPost(t, client, bases[0]+"/a2a/researcher", replicaRateKey, send)
		var sent struct {
			Result struct {
				Task struct{ ID string } `json:"task"`
			} `json:"result"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &sent) != nil || sent.Result.Task.ID == "" {
			t.Fatalf("SendMessage via A: %d %s", code, body)
		}
		get := fmt.Sprintf(`{"jsonrpc":"2.0","id":2,"method":"GetTask","params":{"id":%q}}`, sent.Result.Task.ID)
		code, _, body = replicaPost(t, client, bases[1]+"/a2a/researcher", replicaRateKey, get)
		var got struct {
			Result struct{ ID string } `json:"result"`
			Error  any                 `json:"error"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || got.Error != nil || got.Result.ID != sent.Result.Task.ID {
			t.Fatalf("GetTask via B: %d %s", code, body)
		}
		// Another key still cannot see it, through any replica.
		code, _, body = replicaPost(t, client, bases[2]+"/a2a/researcher", replicaBudgetKey, get)
		if !strings.Contains(body, `"error"`) {
			t.Fatalf("another key fetched the task via C: %d %s", code, body)
		}
	})
}

func replicaGet(t *testing.T, url string) (int, http.Header, string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+replicaAdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
