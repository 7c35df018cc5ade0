package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/switchboard-gw/switchboard/cmd/switchboard/app"
	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
)

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "switchboard",
		Short:         "One gateway for an agent's models, tools and other agents",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCommand(), demoCommand(), configCommand(), versionCommand())
	return root
}

// configPath is --config, else $SWITCHBOARD_CONFIG.
func configPath(cmd *cobra.Command) string {
	if p, _ := cmd.Flags().GetString("config"); p != "" {
		return p
	}
	return os.Getenv("SWITCHBOARD_CONFIG")
}

func addConfigFlag(cmd *cobra.Command) {
	cmd.Flags().StringP("config", "c", "", "YAML config file (default $SWITCHBOARD_CONFIG)")
}

func serveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway with a config file (re-read when it changes and on SIGHUP)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := configPath(cmd)
			if path == "" {
				return errors.New("serve needs --config or SWITCHBOARD_CONFIG (try `switchboard demo` for a ready-made setup)")
			}
			cfg, err := config.Load(path)
			if err != nil {
				return invalidConfig(cmd, path, err)
			}
			return run(cfg, path)
		},
	}
	addConfigFlag(cmd)
	return cmd
}

// run serves cfg until SIGINT or SIGTERM. With a path, the file is watched and SIGHUP re-reads it (systemd's
// ExecReload sends SIGHUP); valid changes are applied.
func run(cfg *config.Config, path string) error {
	log, level := app.NewLogger(cfg.Log, os.Stderr)
	// Libraries that log through slog's default logger (mcp-go's stdio
	// transport) then write in the configured format and level too.
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Caught even without a file to re-read: SIGHUP's default action would kill the gateway with no drain.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return serve(ctx, cfg, path, log, level, hup)
}

// serve runs the gateway until ctx ends; each value on hup re-reads the config file at path.
func serve(ctx context.Context, cfg *config.Config, path string, log *slog.Logger, level *slog.LevelVar, hup <-chan os.Signal) error {
	gw, err := app.New(cfg, log, level)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		closeCtx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
		defer cancel()
		return errors.Join(fmt.Errorf("server.listen: %w", err), gw.Close(closeCtx))
	}
	if path == "" {
		go ignoreHangups(ctx, hup, log)
	} else {
		config.Watch(ctx, path, config.WatchOptions{Log: log, Apply: gw.Reload, Rejected: gw.ReloadRejected, Reread: hup})
	}
	return gw.Serve(ctx, ln)
}

func ignoreHangups(ctx context.Context, hup <-chan os.Signal, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-hup:
			log.Warn("signal ignored: the config is built in, there is no file to re-read", "signal", sig.String())
		}
	}
}

func configCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with config files"}
	validate := &cobra.Command{
		Use:   "validate [file]",
		Short: "Check a config file and name every bad field with its line",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := configPath(cmd)
			if len(args) == 1 {
				path = args[0]
			}
			if path == "" {
				return errors.New("name a config file (argument, --config or SWITCHBOARD_CONFIG)")
			}
			if _, err := config.Load(path); err != nil {
				return invalidConfig(cmd, path, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", path)
			return nil
		},
	}
	addConfigFlag(validate)
	cmd.AddCommand(validate)
	return cmd
}

// invalidConfig prints a config's errors one per line, each starting file:line: as editors and CI annotations
// expect (main would put its own prefix in front of the first), and leaves main a one-line summary.
func invalidConfig(cmd *cobra.Command, path string, err error) error {
	var fe *config.FieldError
	if !errors.As(err, &fe) {
		return err // not about the content, e.g. the file cannot be read
	}
	fmt.Fprintln(cmd.ErrOrStderr(), err)
	return fmt.Errorf("%s: invalid config", path)
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "switchboard", app.Version) },
	}
}
