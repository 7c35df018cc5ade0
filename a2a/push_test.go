package a2a_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
)

// pushGateway serves one push-capable upstream as two agents: "pushy", for
// which the gateway allows push notification configs, and "plain", for
// which it does not.
func pushGateway(t *testing.T) (*harness, *taskAgent) {
	t.Helper()
	up := startTaskAgent(t)
	card := up.URL + "/.well-known/agent-card.json"
	h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{
		{Name: "pushy", CardURL: card, PushNotifications: true},
		{Name: "plain", CardURL: card},
	}})
	return h, up
}

func cardOffersPush(t *testing.T, h *harness, agent, version string) bool {
	t.Helper()
	status, _, body := h.get("/a2a/"+agent+"/.well-known/agent-card.json", keyAlice, version)
	var card struct {
		Capabilities struct {
			PushNotifications bool `json:"pushNotifications"`
		} `json:"capabilities"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &card) != nil {
		t.Fatalf("card of %s: %d %s", agent, status, body)
	}
	return card.Capabilities.PushNotifications
}

// The webhook of a push notification config is called by the agent, from
// its network, and the gateway sees none of those calls: an agent takes
// them only when its config says push_notifications: true.
func TestPushNotificationsNeedTheAgentsOptIn(t *testing.T) {
	t.Parallel()
	h, up := pushGateway(t)
	var pushes atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("A2A-Notification-Token") == "hook-token" {
			pushes.Add(1)
		}
	}))
	defer hook.Close()

	for _, v := range versions {
		t.Run(string(v)+"/plain", func(t *testing.T) {
			ctx := testCtx(t)
			if cardOffersPush(t, h, "plain", string(v)) {
				t.Error("plain's card offers push notifications")
			}
			c := h.client(keyAlice, "plain", v)
			res, err := c.SendMessage(ctx, textMessage("weather"))
			if err != nil {
				t.Fatal(err)
			}
			id := res.(*a2a.Task).ID
			url := hook.URL + "/plain-" + string(v)
			withPush := textMessage("weather")
			withPush.Config = &a2a.SendMessageConfig{PushConfig: &a2a.PushConfig{URL: url, Token: "hook-token"}}
			calls := map[string]func() error{
				"send with a config": func() error { _, err := c.SendMessage(ctx, withPush); return err },
				"stream with a config": func() error {
					for _, err := range c.SendStreamingMessage(ctx, withPush) {
						return err
					}
					return nil
				},
				"create": func() error {
					_, err := c.CreateTaskPushConfig(ctx, &a2a.PushConfig{TaskID: id, URL: url, Token: "hook-token"})
					return err
				},
				"get": func() error {
					_, err := c.GetTaskPushConfig(ctx, &a2a.GetTaskPushConfigRequest{TaskID: id, ID: "any"})
					return err
				},
				"list": func() error {
					_, err := c.ListTaskPushConfigs(ctx, &a2a.ListTaskPushConfigRequest{TaskID: id})
					return err
				},
				"delete": func() error {
					return c.DeleteTaskPushConfig(ctx, &a2a.DeleteTaskPushConfigRequest{TaskID: id, ID: "any"})
				},
			}
			for name, call := range calls {
				if err := call(); !errors.Is(err, a2a.ErrPushNotificationNotSupported) {
					t.Errorf("%s: err = %v, want push notifications not supported", name, err)
				}
			}
			if up.received(url) {
				t.Error("the agent received plain's webhook URL")
			}
		})

		t.Run(string(v)+"/pushy", func(t *testing.T) {
			ctx := testCtx(t)
			if !cardOffersPush(t, h, "pushy", string(v)) {
				t.Error("pushy's card does not offer push notifications")
			}
			c := h.client(keyAlice, "pushy", v)
			before := pushes.Load()
			first := textMessage("weather")
			first.Config = &a2a.SendMessageConfig{PushConfig: &a2a.PushConfig{URL: hook.URL, Token: "hook-token"}}
			res, err := c.SendMessage(ctx, first)
			if err != nil {
				t.Fatal(err)
			}
			id := res.(*a2a.Task).ID
			deadline := time.Now().Add(5 * time.Second)
			for pushes.Load() == before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if pushes.Load() == before {
				t.Error("the webhook of the message's push config was not called")
			}
			created, err := c.CreateTaskPushConfig(ctx, &a2a.PushConfig{TaskID: id, URL: hook.URL, Token: "hook-token"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.GetTaskPushConfig(ctx, &a2a.GetTaskPushConfigRequest{TaskID: id, ID: created.ID}); err != nil {
				t.Errorf("get: %v", err)
			}
			if list, err := c.ListTaskPushConfigs(ctx, &a2a.ListTaskPushConfigRequest{TaskID: id}); err != nil || len(list) == 0 {
				t.Errorf("list: %d configs, %v", len(list), err)
			}
			if err := c.DeleteTaskPushConfig(ctx, &a2a.DeleteTaskPushConfigRequest{TaskID: id, ID: created.ID}); err != nil {
				t.Errorf("delete: %v", err)
			}
		})
	}

	// The send fast path forwards the client's bytes: a config hidden from
	// Go's decoder by a case variant must not reach the agent either.
	t.Run("raw 1.0 send", func(t *testing.T) {
		send := `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":%q,"role":"ROLE_USER","parts":[{"text":"hi"}]},%s}}`
		tests := []struct {
			name, config string
			code         int // 0: success
		}{
			{"config", `"configuration":{"taskPushNotificationConfig":{"url":"%s"}}`, -32003},
			{"config undone by a case variant", `"configuration":{"taskPushNotificationConfig":{"url":"%s"}},"Configuration":null`, 0},
			{"config in a case variant", `"Configuration":{"taskPushNotificationConfig":{"url":"%s"}}`, -32003},
		}
		for i, tt := range tests {
			url := fmt.Sprintf("%s/raw-%d", hook.URL, i)
			_, _, body := h.post("/a2a/plain", keyAlice, "1.0", fmt.Sprintf(send, fmt.Sprintf("raw-%d", i), fmt.Sprintf(tt.config, url)))
			var resp struct {
				Error *wireError `json:"error"`
			}
			if err := json.Unmarshal([]byte(body), &resp); err != nil {
				t.Fatalf("%s: %s", tt.name, body)
			}
			switch {
			case tt.code == 0 && resp.Error != nil, tt.code != 0 && (resp.Error == nil || resp.Error.Code != tt.code):
				t.Errorf("%s: answer %s, want code %d", tt.name, body, tt.code)
			}
			if up.received(url) {
				t.Errorf("%s: the agent received the webhook URL", tt.name)
			}
		}
	})
}

// Turning push notifications on is a reload away, like any agent setting.
func TestPushNotificationsFollowAReload(t *testing.T) {
	t.Parallel()
	h, up := pushGateway(t)
	card := up.URL + "/.well-known/agent-card.json"
	if cardOffersPush(t, h, "plain", "1.0") {
		t.Fatal("plain's card offers push notifications before the reload")
	}
	if err := h.GW.Reload(sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "plain", CardURL: card, PushNotifications: true}}}); err != nil {
		t.Fatal(err)
	}
	if !cardOffersPush(t, h, "plain", "1.0") {
		t.Error("plain's card does not offer push notifications after the reload")
	}
}
