package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kubeboot/kubeboot/pkg/version"
)

func newVersionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print kubeboot's version and the Kubernetes version it deploys",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := version.Get()
			switch output {
			case "":
				fmt.Fprintf(cmd.OutOrStdout(), "kubeboot %s (commit %s), Kubernetes %s\n", info.Version, info.Commit, info.Kubernetes)
			case "json":
				b, _ := json.MarshalIndent(info, "", "  ")
				fmt.Fprintln(cmd.OutOrStdout(), string(b))
			case "short":
				fmt.Fprintln(cmd.OutOrStdout(), info.Version)
			default:
				return usageError{fmt.Errorf("unknown output format %q (expected json or short)", output)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or short")
	return cmd
}
