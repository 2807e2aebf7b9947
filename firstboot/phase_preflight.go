package firstboot

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/kubeboot/kubeboot/pkg/preflight"
)

// resumedIgnores are the checks a resumed init must not fail on: the files,
// directories and ports they guard are kubeboot's own from the earlier run.
func resumedIgnores(r *Run) []string {
	var out []string
	for _, phase := range []string{etcdPhase.Name, controlPlanePhase.Name} {
		if _, done := r.Journal.Phases[phase]; done {
			for _, c := range preflight.Checks(r.Cfg) {
				if strings.HasPrefix(c.Name, "FileAvailable--") || strings.HasPrefix(c.Name, "DirAvailable--") || strings.HasPrefix(c.Name, "Port-") {
					out = append(out, c.Name)
				}
			}
			break
		}
	}
	return out
}

var preflightPhase = Phase{
	Name:  "preflight",
	Short: "Check that this machine can become a control-plane node",
	Inputs: func(r *Run) (any, error) {
		return []any{r.Cfg.Init.NodeRegistration, r.Cfg.Cluster, r.Cfg.Kubelet, r.Cfg.KubeProxy.Mode, r.IgnorePreflightErrors}, nil
	},
	Apply: func(ctx context.Context, r *Run) (string, error) {
		ignore := append(append([]string{}, r.IgnorePreflightErrors...), resumedIgnores(r)...)
		rep, err := preflight.Run(ctx, r.Cfg, preflight.HostEnv(r.Root), ignore)
		if rep.Results == nil && err != nil {
			return "", err
		}
		for _, res := range rep.Results {
			if res.Status == preflight.StatusWarning {
				r.warn("preflight", res.Name+": "+res.Detail)
			}
		}
		if err != nil {
			var table bytes.Buffer
			rep.WriteTable(&table)
			if r.Out != nil {
				fmt.Fprint(r.Out, table.String())
			}
			return "", err
		}
		return rep.Summary(), nil
	},
}
