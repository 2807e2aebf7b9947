package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kubeboot/kubeboot/firstboot"
	"github.com/kubeboot/kubeboot/pkg/version"
)

func newResetCommand(g *globalFlags) *cobra.Command {
	var configFile, root string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Undo what init did: stop the kubelet, remove the pods, kubeboot's files and the Kubernetes packet-filter rules",
		Long: "Undo what init did, as kubeadm reset does. Files kubeboot did not write (other CNI configurations,\n" +
			"other packet-filter rules) are left alone and counted. --dry-run lists what would be removed.",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := firstboot.Options{Root: root, DryRun: dryRun, Out: cmd.OutOrStdout(), Log: g.logger(), Version: version.Version, NoResolve: true, Force: true}
			if configFile != "" {
				name, data, err := readConfig(configFile, cmd.InOrStdin())
				if err != nil {
					return err
				}
				opts.ConfigSource, opts.ConfigData = name, data
			}
			cfg, err := firstboot.LoadConfig(opts)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			tl, err := firstboot.Execute(ctx, &firstboot.Run{Options: opts, Cfg: cfg}, firstboot.ResetPhases())
			if tl != nil {
				tl.Print(cmd.OutOrStdout())
			}
			if err == nil && dryRun {
				fmt.Fprintln(cmd.OutOrStdout(), "\nDry run: nothing was removed.")
			}
			return err
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "the configuration init used (paths, etcd, pod network); defaults when empty")
	cmd.Flags().StringVar(&root, "root", "/", "root prefix")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be removed, remove nothing")
	return cmd
}
