package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/kubeboot/kubeboot/firstboot"
	"github.com/kubeboot/kubeboot/pkg/host"
	"github.com/kubeboot/kubeboot/pkg/preflight"
	"github.com/kubeboot/kubeboot/pkg/version"
)

type initFlags struct {
	configFile       string
	userdataFile     string
	allowNewInstance bool
	root             string
	dryRun           bool
	skipPhases       []string
	ignoreErrors     []string
	force            bool
}

func newInitCommand(g *globalFlags) *cobra.Command {
	f := &initFlags{}
	phases := firstboot.InitPhases()
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Make this machine the first control-plane node of a new cluster",
		Long: "Run the init flow: " + strings.Join(firstboot.Names(phases), ", ") + ".\n" +
			"Completed phases are recorded in the state journal; a re-run skips what is done and redoes what changed.",
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := firstboot.CheckSkip(phases, f.skipPhases); err != nil {
				return usageError{err}
			}
			if err := preflight.ValidateIgnore(f.ignoreErrors); err != nil {
				return usageError{err}
			}
			return runFlow(cmd, g, f, phases, f.skipPhases)
		},
	}
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.configFile, "config", "", "configuration file (multi-document YAML; - for standard input); the embedded defaults when empty")
	fl.StringVar(&f.userdataFile, "userdata", "", "userdata file (Ignition or cloud-init); otherwise the kernel command line, fw_cfg, a NoCloud disk and /etc/kubeboot/config.yaml are searched")
	fl.BoolVar(&f.allowNewInstance, "allow-new-instance", false, "accept a NoCloud instance-id that differs from the one that initialised this disk")
	fl.StringVar(&f.root, "root", "/", "root prefix for every file kubeboot reads and writes")
	fl.BoolVar(&f.dryRun, "dry-run", false, "render every file under --root and skip the steps that act on the host")
	cmd.Flags().StringSliceVar(&f.skipPhases, "skip-phases", nil, "phases to skip, comma-separated")
	fl.StringSliceVar(&f.ignoreErrors, "ignore-preflight-errors", nil, "preflight checks whose errors become warnings, comma-separated, or all")

	phaseCmd := phaseCommands("init", phases, nil, func(cmd *cobra.Command, skip []string) error {
		// One phase alone: the configuration, then that phase. Its
		// prerequisites are read from disk, as after a reboot.
		f.force = true
		return runFlow(cmd, g, f, phases, skip)
	})
	cmd.AddCommand(phaseCmd)
	return cmd
}

// flowOptions are the options init and join share, from their flags.
func flowOptions(cmd *cobra.Command, g *globalFlags, f *initFlags, skip []string) (firstboot.Options, error) {
	opts := firstboot.Options{
		Root:                  f.root,
		DryRun:                f.dryRun,
		SkipPhases:            skip,
		IgnorePreflightErrors: f.ignoreErrors,
		Facts:                 host.Facts{},
		Out:                   cmd.OutOrStdout(),
		Log:                   g.logger(),
		Version:               version.Version,
		AllowNewInstance:      f.allowNewInstance,
		Force:                 f.force,
	}
	if f.configFile != "" {
		name, data, err := readConfig(f.configFile, cmd.InOrStdin())
		if err != nil {
			return opts, err
		}
		opts.ConfigSource, opts.ConfigData = name, data
	}
	if os.Getenv("NOTIFY_SOCKET") != "" {
		opts.Notify = func(state string) { daemon.SdNotify(false, state) }
	}
	return opts, nil
}

// phaseCommands are `FLOW phase NAME`, one per phase but config (which
// always runs): each runs its phase, the config phase and those in keep,
// skipping the rest.
func phaseCommands(flow string, phases []firstboot.Phase, keep []string, run func(cmd *cobra.Command, skip []string) error) *cobra.Command {
	phaseCmd := &cobra.Command{Use: "phase", Short: "Run one phase of the " + flow + " flow"}
	for _, p := range phases {
		if p.Name == "config" {
			continue
		}
		name := p.Name
		phaseCmd.AddCommand(&cobra.Command{
			Use:   name,
			Short: p.Short,
			Args:  exactArgs(0),
			RunE: func(cmd *cobra.Command, _ []string) error {
				var skip []string
				for _, q := range phases {
					if q.Name != "config" && q.Name != name && !slices.Contains(keep, q.Name) {
						skip = append(skip, q.Name)
					}
				}
				return run(cmd, skip)
			},
		})
	}
	return phaseCmd
}

func runFlow(cmd *cobra.Command, g *globalFlags, f *initFlags, phases []firstboot.Phase, skip []string) error {
	opts, err := flowOptions(cmd, g, f, skip)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Userdata is read and decoded completely before anything is written.
	if f.configFile == "" || f.userdataFile != "" {
		ud, err := findUserdata(ctx, f.root, f.userdataFile, f.dryRun)
		if err != nil {
			return err
		}
		opts.Userdata = ud
	}
	// Load the configuration before anything runs, so that bad input exits
	// with status 2 and nothing written.
	cfg, err := firstboot.LoadConfig(opts)
	if err != nil {
		return err
	}
	// Identical machines decide who runs init; the others join.
	if cfg.Boot.Cluster.Rendezvous != nil && !f.dryRun && !f.force {
		role, err := firstboot.Rendezvous(ctx, opts, cfg)
		if err != nil {
			return err
		}
		if role.Join != nil {
			return firstboot.RunJoin(ctx, opts, role.Join, cmd.OutOrStdout(), len(f.skipPhases) > 0)
		}
		var lost context.CancelFunc
		ctx, lost = context.WithCancel(ctx)
		defer lost()
		go firstboot.KeepClaim(ctx, opts, cfg, lost)
	}
	run := &firstboot.Run{Options: opts, Cfg: cfg}
	tl, err := firstboot.Execute(ctx, run, phases)
	// The timeline is for whole flows; `init phase NAME` prints its line.
	if tl != nil && !f.force {
		tl.Print(cmd.OutOrStdout())
	}
	if err != nil {
		return err
	}
	if !f.dryRun && !f.force && len(f.skipPhases) == 0 {
		if err := firstboot.WriteStamp(run); err != nil {
			return err
		}
	}
	if f.dryRun {
		var skipped []string
		for _, s := range tl.Steps {
			if s.Status == firstboot.StatusDryRun {
				skipped = append(skipped, s.Phase)
			}
		}
		if len(skipped) > 0 {
			fmt.Fprintf(cmd.OutOrStdout(), "\nDry run: files written under %s; host steps skipped: %s\n", f.root, strings.Join(skipped, ", "))
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "\nDry run: files written under %s\n", f.root)
		}
	}
	return nil
}
