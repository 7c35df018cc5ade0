package mock

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkA2A measures the A2A mock alone under the k6 script's request
// (A2A 1.0 SendMessage, a new task per message), so a load test can tell the
// mock's cost from the gateway's, and a store that grows with every task
// shows up as a cost per op that rises with b.N.
func BenchmarkA2A(b *testing.B) {
	s, err := StartA2A("127.0.0.1:0", A2AOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var seq atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := strconv.FormatInt(seq.Add(1), 10)
			body := `{"jsonrpc":"2.0","id":"` + id + `","method":"SendMessage","params":{"message":{"messageId":"m-` + id +
				`","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`
			req, err := http.NewRequest(http.MethodPost, s.URL+"/", strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("A2A-Version", "1.0")
			req.Header.Set("Content-Type", "application/json")
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			var buf [4096]byte
			n, _ := res.Body.Read(buf[:])
			_ = res.Body.Close()
			if res.StatusCode != http.StatusOK || !strings.Contains(string(buf[:n]), "TASK_STATE_COMPLETED") {
				b.Fatalf("status %d: %s", res.StatusCode, buf[:n])
			}
		}
	})
}
