package firstboot

import (
	"context"
	"fmt"
	"path"

	"github.com/kubeboot/kubeboot/pkg/audit"
	"github.com/kubeboot/kubeboot/pkg/encryption"
	"github.com/kubeboot/kubeboot/pkg/manifests"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

func filesSummary(files []rootfs.File) string {
	if len(files) == 1 {
		return files[0].Path
	}
	return fmt.Sprintf("%d files", len(files))
}

var auditPhase = Phase{
	Name:  "audit",
	Short: "Write the API server's audit policy",
	Inputs: func(r *Run) (any, error) {
		policy, err := r.readOptional(r.Cfg.Boot.Audit.PolicyFile)
		if r.Cfg.Boot.Audit.PolicyFile == "" {
			policy, err = nil, nil
		}
		return []any{r.Cfg.Boot.Audit, policy}, err
	},
	Render: func(_ context.Context, r *Run) (Output, error) {
		files, _, err := audit.Render(r.Cfg, r.Writer.FS())
		if err != nil {
			return Output{}, err
		}
		if len(files) == 0 {
			return Output{Summary: "audit logging disabled", Remove: []string{audit.PolicyPath}}, nil
		}
		return Output{Files: files, Summary: filesSummary(files)}, nil
	},
}

var encryptionPhase = Phase{
	Name:  "encryption",
	Short: "Write the encryption-at-rest configuration for Secrets",
	Inputs: func(r *Run) (any, error) {
		return r.Cfg.Boot.EncryptionAtRest, nil
	},
	Render: func(_ context.Context, r *Run) (Output, error) {
		files, _, err := encryption.Render(r.Cfg, r.Writer.FS())
		if err != nil {
			return Output{}, err
		}
		if len(files) == 0 {
			return Output{Summary: "encryption at rest disabled"}, nil
		}
		return Output{Files: files, Summary: r.Cfg.Boot.EncryptionAtRest.Provider + " key in " + encryption.ConfigPath}, nil
	},
}

var etcdPhase = Phase{
	Name:  "etcd",
	Short: "Write the static pod manifest for local etcd",
	Inputs: func(r *Run) (any, error) {
		return []any{r.Cfg.Cluster, r.Cfg.Init.LocalAPIEndpoint, r.Cfg.Init.NodeRegistration.Name, r.Cfg.Kubelet.StaticPodPath}, nil
	},
	Render: func(_ context.Context, r *Run) (Output, error) {
		files, err := manifests.Etcd(r.Cfg)
		if err != nil {
			return Output{}, err
		}
		if len(files) == 0 {
			return Output{Summary: "external etcd: no local member"}, nil
		}
		return Output{Files: files, Summary: filesSummary(files)}, nil
	},
}

var controlPlanePhase = Phase{
	Name:  "control-plane",
	Short: "Write the static pod manifests for kube-apiserver, kube-controller-manager and kube-scheduler",
	Inputs: func(r *Run) (any, error) {
		// The audit and encryption files are inputs through their additions.
		opts, err := controlPlaneOptions(r)
		return []any{r.Cfg.Cluster, r.Cfg.Init.LocalAPIEndpoint, r.Cfg.Init.NodeRegistration.Name, r.Cfg.Kubelet.StaticPodPath, opts}, err
	},
	Render: func(_ context.Context, r *Run) (Output, error) {
		opts, err := controlPlaneOptions(r)
		if err != nil {
			return Output{}, err
		}
		files, err := manifests.ControlPlane(r.Cfg, opts)
		if err != nil {
			return Output{}, err
		}
		return Output{Files: files, Summary: filesSummary(files)}, nil
	},
}

// controlPlaneOptions gathers what other phases add to the apiserver. The
// trust-store mounts are the Debian set kubeboot's images carry.
func controlPlaneOptions(r *Run) (manifests.Options, error) {
	fsys := r.Writer.FS()
	_, auditAdd, err := audit.Render(r.Cfg, fsys)
	if err != nil {
		return manifests.Options{}, err
	}
	_, encAdd, err := encryption.Render(r.Cfg, fsys)
	if err != nil {
		return manifests.Options{}, err
	}
	dir := r.Cfg.Cluster.CertificatesDir
	_, certErr := r.readFile(path.Join(dir, "ca.crt"))
	_, keyErr := r.readFile(path.Join(dir, "ca.key"))
	return manifests.Options{
		APIServer:  []manifests.APIServerAdditions{auditAdd, encAdd},
		ExternalCA: certErr == nil && keyErr != nil,
	}, nil
}
