// Command mock runs one of Switchboard's mock upstreams until SIGINT or
// SIGTERM:
//
//	mock llm --listen 127.0.0.1:19101 [--latency 50ms] [--tps 0] [--api-key KEY]
//	mock mcp --listen 127.0.0.1:19201 [--name weather] [--latency 0] | mock mcp --stdio
//	mock a2a --listen 127.0.0.1:19301 [--name researcher] [--latency 0]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mark3labs/mcp-go/server"

	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mock:", err)
		os.Exit(2)
	}
}

const usage = "usage: mock llm|mcp|a2a [flags] (mock <kind> -h lists the flags)"

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	kind := args[0]
	fs := flag.NewFlagSet("mock "+kind, flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	latency := fs.Duration("latency", 0, "added latency (LLM: before the first byte; MCP: per tool call; A2A: per task)")
	name := fs.String("name", "", "server or agent name (mcp, a2a)")
	tps := fs.Float64("tps", 0, "llm: stream pacing in tokens per second; 0 = as fast as possible")
	apiKey := fs.String("api-key", "", "llm: require this key (Bearer or x-api-key)")
	stdio := fs.Bool("stdio", false, "mcp: serve over stdin/stdout instead of HTTP")
	tools := fs.String("tools", "", "mcp: comma-separated tools to serve, of "+strings.Join(mock.MCPToolNames, ",")+
		" (the default) and "+strings.Join(mock.MCPOptInToolNames, ","))
	verbose := fs.Bool("v", false, "log debug messages to stderr")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var srv interface{ Close() error }
	var url string
	switch kind {
	case "llm":
		s, err := mock.StartLLM(*listen, mock.LLMOptions{Latency: *latency, TokensPerSecond: *tps, APIKey: *apiKey, Logger: log})
		if err != nil {
			return err
		}
		srv, url = s, s.URL+"/v1"
	case "mcp":
		opts := mock.MCPOptions{Name: *name, Latency: *latency, Logger: log}
		if *tools != "" {
			opts.Tools = strings.Split(*tools, ",")
		}
		if *stdio {
			return serveStdio(ctx, opts)
		}
		s, err := mock.StartMCP(*listen, opts)
		if err != nil {
			return err
		}
		srv, url = s, s.URL+"/mcp"
	case "a2a":
		s, err := mock.StartA2A(*listen, mock.A2AOptions{Name: *name, Latency: *latency, Logger: log})
		if err != nil {
			return err
		}
		srv, url = s, s.URL
	default:
		return errors.New(usage)
	}
	// The URL goes to stdout alone so scripts can read the bound port.
	fmt.Fprintln(stdout, url)
	log.Info("mock serving", "kind", kind, "url", url)
	<-ctx.Done()
	log.Info("mock stopping", "kind", kind)
	return srv.Close()
}

func serveStdio(ctx context.Context, opts mock.MCPOptions) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	err := server.NewStdioServer(mock.NewMCPServer(opts)).Listen(ctx, os.Stdin, os.Stdout)
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
