package firstboot

import (
	"context"
	"errors"
	"strings"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/kubelet"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
	"github.com/kubeboot/kubeboot/pkg/systemd"
)

// kubeletStartPhase writes the kubelet's files and (re)starts it. A
// kubelet without credentials of its own (a joining node's: init writes
// kubelet.conf in the kubeconfig phase) also gets the bootstrap
// kubeconfig it trades for its certificate (TLS bootstrap).
var kubeletStartPhase = Phase{
	Name:  "kubelet-start",
	Short: "Write the kubelet's configuration, flags, systemd drop-in and, to join, its bootstrap kubeconfig; (re)start it",
	Inputs: func(r *Run) (any, error) {
		// The token is hashed with the rest, never stored in the journal.
		return []any{withResolver(r).Kubelet, r.Cfg.Init.NodeRegistration, r.Cfg.Init.LocalAPIEndpoint,
			r.tlsBootstrapToken(), r.joined()}, nil
	},
	Render: func(_ context.Context, r *Run) (Output, error) {
		files, err := kubelet.Render(withResolver(r))
		if err != nil {
			return Output{}, err
		}
		summary := "config.yaml, kubeadm-flags.env, 10-kubeadm.conf"
		// A node that already holds its credentials keeps them; the token
		// may be long expired.
		if r.tlsBootstrapToken() != "" && !r.joined() {
			conf, err := r.bootstrapKubeconfig()
			if err != nil {
				return Output{}, err
			}
			files = append(files, rootfs.File{Path: kubelet.BootstrapKubeconfigPath, Mode: 0o600, Data: conf, Secret: true})
			summary += ", bootstrap-kubelet.conf"
		}
		return Output{Files: files, Summary: summary}, nil
	},
	Apply: restartKubelet,
}

// restartKubelet restarts the kubelet so that it reads the files just
// written.
func restartKubelet(ctx context.Context, r *Run) (string, error) {
	m, err := systemd.Connect(ctx)
	if errors.Is(err, systemd.ErrNoSystemd) {
		// Not fatal: a supervisor other than systemd may run the kubelet
		// (containers, tests); the waits after this tell if none does.
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
}

// Where systemd-resolved keeps the real upstream servers; /etc/resolv.conf
// then names only its 127.0.0.53 stub, which pods cannot reach and which
// makes CoreDNS forward to itself.
const (
	resolvedStub     = "nameserver 127.0.0.53"
	resolvedUpstream = "/run/systemd/resolve/resolv.conf"
)

// withResolver points the kubelet at systemd-resolved's upstream list when
// the host's resolv.conf is the stub, as kubeadm does; a resolvConf the
// user set is kept.
func withResolver(r *Run) *config.Config {
	if r.Cfg.Kubelet.ResolverConfig != nil {
		return r.Cfg
	}
	stub, err := r.readFile("/etc/resolv.conf")
	if err != nil || !strings.Contains(string(stub), resolvedStub) {
		return r.Cfg
	}
	if _, err := r.readFile(resolvedUpstream); err != nil {
		return r.Cfg
	}
	c := *r.Cfg
	c.Kubelet = *r.Cfg.Kubelet.DeepCopy()
	path := resolvedUpstream
	c.Kubelet.ResolverConfig = &path
	return &c
}
