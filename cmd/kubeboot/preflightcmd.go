package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kubeboot/kubeboot/firstboot"
	"github.com/kubeboot/kubeboot/pkg/host"
	"github.com/kubeboot/kubeboot/pkg/preflight"
)

func newPreflightCommand() *cobra.Command {
	var configFile, root, output string
	var ignore []string
	cmd := &cobra.Command{
		Use:   "preflight",
		Short: "Check that this machine can become a control-plane node, changing nothing",
		Long: "Run kubeadm 1.37's preflight checks (with kubeadm's names, so --ignore-preflight-errors\n" +
			"lists written for kubeadm keep working) and print one line per check.\n" +
			"Exits non-zero when a check fails that the ignore list does not cover.",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return usageError{fmt.Errorf("-o %q: expected table or json", output)}
			}
			if err := preflight.ValidateIgnore(ignore); err != nil {
				return usageError{err}
			}
			opts := firstboot.Options{Root: root, Facts: host.Facts{}}
			if configFile != "" {
				name, data, err := readConfig(configFile, cmd.InOrStdin())
				if err != nil {
					return err
				}
				opts.ConfigSource, opts.ConfigData = name, data
			} else {
				// The same configuration init would use: the machine's userdata.
				ud, err := findUserdata(cmd.Context(), root, "", false)
				if err != nil {
					return err
				}
				opts.Userdata = ud
			}
			cfg, err := firstboot.LoadConfig(opts)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := preflight.Run(ctx, cfg, preflight.HostEnv(root), ignore)
			if rep.Results == nil && err != nil {
				return usageError{err} // the ignore list, with the configuration's entries
			}
			var werr error
			if output == "json" {
				werr = rep.WriteJSON(cmd.OutOrStdout())
			} else {
				werr = rep.WriteTable(cmd.OutOrStdout())
			}
			if err != nil {
				return err
			}
			return werr
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&configFile, "config", "", "configuration file (multi-document YAML; - for standard input); the embedded defaults when empty")
	fl.StringVar(&root, "root", "/", "root prefix for every file the checks read")
	fl.StringSliceVar(&ignore, "ignore-preflight-errors", nil, "checks whose errors become warnings, comma-separated, or all")
	fl.StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}
