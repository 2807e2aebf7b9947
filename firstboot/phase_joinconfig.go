package firstboot

import (
	"context"
	"errors"
	"fmt"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/joinsecret"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// joinSecretState keeps the join secret a joining node read, so that a
// re-run after a reboot does not depend on the source still serving it
// (a virtio-serial port is a stream; a metadata URL may be gone).
const joinSecretState = "join/secret.json"

// PrepareJoin resolves a decoded, defaulted and validated join
// configuration on this machine and returns the configuration the phases
// before discovery run with (the cluster's own comes with discovery).
func PrepareJoin(j *config.JoinConfig, facts config.HostFacts) (*config.Config, error) {
	if err := config.ResolveJoin(j, facts); err != nil {
		return nil, err
	}
	ip, err := joinNodeIP(j, facts)
	if err != nil {
		return nil, err
	}
	return config.ForJoin(j, "", nil, nil, ip)
}

// joinNodeIP is the node's address: a control plane's advertise address,
// else the source address of the default route.
func joinNodeIP(j *config.JoinConfig, facts config.HostFacts) (string, error) {
	if cp := j.Join.ControlPlane; cp != nil && cp.LocalAPIEndpoint.AdvertiseAddress != "" {
		return cp.LocalAPIEndpoint.AdvertiseAddress, nil
	}
	ips, err := facts.DefaultRouteSources()
	if err != nil {
		return "", fmt.Errorf("node address: reading the default route: %w", err)
	}
	if len(ips) == 0 {
		return "", errors.New("node address: this machine has no default route; set controlPlane.localAPIEndpoint.advertiseAddress or give the kubelet --node-ip in nodeRegistration.kubeletExtraArgs")
	}
	return ips[0].String(), nil
}

var joinConfigPhase = Phase{
	Name:  "config",
	Short: "Load the join configuration and, when one is given, the join secret",
	Render: func(ctx context.Context, r *Run) (Output, error) {
		if r.Join == nil {
			return Output{}, errors.New("no join configuration")
		}
		var files []rootfs.File
		source := ""
		if b := r.Join.Boot.Join; b.Source != "" || b.Secret != "" {
			s, doc, from, err := r.readJoinSecret(ctx)
			if err != nil {
				return Output{}, err
			}
			r.Join.UseSecret(config.SecretDiscovery{Endpoint: s.APIServerEndpoint, Token: s.Token, CACertHashes: s.CACertHashes, CertificateKey: s.CertificateKey})
			files = append(files, rootfs.File{Path: r.statePath(joinSecretState), Mode: 0o600, Data: doc, Secret: true})
			source = "; join secret from " + from
		}
		d := r.Join.Join.Discovery
		target := ""
		switch {
		case d.BootstrapToken != nil:
			target = "token discovery at " + d.BootstrapToken.APIServerEndpoint
		case d.File != nil:
			target = "file discovery from " + d.File.KubeConfigPath
		}
		role := "worker"
		if r.Join.Join.ControlPlane != nil {
			role = "control-plane node"
		}
		return Output{Files: files, Summary: fmt.Sprintf("%s %s, %s%s", role, r.Cfg.Init.NodeRegistration.Name, target, source)}, nil
	},
}

// readJoinSecret returns the join secret this node already read, or reads
// it from the configured source (waiting for it to appear).
func (r *Run) readJoinSecret(ctx context.Context) (joinsecret.Secret, []byte, string, error) {
	p := r.statePath(joinSecretState)
	if doc, err := r.readOptional(p); err != nil {
		return joinsecret.Secret{}, nil, "", err
	} else if doc != nil {
		s, err := joinsecret.Parse(p, doc)
		return s, doc, p, err
	}
	src, ids, err := joinsecret.FromConfig(r.Join.Boot.Join, r.Root)
	if err != nil {
		return joinsecret.Secret{}, nil, "", err
	}
	if r.Out != nil {
		fmt.Fprintf(r.Out, "[config] waiting for the join secret from %s\n", src)
	}
	s, err := joinsecret.Load(ctx, src, ids)
	if err != nil {
		return joinsecret.Secret{}, nil, "", err
	}
	doc, err := s.Marshal()
	return s, doc, src.String(), err
}
