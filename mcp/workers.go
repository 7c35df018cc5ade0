package mcp

import (
	"sync"
	"time"
)

// workerIdle is how long a worker waits for its next message before it
// exits.
const workerIdle = 10 * time.Second

// workers run the MCP messages on long-lived goroutines. The fasthttp
// adaptor serves every request on a goroutine of its own, whose stack starts
// small; mcp-go's decoding and dispatch grow it several times per message,
// and under load the stack copies cost about a tenth of the gateway's CPU.
// A worker keeps the stack it grew for the messages that follow.
type workers struct {
	jobs chan *job
	stop chan struct{}
	once sync.Once
}

// job is one message: run on a worker, done closed after it, with the panic
// it raised if any (re-raised on the caller's goroutine).
type job struct {
	run      func()
	done     chan struct{}
	panicked any
}

func newWorkers() *workers {
	return &workers{jobs: make(chan *job), stop: make(chan struct{})}
}

// do runs f on a worker and returns when it is done. An idle worker takes
// it, or a new one starts; a panic in f is raised again here, so the HTTP
// server's recovery sees it as before.
func (ws *workers) do(f func()) {
	j := &job{run: f, done: make(chan struct{})}
	select {
	case ws.jobs <- j:
	default:
		go ws.work(j)
	}
	<-j.done
	if j.panicked != nil {
		panic(j.panicked)
	}
}

func (ws *workers) work(j *job) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		j.exec()
		idle.Reset(workerIdle)
		select {
		case j = <-ws.jobs:
		case <-idle.C:
			return
		case <-ws.stop:
			return
		}
	}
}

func (j *job) exec() {
	defer func() {
		j.panicked = recover()
		close(j.done)
	}()
	j.run()
}

// close lets idle workers exit; a message in progress finishes.
func (ws *workers) close() {
	ws.once.Do(func() { close(ws.stop) })
}
