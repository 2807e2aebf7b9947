package firstboot

import (
	"context"
	"errors"

	"github.com/kubeboot/kubeboot/pkg/kubelet"
	"github.com/kubeboot/kubeboot/pkg/systemd"
)

var kubeletStartPhase = Phase{
	Name:  "kubelet-start",
	Short: "Write the kubelet's configuration, flags and systemd drop-in",
	Inputs: func(r *Run) (any, error) {
		return []any{r.Cfg.Kubelet, r.Cfg.Init.NodeRegistration, r.Cfg.Init.LocalAPIEndpoint}, nil
	},
	Render: func(_ context.Context, r *Run) (Output, error) {
		files, err := kubelet.Render(r.Cfg)
		if err != nil {
			return Output{}, err
		}
		return Output{Files: files, Summary: "config.yaml, kubeadm-flags.env, 10-kubeadm.conf"}, nil
	},
	// Restart the kubelet so that it reads the files just written.
	Apply: func(ctx context.Context, r *Run) (string, error) {
		m, err := systemd.Connect(ctx)
		if errors.Is(err, systemd.ErrNoSystemd) {
			// Not fatal: a supervisor other than systemd may run the kubelet
			// (containers, tests); wait-control-plane tells if none does.
			r.warn("kubelet-start", "kubelet not started: "+err.Error()+"; start it with the command line of "+kubelet.DropInPath)
			return "kubelet not started (no systemd)", nil
		}
		if err != nil {
			return "", err
		}
		defer m.Close()
		if err := systemd.StopKubelet(ctx, m); err != nil {
			return "", err
		}
		st, err := systemd.StartKubelet(ctx, m)
		if err != nil {
			return "", err
		}
		return "kubelet.service " + st.String(), nil
	},
}
