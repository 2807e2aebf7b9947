package firstboot

import (
	"context"

	"github.com/kubeboot/kubeboot/pkg/cni"
)

var podNetworkPhase = Phase{
	Name:  "pod-network",
	Short: "Write the built-in single-node pod network (bridge CNI), when asked for",
	Inputs: func(r *Run) (any, error) {
		return []any{r.Cfg.Boot.PodNetwork, r.Cfg.Cluster.Networking.PodSubnet}, nil
	},
	Render: func(_ context.Context, r *Run) (Output, error) {
		files, err := cni.Render(r.Cfg)
		if err != nil {
			return Output{}, err
		}
		if len(files) == 0 {
			return Output{
				Summary:  "built-in pod network off",
				Warnings: []string{"no pod network: install a CNI add-on (or set podNetwork.builtin in the BootConfiguration for a single node); the node stays NotReady until one is installed"},
				// Only a file kubeboot wrote is removed; others' CNI files stay.
				Remove: []string{cni.ConfPath},
			}, nil
		}
		return Output{Files: files, Summary: "bridge network in " + cni.ConfPath}, nil
	},
}
