package firstboot

import (
	"context"
	"crypto/x509"
	"fmt"
	"github.com/kubeboot/kubeboot/pkg/encryption"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/kubeboot/kubeboot/pkg/cri"
	"github.com/kubeboot/kubeboot/pkg/postinstall"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
	"github.com/kubeboot/kubeboot/pkg/wait"
)

var waitControlPlanePhase = Phase{
	Name:  "wait-control-plane",
	Short: "Wait for the kubelet and the control-plane components to be healthy",
	Apply: func(ctx context.Context, r *Run) (string, error) {
		ca, err := r.caCert()
		if err != nil {
			return "", err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		ep := r.Cfg.Init.LocalAPIEndpoint
		// The kubelet is checked only when kubeboot manages it.
		withKubelet := !slices.Contains(r.SkipPhases, kubeletStartPhase.Name)
		w := wait.Waiter{
			Timeout: r.Cfg.Init.Timeouts.ControlPlaneComponentHealthCheck.Duration,
			// Local health checks are cheap; a long backoff would only add
			// up to its length to every first boot.
			Interval:    50 * time.Millisecond,
			MaxInterval: 200 * time.Millisecond,
			Progress: func(name string, healthy bool, detail string, elapsed time.Duration) {
				if r.Out != nil && (healthy || r.Log.Enabled(ctx, -4)) {
					fmt.Fprintf(r.Out, "[wait-control-plane] %s: %s after %s\n", name, detail, round(elapsed))
				}
				r.Log.Info("health", "component", name, "healthy", healthy, "detail", detail)
			},
		}
		// Last log lines of failing components come from the runtime, when
		// one answers.
		if client, err := cri.Dial(ctx, r.Cfg.Init.NodeRegistration.CRISocket); err == nil {
			defer client.Close()
			w.Logs = client.Logs
		}
		res, err := w.Wait(ctx, wait.ControlPlane(ep.AdvertiseAddress, ep.BindPort, pool, withKubelet))
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d components healthy", len(res)), nil
	},
}

var uploadConfigPhase = Phase{
	Name:  "upload-config",
	Short: "Store the ClusterConfiguration and KubeletConfiguration in kube-system ConfigMaps",
	Inputs: func(r *Run) (any, error) {
		return []any{r.Cfg.Cluster, r.Cfg.Kubelet}, nil
	},
	Apply: func(ctx context.Context, r *Run) (string, error) {
		// admin.conf's group is bound to cluster-admin by this very binding,
		// so it is created as the super admin.
		super, err := r.clients("/etc/kubernetes/super-admin.conf")
		if err != nil {
			return "", err
		}
		first, err := r.applier(super).Apply(ctx, postinstall.ClusterAdmins())
		if err != nil {
			return "", err
		}
		objs, err := postinstall.UploadConfig(r.Cfg)
		if err != nil {
			return "", err
		}
		admin, err := r.admin()
		if err != nil {
			return "", err
		}
		res, err := r.applier(admin).Apply(ctx, objs...)
		return appliedSummary(append(first, res...)), err
	},
}

// uploadCertsWanted: kubeadm uploads only when asked (--upload-certs or a
// certificate key in the configuration).
func uploadCertsWanted(r *Run) bool {
	return r.Cfg.Init.CertificateKey != "" || r.Cfg.Boot.UploadCerts
}

const certificateKeyFile = "certificate-key"

var uploadCertsPhase = Phase{
	Name:  "upload-certs",
	Short: "Upload the shared certificates, encrypted, to kube-system/kubeadm-certs",
	Inputs: func(r *Run) (any, error) {
		return []any{uploadCertsWanted(r), r.Cfg.Init.CertificateKey != "", r.Cfg.Cluster.CertificatesDir}, nil
	},
	Render: func(_ context.Context, r *Run) (Output, error) {
		if !uploadCertsWanted(r) {
			return Output{Summary: "not requested (set uploadCerts in the BootConfiguration or a certificateKey)"}, nil
		}
		key := r.Cfg.Init.CertificateKey
		if key == "" {
			old, err := r.readOptional(r.statePath(certificateKeyFile))
			if err != nil {
				return Output{}, err
			}
			key = string(old)
			if _, err := postinstall.ParseCertificateKey(key); err != nil {
				if key, err = postinstall.NewCertificateKey(); err != nil {
					return Output{}, err
				}
			}
		}
		return Output{Files: []rootfs.File{{Path: r.statePath(certificateKeyFile), Mode: 0o600, Data: []byte(key), Secret: true}}}, nil
	},
	Apply: func(ctx context.Context, r *Run) (string, error) {
		if !uploadCertsWanted(r) {
			return "", nil
		}
		keyHex, err := r.readFile(r.statePath(certificateKeyFile))
		if err != nil {
			return "", err
		}
		key, err := postinstall.ParseCertificateKey(string(keyHex))
		if err != nil {
			return "", err
		}
		files := map[string][]byte{}
		for name, p := range postinstall.SharedCerts(r.Cfg.Cluster.CertificatesDir, r.Cfg.Cluster.Etcd.External != nil) {
			if files[name], err = r.readFile(p); err != nil {
				return "", fmt.Errorf("read %s: %w", p, err)
			}
		}
		if enc, err := r.readOptional(encryption.ConfigPath); err != nil {
			return "", err
		} else if enc != nil {
			files[postinstall.EncryptionConfigKey] = enc
		}
		admin, err := r.admin()
		if err != nil {
			return "", err
		}
		// The reads below are not idempotent applies: retry the whole step
		// through API server restarts.
		var summary string
		err = postinstall.Retry(ctx, r.Cfg.Init.Timeouts.KubernetesAPICall.Duration, postinstall.ReadyFunc(admin.Typed), func(ctx context.Context) error {
			summary, err = uploadCerts(ctx, r, admin, files, key)
			return err
		})
		return summary, err
	},
}

func uploadCerts(ctx context.Context, r *Run, admin *postinstall.Clients, files map[string][]byte, key []byte) (string, error) {
	secrets := admin.Typed.CoreV1().Secrets(metav1.NamespaceSystem)
	existing, err := secrets.Get(ctx, postinstall.KubeadmCertsSecret, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return "", err
	}
	if err == nil && postinstall.SameCerts(existing, files, key) {
		res, err := r.applier(admin).Apply(ctx, postinstall.CertsRBAC()...)
		return "certificates already uploaded; " + appliedSummary(res), err
	}
	tok, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return "", err
	}
	id, secret := tok[:6], tok[7:]
	owner := postinstall.TokenSecret(postinstall.CertsOwnerToken(id, secret, r.now()))
	applied, err := r.applier(admin).Apply(ctx, owner)
	if err != nil {
		return "", err
	}
	created, err := secrets.Get(ctx, owner.Name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	s, err := postinstall.CertsSecret(files, key, created)
	if err != nil {
		return "", err
	}
	res, err := r.applier(admin).Apply(ctx, append([]runtime.Object{s}, postinstall.CertsRBAC()...)...)
	return fmt.Sprintf("%d files uploaded, expiring in %s; %s", len(files), postinstall.CertsTokenTTL, appliedSummary(append(applied, res...))), err
}

var markControlPlanePhase = Phase{
	Name:  "mark-control-plane",
	Short: "Label and taint this node as a control-plane node",
	Inputs: func(r *Run) (any, error) {
		return []any{r.Cfg.Init.NodeRegistration.Name, r.Cfg.Init.NodeRegistration.Taints, r.Cfg.Init.NodeRegistration.CRISocket}, nil
	},
	Apply: func(ctx context.Context, r *Run) (string, error) {
		admin, err := r.admin()
		if err != nil {
			return "", err
		}
		nr := r.Cfg.Init.NodeRegistration
		node, err := postinstall.WaitForNode(ctx, admin.Typed, nr.Name, r.Cfg.Init.Timeouts.ControlPlaneComponentHealthCheck.Duration)
		if err != nil {
			return "", err
		}
		var changed bool
		err = postinstall.Retry(ctx, r.Cfg.Init.Timeouts.KubernetesAPICall.Duration, postinstall.ReadyFunc(admin.Typed), func(ctx context.Context) error {
			n, err := admin.Typed.CoreV1().Nodes().Get(ctx, nr.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			node = n
			changed, err = postinstall.MarkControlPlane(ctx, admin.Typed, node, nr.CRISocket, nr.Taints)
			return err
		})
		if err != nil {
			return "", err
		}
		if !changed {
			return "node " + nr.Name + " already marked", nil
		}
		return fmt.Sprintf("node %s labelled, %d taints", nr.Name, len(nr.Taints)), nil
	},
}

var bootstrapTokenPhase = Phase{
	Name:  "bootstrap-token",
	Short: "Create the bootstrap token, its RBAC and the signed kube-public/cluster-info",
	Inputs: func(r *Run) (any, error) {
		ca, err := r.caCert()
		return []any{r.Cfg.Init.BootstrapTokens, ca, r.controlPlaneEndpoint()}, err
	},
	Render: func(_ context.Context, r *Run) (Output, error) {
		old, err := r.readOptional(r.statePath(postinstall.TokensFile))
		if err != nil {
			return Output{}, err
		}
		tokens, err := postinstall.ResolveTokens(r.Cfg.Init.BootstrapTokens, old, r.now())
		if err != nil {
			return Output{}, err
		}
		data, err := postinstall.MarshalTokens(tokens)
		if err != nil {
			return Output{}, err
		}
		return Output{
			Files:   []rootfs.File{{Path: r.statePath(postinstall.TokensFile), Mode: 0o600, Data: data, Secret: true}},
			Summary: fmt.Sprintf("%d token(s): %v", len(tokens), tokens),
		}, nil
	},
	Apply: func(ctx context.Context, r *Run) (string, error) {
		tokens, err := r.tokens()
		if err != nil {
			return "", err
		}
		ca, err := r.caCert()
		if err != nil {
			return "", err
		}
		var objs []runtime.Object
		for _, t := range tokens {
			objs = append(objs, postinstall.TokenSecret(t))
		}
		objs = append(objs, postinstall.BootstrapRBAC()...)
		info, err := postinstall.ClusterInfo("https://"+r.controlPlaneEndpoint(), ca, tokens)
		if err != nil {
			return "", err
		}
		admin, err := r.admin()
		if err != nil {
			return "", err
		}
		res, err := r.applier(admin).Apply(ctx, append(objs, info...)...)
		return appliedSummary(res), err
	},
}

// kubeletClientCurrent is where the kubelet keeps its rotated client
// certificate and key (one PEM file).
const kubeletClientCurrent = "/var/lib/kubelet/pki/kubelet-client-current.pem"

var kubeletFinalizePhase = Phase{
	Name:  "kubelet-finalize",
	Short: "Point kubelet.conf at the kubelet's rotating client certificate",
	Render: func(_ context.Context, r *Run) (Output, error) {
		if _, err := r.readFile(kubeletClientCurrent); err != nil {
			return Output{Summary: "no rotated kubelet client certificate yet; kubelet.conf keeps its own"}, nil
		}
		conf, err := r.readFile("/etc/kubernetes/kubelet.conf")
		if err != nil {
			return Output{}, err
		}
		data, changed, err := postinstall.UseRotatingCert(conf, kubeletClientCurrent)
		if err != nil {
			return Output{}, fmt.Errorf("kubelet.conf: %w", err)
		}
		if !changed {
			return Output{Summary: "kubelet.conf already uses " + kubeletClientCurrent}, nil
		}
		return Output{Files: []rootfs.File{{Path: "/etc/kubernetes/kubelet.conf", Mode: 0o600, Data: data, Secret: true}},
			Summary: "kubelet.conf now uses " + kubeletClientCurrent}, nil
	},
}
