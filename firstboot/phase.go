// Package firstboot runs kubeboot's flows (init, and later join and reset)
// as ordered lists of phases over one runner that owns ordering, skipping,
// timing, progress, sd_notify and the state journal.
package firstboot

import (
	"context"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// Phase is one step of a flow. It is a value: flows share phases by
// listing the same value, and a phase never asks which flow runs it.
type Phase struct {
	Name  string
	Short string
	// Inputs returns what the phase's result depends on; the runner hashes
	// it for the journal. A phase without Inputs runs every time.
	Inputs func(*Run) (any, error)
	// Render computes the files the phase owns. It must not touch the host;
	// the runner writes the files under the root prefix, atomically.
	Render func(context.Context, *Run) (Output, error)
	// Apply acts on the host (kernel, systemd, API server). It is skipped
	// in dry-run mode, so only phases without Apply are complete in a dry run.
	Apply func(context.Context, *Run) (string, error)
}

// Output is what Render returns.
type Output struct {
	Files []rootfs.File
	// Summary is the human progress detail, e.g. "12 certificates, 2 key pairs".
	Summary string
	// Remove lists host paths the phase wants gone (e.g. a file it no
	// longer renders because a feature was switched off).
	Remove []string
	// Warnings are shown to the user and logged.
	Warnings []string
	// Write, when set, writes what plain files cannot express (owners,
	// links, appends) through the runner's writer, so under the root prefix.
	Write func(rootfs.Writer) error
}

// HostOnly tells whether a phase does nothing but act on the host.
func (p Phase) HostOnly() bool { return p.Render == nil && p.Apply != nil }
