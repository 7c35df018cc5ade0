package app

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// sendTask sends one message as the key and returns the id of the task the agent made.
func sendTask(t *testing.T, g *secGateway, key string) string {
	t.Helper()
	r := g.raw(t, "POST", "/a2a/researcher", withHeaders(a2aHeader, map[string]string{"Authorization": "Bearer " + key}), a2aSend)
	var v struct {
		Result struct {
			Task struct {
				ID string `json:"id"`
			} `json:"task"`
		} `json:"result"`
	}
	if r.status != 200 || json.Unmarshal([]byte(r.body), &v) != nil || v.Result.Task.ID == "" {
		t.Fatalf("send: %d %.400s", r.status, r.body)
	}
	return v.Result.Task.ID
}

var (
	jsonrpcID = regexp.MustCompile(`"id":\s*(\d+|"[^"]*")`)
	timestamp = regexp.MustCompile(`"timestamp":"[^"]*"`)
)

// a2aAnswer drops what may differ between two refusals: the request id, the task id asked for and the time.
func a2aAnswer(r rawResponse, taskID string) string {
	body := strings.ReplaceAll(rpcPayload(r), taskID, "TASK")
	return timestamp.ReplaceAllString(jsonrpcID.ReplaceAllString(body, `"id":ID`), `"timestamp":TS`)
}

// Another key's task does not exist for you: get, cancel, subscribe and push-config calls answer exactly as for
// a task id nobody made, the agent never hears of them, and a duplicate "id" cannot smuggle the task past the
// ownership check.
func TestSecurityA2ATaskOwnership(t *testing.T) {
	t.Parallel()
	g := startSecGateway(t)
	aliceTask := sendTask(t, g, secAliceKey)
	bobTask := sendTask(t, g, secBobKey)
	const unknown = "00000000-0000-4000-8000-000000000000"
	bob := withHeaders(a2aHeader, map[string]string{"Authorization": "Bearer " + secBobKey})

	type method struct{ method, params string }
	v1 := []method{
		{"GetTask", `{"id":"TASK"}`},
		{"CancelTask", `{"id":"TASK"}`},
		{"SubscribeToTask", `{"id":"TASK"}`},
		{"GetTaskPushNotificationConfig", `{"taskId":"TASK","id":"cfg-1"}`},
		{"ListTaskPushNotificationConfigs", `{"taskId":"TASK"}`},
		{"DeleteTaskPushNotificationConfig", `{"taskId":"TASK","id":"cfg-1"}`},
		{"CreateTaskPushNotificationConfig", `{"taskId":"TASK","url":"http://127.0.0.1:1/hook"}`},
		{"SendMessage", `{"message":{"messageId":"m2","role":"ROLE_USER","taskId":"TASK","parts":[{"text":"hijack"}]}}`},
	}
	v03 := []method{
		{"tasks/get", `{"id":"TASK"}`},
		{"tasks/cancel", `{"id":"TASK"}`},
		{"tasks/resubscribe", `{"id":"TASK"}`},
		{"tasks/pushNotificationConfig/get", `{"id":"TASK","pushNotificationConfigId":"cfg-1"}`},
		{"tasks/pushNotificationConfig/list", `{"id":"TASK"}`},
		{"tasks/pushNotificationConfig/delete", `{"id":"TASK","pushNotificationConfigId":"cfg-1"}`},
		{"tasks/pushNotificationConfig/set", `{"taskId":"TASK","pushNotificationConfig":{"url":"http://127.0.0.1:1/hook"}}`},
		{"message/send", `{"message":{"kind":"message","messageId":"m3","role":"user","taskId":"TASK","parts":[{"kind":"text","text":"hijack"}]}}`},
	}
	for _, version := range []struct {
		header  map[string]string
		methods []method
	}{{a2aHeader, v1}, {map[string]string{"A2A-Version": "0.3"}, v03}} {
		bob := withHeaders(version.header, map[string]string{"Authorization": "Bearer " + secBobKey})
		for _, m := range version.methods {
			t.Run(m.method, func(t *testing.T) {
				body := func(task string) string {
					return `{"jsonrpc":"2.0","id":5,"method":"` + m.method + `","params":` + strings.ReplaceAll(m.params, "TASK", task) + `}`
				}
				before := g.a2a.work.Load()
				theirs := g.raw(t, "POST", "/a2a/researcher", bob, body(aliceTask))
				if n := g.a2a.work.Load() - before; n != 0 {
					t.Errorf("the agent heard of another key's task %d times: %s", n, g.a2a.lastBody())
				}
				nobody := g.raw(t, "POST", "/a2a/researcher", bob, body(unknown))
				checkShape(t, shapeJSONRPC, theirs)
				if theirs.status != nobody.status || a2aAnswer(theirs, aliceTask) != a2aAnswer(nobody, unknown) {
					t.Errorf("another key's task answers unlike a missing one:\ntheirs %d %s\nnobody %d %s",
						theirs.status, theirs.body, nobody.status, nobody.body)
				}
				noSecret(t, theirs)
			})
		}
	}

	t.Run("duplicate id", func(t *testing.T) {
		for _, params := range []string{
			`{"id":"` + bobTask + `","id":"` + aliceTask + `"}`,
			`{"id":"` + aliceTask + `","id":"` + bobTask + `"}`,
			`{"id":"` + bobTask + `","ID":"` + aliceTask + `"}`,
			`{"id":"` + bobTask + `","Id":"` + aliceTask + `"}`,
		} {
			for _, method := range []string{"GetTask", "CancelTask"} {
				r := g.raw(t, "POST", "/a2a/researcher", bob, `{"jsonrpc":"2.0","id":6,"method":"`+method+`","params":`+params+`}`)
				if strings.Contains(g.a2a.lastBody(), aliceTask) {
					t.Errorf("%s %s: the agent was asked about alice's task: %s", method, params, g.a2a.lastBody())
				}
				if strings.Contains(r.body, aliceTask) {
					t.Errorf("%s %s: the answer shows alice's task: %.300s", method, params, r.body)
				}
			}
		}
	})

	t.Run("ListTasks", func(t *testing.T) {
		r := g.raw(t, "POST", "/a2a/researcher", bob, `{"jsonrpc":"2.0","id":7,"method":"ListTasks","params":{}}`)
		if strings.Contains(r.body, aliceTask) {
			t.Errorf("bob's list shows alice's task: %.400s", r.body)
		}
	})

	// Alice still owns and can read her task: the refusals were about the key.
	r := g.raw(t, "POST", "/a2a/researcher", withHeaders(a2aHeader, aliceAuth),
		`{"jsonrpc":"2.0","id":8,"method":"GetTask","params":{"id":"`+aliceTask+`"}}`)
	if r.status != 200 || !strings.Contains(r.body, aliceTask) || strings.Contains(r.body, `"error"`) {
		t.Errorf("owner GetTask: %d %.300s", r.status, r.body)
	}
	assertLogsClean(t, g)
}
