package firstboot

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/kubeboot/kubeboot/pkg/preflight"
)

// resumedIgnores are the checks a resumed run must not fail on: the files,
// directories and ports they guard are kubeboot's own from the earlier run.
func resumedIgnores(checks []preflight.Check, resumed bool) []string {
	var out []string
	for _, c := range checks {
		if resumed && (strings.HasPrefix(c.Name, "FileAvailable--") || strings.HasPrefix(c.Name, "DirAvailable--") || strings.HasPrefix(c.Name, "Port-")) {
			out = append(out, c.Name)
		}
	}
	return out
}

// doneAny tells whether the journal records any of the phases.
func (r *Run) doneAny(phases ...Phase) bool {
	for _, p := range phases {
		if _, ok := r.Journal.Phases[p.Name]; ok {
			return true
		}
	}
	return false
}

// reportPreflight turns a report into the phase's result.
func reportPreflight(r *Run, rep preflight.Report, err error) (string, error) {
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
}

var joinPreflightPhase = Phase{
	Name:  "preflight",
	Short: "Check that this machine can join the cluster",
	Inputs: func(r *Run) (any, error) {
		return []any{r.Cfg.Init.NodeRegistration, r.Cfg.Init.LocalAPIEndpoint, r.Cfg.Kubelet, r.Join.Join.ControlPlane != nil, r.IgnorePreflightErrors}, nil
	},
	Apply: func(ctx context.Context, r *Run) (string, error) {
		cp := r.Join.Join.ControlPlane != nil
		endpoint := ""
		if b := r.Join.Join.Discovery.BootstrapToken; b != nil {
			endpoint = b.APIServerEndpoint
		}
		checks := preflight.JoinChecks(r.Cfg, cp, r.Join.Join.CACertPath, endpoint)
		// Discovery keeps no journal record, but leaves its state file.
		state, _ := r.readOptional(r.statePath(clusterConfigState))
		resumed := resumedIgnores(checks, state != nil || r.doneAny(certsPhase, kubeletStartPhase))
		ignore := append(append([]string{}, r.IgnorePreflightErrors...), resumed...)
		rep, err := preflight.RunJoin(ctx, r.Cfg, cp, r.Join.Join.CACertPath, endpoint, preflight.HostEnv(r.Root), ignore)
		return reportPreflight(r, rep, err)
	},
}

var preflightPhase = Phase{
	Name:  "preflight",
	Short: "Check that this machine can become a control-plane node",
	Inputs: func(r *Run) (any, error) {
		return []any{r.Cfg.Init.NodeRegistration, r.Cfg.Cluster, r.Cfg.Kubelet, r.Cfg.KubeProxy.Mode, r.IgnorePreflightErrors}, nil
	},
	Apply: func(ctx context.Context, r *Run) (string, error) {
		ignore := append(append([]string{}, r.IgnorePreflightErrors...), resumedIgnores(preflight.Checks(r.Cfg), r.doneAny(etcdPhase, controlPlanePhase))...)
		rep, err := preflight.Run(ctx, r.Cfg, preflight.HostEnv(r.Root), ignore)
		return reportPreflight(r, rep, err)
	},
}
