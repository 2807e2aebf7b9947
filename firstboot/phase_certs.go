package firstboot

import (
	"context"
	"fmt"
	"net"
	"path"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/kubeconfig"
	"github.com/kubeboot/kubeboot/pkg/pki"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// pkiSpec maps the configuration onto what pki needs.
func pkiSpec(c *config.Config) (pki.Spec, error) {
	alg, err := pki.ParseAlgorithm(c.Cluster.EncryptionAlgorithm)
	if err != nil {
		return pki.Spec{}, err
	}
	svc, err := config.ParseCIDRs(c.Cluster.Networking.ServiceSubnet)
	if err != nil {
		return pki.Spec{}, err
	}
	s := pki.Spec{
		CertificatesDir:      c.Cluster.CertificatesDir,
		NodeName:             c.Init.NodeRegistration.Name,
		AdvertiseAddress:     net.ParseIP(c.Init.LocalAPIEndpoint.AdvertiseAddress),
		ControlPlaneEndpoint: c.Cluster.ControlPlaneEndpoint,
		ServiceSubnets:       svc,
		DNSDomain:            c.Cluster.Networking.DNSDomain,
		APIServerCertSANs:    c.Cluster.APIServer.CertSANs,
		ExternalEtcd:         c.Cluster.Etcd.External != nil,
		Algorithm:            alg,
		Validity:             c.Cluster.CertificateValidityPeriod.Duration,
		CAValidity:           c.Cluster.CACertificateValidityPeriod.Duration,
	}
	if l := c.Cluster.Etcd.Local; l != nil {
		s.EtcdServerCertSANs, s.EtcdPeerCertSANs = l.ServerCertSANs, l.PeerCertSANs
	}
	return s, nil
}

var certsPhase = Phase{
	Name:  "certs",
	Short: "Generate or reuse the cluster PKI in /etc/kubernetes/pki",
	Inputs: func(r *Run) (any, error) {
		c := r.Cfg
		return []any{c.Cluster, c.Init.NodeRegistration.Name, c.Init.LocalAPIEndpoint}, nil
	},
	Render: func(_ context.Context, r *Run) (Output, error) {
		spec, err := pkiSpec(r.Cfg)
		if err != nil {
			return Output{}, err
		}
		res, err := pki.Render(spec, r.Writer.FS())
		if err != nil {
			return Output{}, err
		}
		return Output{Files: res.Files, Summary: res.Summary(), Warnings: res.Warnings}, nil
	},
}

func kubeconfigSpec(r *Run) (kubeconfig.Spec, error) {
	c := r.Cfg
	alg, err := pki.ParseAlgorithm(c.Cluster.EncryptionAlgorithm)
	if err != nil {
		return kubeconfig.Spec{}, err
	}
	cp, local, err := kubeconfig.ServerURLs(c.Cluster.ControlPlaneEndpoint, net.ParseIP(c.Init.LocalAPIEndpoint.AdvertiseAddress), int(c.Init.LocalAPIEndpoint.BindPort))
	if err != nil {
		return kubeconfig.Spec{}, err
	}
	// A joining node of a cluster without a controlPlaneEndpoint reaches
	// the control plane where discovery found it: its own API server is
	// not serving yet when admin.conf is first used.
	if r.Join != nil && c.Cluster.ControlPlaneEndpoint == "" {
		info, err := r.clusterInfo()
		if err != nil {
			return kubeconfig.Spec{}, err
		}
		cp = info.Server
	}
	return kubeconfig.Spec{
		Dir:             "/etc/kubernetes",
		ClusterName:     c.Cluster.ClusterName,
		ControlPlaneURL: cp,
		LocalURL:        local,
		CAPath:          path.Join(c.Cluster.CertificatesDir, "ca.crt"),
		NodeName:        c.Init.NodeRegistration.Name,
		Algorithm:       alg,
		Validity:        c.Cluster.CertificateValidityPeriod.Duration,
	}, nil
}

var kubeconfigPhase = kubeconfigFiles("Write admin, super-admin, kubelet, controller-manager and scheduler kubeconfigs", nil)

// joinKubeconfigPhase is a joining control plane's share: the kubelet
// gets its credentials by TLS bootstrap, and super-admin.conf (the
// break-glass identity) stays on the first control-plane node, as with
// kubeadm join.
var joinKubeconfigPhase = kubeconfigFiles("Write admin, controller-manager and scheduler kubeconfigs", []string{"admin", "controller-manager", "scheduler"})

func kubeconfigFiles(short string, only []string) Phase {
	return Phase{
		Name:  "kubeconfig",
		Short: short,
		Inputs: func(r *Run) (any, error) {
			s, err := kubeconfigSpec(r)
			if err != nil {
				return nil, err
			}
			// The CA certificate is an input: a new CA means new kubeconfigs.
			ca, err := rootfs.ReadFile(r.Writer.FS(), s.CAPath)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w (run the certs phase first)", s.CAPath, err)
			}
			return []any{s.Dir, s.ClusterName, s.ControlPlaneURL, s.LocalURL, s.NodeName, s.Algorithm, s.Validity, ca, only}, nil
		},
		Render: func(_ context.Context, r *Run) (Output, error) {
			s, err := kubeconfigSpec(r)
			if err != nil {
				return Output{}, err
			}
			s.Only = only
			fsys := r.Writer.FS()
			if s.CACert, err = rootfs.ReadFile(fsys, s.CAPath); err != nil {
				return Output{}, fmt.Errorf("read %s: %w (run the certs phase first)", s.CAPath, err)
			}
			// A missing CA key is external-CA mode: the kubeconfigs must exist.
			s.CAKey, _ = rootfs.ReadFile(fsys, path.Join(r.Cfg.Cluster.CertificatesDir, "ca.key"))
			res, err := kubeconfig.Render(s, fsys)
			if err != nil {
				return Output{}, err
			}
			return Output{Files: res.Files, Summary: res.Summary(), Warnings: res.Warnings}, nil
		},
	}
}
