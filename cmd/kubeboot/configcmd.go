package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/kubeboot/kubeboot/pkg/config"
)

func newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Print, check and explain kubeboot's configuration"}
	cmd.AddCommand(&cobra.Command{
		Use:   "print-defaults",
		Short: "Print a complete default configuration to edit",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := config.Defaults().Marshal()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "# kubeboot configuration with every default filled in.")
			fmt.Fprintln(cmd.OutOrStdout(), "# nodeRegistration.name and localAPIEndpoint.advertiseAddress are taken from the")
			fmt.Fprintln(cmd.OutOrStdout(), "# machine at boot when left out; a bootstrap token without `token` is generated.")
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}, &cobra.Command{
		Use:   "validate FILE|-",
		Short: "Check a configuration file strictly; exit status 2 when it is invalid",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, data, err := readConfig(args[0], cmd.InOrStdin())
			if err != nil {
				return err
			}
			if _, err := config.Load(name, data); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid\n", name)
			return nil
		},
	})
	return cmd
}

// readConfig reads a file, or standard input for "-", refusing anything
// larger than a configuration can be.
func readConfig(path string, stdin io.Reader) (string, []byte, error) {
	var r io.Reader
	name := path
	if path == "-" {
		r, name = stdin, "<stdin>"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return path, nil, usageError{fmt.Errorf("read configuration: %w", err)}
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, config.MaxSize+1))
	if err != nil {
		return name, nil, fmt.Errorf("read configuration %s: %w", name, err)
	}
	return name, data, nil
}
