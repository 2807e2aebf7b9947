package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

type globalFlags struct {
	verbosity int
}

func newRootCommand() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "kubeboot",
		Short:         "Turn a freshly booted machine into a Kubernetes node",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().IntVarP(&g.verbosity, "v", "v", 0, "log verbosity (0: errors, 1: info and warnings, 2: debug)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{err}
	})
	root.AddCommand(newInitCommand(g), newJoinCommand(g), newConfigCommand(), newUserdataCommand(), newPreflightCommand(), newResetCommand(g), newVersionCommand())
	for _, c := range root.Commands() {
		if c.Name() == "config" {
			c.AddCommand(newImagesCommand())
		}
	}
	return root
}

func (g *globalFlags) logger() *slog.Logger {
	// Warnings reach the user as progress lines already; the structured
	// log repeats them from -v 1 on.
	level := slog.LevelError
	switch {
	case g.verbosity >= 2:
		level = slog.LevelDebug
	case g.verbosity == 1:
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// exactArgs makes cobra's argument errors usage errors.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
