package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/images"
)

// newImagesCommand is `kubeboot config images`, whose list prints what
// `kubeadm config images list` prints for the same configuration.
func newImagesCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "images", Short: "Show the container images kubeboot uses"}
	var configFile string
	list := &cobra.Command{
		Use:   "list",
		Short: "Print the images a control-plane node needs, one per line, as kubeadm config images list does",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.Defaults()
			if configFile != "" {
				name, data, err := readConfig(configFile, cmd.InOrStdin())
				if err != nil {
					return err
				}
				if cfg, err = config.Load(name, data); err != nil {
					return err
				}
			}
			for _, img := range images.List(cfg) {
				if _, err := fmt.Fprintln(cmd.OutOrStdout(), img); err != nil {
					return err
				}
			}
			return nil
		},
	}
	list.Flags().StringVar(&configFile, "config", "", "configuration file (multi-document YAML; - for standard input); the embedded defaults when empty")
	cmd.AddCommand(list)
	return cmd
}
