package mcp

import (
	"net/http"
	"sync"
	"testing"
)

// Workers run each message to its end before do returns, in parallel when
// messages overlap, re-raise a message's panic on the caller, and keep
// running messages after close (on workers that exit once done).
func TestWorkersRunPanicAndClose(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		closed bool
		panics any
	}{
		{name: "runs"},
		{name: "re-raises a panic", panics: "boom"},
		{name: "re-raises the abort sentinel", panics: http.ErrAbortHandler},
		{name: "runs after close", closed: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ws := newWorkers()
			t.Cleanup(ws.close)
			if tc.closed {
				ws.close()
			}
			var got any
			ran := false
			func() {
				defer func() { got = recover() }()
				ws.do(func() {
					ran = true
					if tc.panics != nil {
						panic(tc.panics)
					}
				})
			}()
			if !ran || got != tc.panics {
				t.Fatalf("ran %v, panic %v; want %v", ran, got, tc.panics)
			}
			// Overlapping messages each get a worker: none waits for another.
			var wg sync.WaitGroup
			release := make(chan struct{})
			started := make(chan struct{}, 4)
			for range 4 {
				wg.Go(func() {
					ws.do(func() {
						started <- struct{}{}
						<-release
					})
				})
			}
			for range 4 {
				waitSignal(t, started, "overlapping messages to run together")
			}
			close(release)
			wg.Wait()
		})
	}
}
