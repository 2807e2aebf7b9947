package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kubeboot/kubeboot/firstboot"
	"github.com/kubeboot/kubeboot/pkg/host"
	"github.com/kubeboot/kubeboot/pkg/userdata"
)

// findUserdata searches the userdata sources in precedence order. A dry
// run never loads kernel modules on the host.
func findUserdata(ctx context.Context, root, file string, dryRun bool) (*userdata.Result, error) {
	s := userdata.Sources{Root: root, File: file, NoCloud: userdata.DiskSeed{Root: root, NoMount: dryRun}}
	if !dryRun {
		// fw_cfg appears only once its module is loaded (QEMU guests).
		s.LoadFwCfgModule = func() error {
			_, err := host.LoadModules(ctx, root, "", []host.Module{{Name: "qemu_fw_cfg"}}, host.KernelLoader())
			return err
		}
	}
	return userdata.Find(ctx, s)
}

func newUserdataCommand() *cobra.Command {
	var file, root string
	cmd := &cobra.Command{Use: "userdata", Short: "Inspect the machine's userdata"}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the userdata found, where it came from, and the resulting configuration (secrets redacted)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Reading fw_cfg needs its module; that is the only change show
			// makes, and only on the real host.
			ud, err := findUserdata(cmd.Context(), root, file, root != "/")
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprint(out, ud.Redacted())
			cfg, err := firstboot.LoadConfig(firstboot.Options{Userdata: ud, Facts: host.Facts{}})
			if err != nil {
				return err
			}
			data, err := cfg.Marshal()
			if err != nil {
				return err
			}
			red, err := userdata.RedactConfig(data)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "\n# resulting configuration (from %s)\n%s", cfg.Source, red)
			return nil
		},
	}
	show.Flags().StringVar(&file, "userdata", "", "userdata file instead of the machine's sources")
	show.Flags().StringVar(&root, "root", "/", "root prefix")
	cmd.AddCommand(show)
	return cmd
}
