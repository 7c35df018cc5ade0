package main

import (
	_ "embed"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

//go:embed demo.yaml
var demoConfig []byte

// Fixed loopback ports, so the embedded demo config can name its upstreams; the keys are the ones demo.yaml
// declares.
const (
	demoKey      = "sk-sb-demo-0000000000000000000000000000"
	demoAdminKey = "sk-sb-admin-demo-0000000000000000000000"

	demoLLMAddr = "127.0.0.1:19101"
	demoMCPAddr = "127.0.0.1:19201"
	demoA2AAddr = "127.0.0.1:19301"
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
			stop, err := startDemoUpstreams()
			if err != nil {
				return err
			}
			defer stop()
			printDemoIntro(cmd.OutOrStdout(), cfg)
			return run(cfg, "")
		},
	}
	cmd.Flags().String("listen", "", "address to serve on (default from the demo config, 127.0.0.1:8080)")
	return cmd
}

// startDemoUpstreams starts the mock LLM, MCP server and A2A agent; the returned func stops them.
func startDemoUpstreams() (func(), error) {
	var servers []*mock.Server
	stop := func() {
		for _, s := range servers {
			s.Close()
		}
	}
	llm, err := mock.StartLLM(demoLLMAddr, mock.LLMOptions{})
	if err != nil {
		return nil, fmt.Errorf("demo LLM upstream on %s: %w", demoLLMAddr, err)
	}
	servers = append(servers, &llm.Server)
	tools, err := mock.StartMCP(demoMCPAddr, mock.MCPOptions{Name: "weather"})
	if err != nil {
		stop()
		return nil, fmt.Errorf("demo MCP upstream on %s: %w", demoMCPAddr, err)
	}
	servers = append(servers, &tools.Server)
	agent, err := mock.StartA2A(demoA2AAddr, mock.A2AOptions{Name: "researcher"})
	if err != nil {
		stop()
		return nil, fmt.Errorf("demo A2A upstream on %s: %w", demoA2AAddr, err)
	}
	servers = append(servers, &agent.Server)
	return stop, nil
}

func printDemoIntro(w io.Writer, cfg *config.Config) {
	url := "http://" + cfg.Server.Listen
	fmt.Fprintf(w, `
Switchboard demo on %[1]s  (Ctrl-C to stop)
  demo upstreams: LLM %[2]s, MCP %[3]s, A2A %[4]s

  demo API key:  %[5]s
  admin key:     %[6]s

Try:
  curl -s %[1]s/v1/chat/completions -H 'Authorization: Bearer %[5]s' \
       -H 'Content-Type: application/json' -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello gateway"}]}'
  curl -sN %[1]s/v1/chat/completions -H 'Authorization: Bearer %[5]s' \
       -H 'Content-Type: application/json' -d '{"model":"claude-haiku","stream":true,"messages":[{"role":"user","content":"Stream me"}]}'
  curl -s %[1]s/admin/keys/demo-agent/usage -H 'Authorization: Bearer %[6]s'

`, url, demoLLMAddr, demoMCPAddr, demoA2AAddr, demoKey, demoAdminKey)
}
