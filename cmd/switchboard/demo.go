package main

import (
	"context"
	_ "embed"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/spf13/cobra"

	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

//go:embed demo.yaml
var demoConfig []byte

// Fixed loopback ports, so the embedded demo config can name its upstreams; the keys are the ones demo.yaml
// declares.
const (
	demoKey       = "sk-sb-demo-0000000000000000000000000000"
	demoAgentsKey = "sk-sb-demo-agents-000000000000000000000"
	demoAdminKey  = "sk-sb-admin-demo-0000000000000000000000"
	demoLLMAddr   = "127.0.0.1:19101"
	demoMCPAddr   = "127.0.0.1:19201"
	demoAgentAddr = "127.0.0.1:19301"
	demoPeerAddr  = "127.0.0.1:19302"
)

func demoCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start the gateway with built-in demo upstreams (no keys, no ClickHouse needed)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Parse(demoConfig, "demo.yaml")
			if err != nil {
				return err
			}
			if listen, _ := cmd.Flags().GetString("listen"); listen != "" {
				cfg.Server.Listen = listen
			}
			base := "http://" + cfg.Server.Listen
			stop, err := startDemoUpstreams(base)
			if err != nil {
				return err
			}
			defer stop()
			out := cmd.OutOrStdout()
			printDemoIntro(out, base)
			if run, _ := cmd.Flags().GetBool("workflow"); run {
				go runDemoWorkflow(out, base)
			}
			return run(cfg, "")
		},
	}
	cmd.Flags().String("listen", "", "address to serve on (default from the demo config, 127.0.0.1:8080)")
	cmd.Flags().Bool("workflow", true, "once ready, run one agent workflow through the gateway so /ui has a trace to show")
	return cmd
}

// startDemoUpstreams starts the mock LLM, the MCP server and two A2A agents; the returned func stops them. The
// researcher agent asks a model, calls a tool and delegates to the writer, which asks a model again: all of it
// through the gateway at base, under one traceparent.
func startDemoUpstreams(base string) (func(), error) {
	var servers []*mock.Server
	stop := func() {
		for _, s := range servers {
			s.Close()
		}
	}
	fail := func(what, addr string, err error) (func(), error) {
		stop()
		return nil, fmt.Errorf("demo %s on %s: %w", what, addr, err)
	}
	llm, err := mock.StartLLM(demoLLMAddr, mock.LLMOptions{Latency: 20 * time.Millisecond})
	if err != nil {
		return fail("LLM upstream", demoLLMAddr, err)
	}
	servers = append(servers, &llm.Server)
	tools, err := mock.StartMCP(demoMCPAddr, mock.MCPOptions{Name: "weather"})
	if err != nil {
		return fail("MCP upstream", demoMCPAddr, err)
	}
	servers = append(servers, &tools.Server)
	gateway := func() string { return base }
	writer, err := mock.StartA2A(demoPeerAddr, mock.A2AOptions{Name: "writer",
		OnMessage: mock.GatewayAgent{Gateway: gateway, Key: demoAgentsKey, Model: "claude-haiku"}.OnMessage})
	if err != nil {
		return fail("A2A agent", demoPeerAddr, err)
	}
	servers = append(servers, &writer.Server)
	researcher, err := mock.StartA2A(demoAgentAddr, mock.A2AOptions{Name: "researcher",
		OnMessage: mock.GatewayAgent{Gateway: gateway, Key: demoAgentsKey, Model: "gpt-4o-mini",
			Tool: "weather__get_forecast", Agent: "writer"}.OnMessage})
	if err != nil {
		return fail("A2A agent", demoAgentAddr, err)
	}
	servers = append(servers, &researcher.Server)
	return stop, nil
}

// runDemoWorkflow waits for the gateway, then asks the researcher agent one question through it.
func runDemoWorkflow(out io.Writer, base string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-ctx.Done():
			slog.Warn("demo workflow skipped: the gateway did not become ready")
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	card := &a2a.AgentCard{SupportedInterfaces: []*a2a.AgentInterface{{
		URL: base + "/a2a/researcher", ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: a2a.Version}}}
	client, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithDefaultsDisabled(),
		a2aclient.WithJSONRPCTransport(&http.Client{Transport: bearer(demoKey)}))
	if err == nil {
		_, err = client.SendMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("Paris"))})
	}
	if err != nil {
		slog.Warn("demo workflow failed", "err", err)
		return
	}
	fmt.Fprintf(out, "\nDemo workflow done: researcher -> model -> tool -> writer -> model, one trace.\n"+
		"  See it at %s/ui (log in with the admin key %s)\n\n", base, demoAdminKey)
}

type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

func printDemoIntro(w io.Writer, url string) {
	fmt.Fprintf(w, `
Switchboard demo on %[1]s  (Ctrl-C to stop)
  demo upstreams: LLM %[2]s, MCP %[3]s, A2A agents %[4]s (researcher) and %[5]s (writer)

  demo API key:  %[6]s
  admin key:     %[7]s
  dashboard:     %[1]s/ui

Try:
  curl -s %[1]s/v1/chat/completions -H 'Authorization: Bearer %[6]s' \
       -H 'Content-Type: application/json' -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello gateway"}]}'
  curl -sN %[1]s/v1/chat/completions -H 'Authorization: Bearer %[6]s' \
       -H 'Content-Type: application/json' -d '{"model":"claude-haiku","stream":true,"messages":[{"role":"user","content":"Stream me"}]}'
  curl -s '%[1]s/admin/spend?group_by=layer' -H 'Authorization: Bearer %[7]s'

`, url, demoLLMAddr, demoMCPAddr, demoAgentAddr, demoPeerAddr, demoKey, demoAdminKey)
}
