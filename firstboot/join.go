package firstboot

import (
	"context"
	"io"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// JoinPhases is the join flow, in kubeadm 1.37's order where it has one,
// with two differences that make a control-plane join faster and safer:
// this node's etcd member is added (as a learner) and its manifest written
// before the kubelet starts, so that the kubelet starts etcd and the API
// server together instead of letting the API server crash-loop into
// back-off while it waits for etcd; and the learner is promoted only once
// it has caught up. A worker's list is the control plane's without the
// control-plane phases.
func JoinPhases(controlPlane bool) []Phase {
	phases := []Phase{
		userdataPhase,
		joinConfigPhase,
		hostPhase,
		joinPreflightPhase,
		discoveryPhase,
		// After discovery: the runtime is checked against the cluster's
		// kubelet configuration (its cgroup driver), not the defaults.
		imagesPhase,
	}
	if controlPlane {
		phases = append(phases,
			downloadCertsPhase,
			certsPhase,
			joinKubeconfigPhase,
			auditPhase,
			encryptionPhase,
			controlPlanePhase,
			etcdJoinPhase,
		)
	}
	phases = append(phases,
		kubeletStartPhase,
		kubeletBootstrapPhase,
	)
	if controlPlane {
		phases = append(phases,
			etcdPromotePhase,
			waitControlPlanePhase,
			markControlPlanePhase,
		)
	}
	return append(phases, waitNodeReadyPhase)
}

// RunJoin runs the join flow for a decoded, defaulted and validated join
// configuration, prints the timeline, and writes the completion stamp
// after a complete, real run (partial: some phases were skipped on
// purpose).
func RunJoin(ctx context.Context, opts Options, j *config.JoinConfig, out io.Writer, partial bool) error {
	cfg, err := PrepareJoin(j, opts.Facts)
	if err != nil {
		return err
	}
	run := &Run{Options: opts, Cfg: cfg, Join: j}
	tl, err := Execute(ctx, run, JoinPhases(j.Join.ControlPlane != nil))
	if tl != nil && !opts.Force {
		tl.Print(out)
	}
	if err != nil {
		return err
	}
	if !opts.DryRun && !partial {
		return WriteStamp(run)
	}
	return nil
}
