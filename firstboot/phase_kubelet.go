package firstboot

import (
	"context"

	"github.com/kubeboot/kubeboot/pkg/kubelet"
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
}
