package firstboot

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/discovery"
	"github.com/kubeboot/kubeboot/pkg/kubelet"
	"github.com/kubeboot/kubeboot/pkg/postinstall"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// What discovery keeps in the state directory: the cluster's trust anchor
// and address (no credentials) and the cluster's configuration as read.
const (
	clusterInfoState   = "join/cluster-info.conf"
	clusterConfigState = "join/cluster.yaml"
	clusterConfigName  = "kube-system/kubeadm-config and kube-system/kubelet-config"
)

var discoveryPhase = Phase{
	Name:  "discovery",
	Short: "Find and authenticate the cluster, and read its configuration",
	// No Inputs: it runs every time, because the phases after it need the
	// cluster's configuration in memory. Once the kubelet holds its own
	// credentials the token may have expired, so the copy read at join
	// time is used then.
	Render: func(ctx context.Context, r *Run) (Output, error) {
		info, cc, kc, from, err := r.discover(ctx)
		if err != nil {
			return Output{}, err
		}
		cfg, err := config.ForJoin(r.Join, clusterConfigName, cc, kc, r.Cfg.Init.LocalAPIEndpoint.AdvertiseAddress)
		if err != nil {
			return Output{}, err
		}
		r.Cfg = cfg
		cluster, err := discovery.Cluster(info)
		if err != nil {
			return Output{}, err
		}
		infoYAML, err := clientcmd.Write(*info)
		if err != nil {
			return Output{}, err
		}
		all := append(append(append([]byte{}, cc...), "\n---\n"...), kc...)
		files := []rootfs.File{
			{Path: r.statePath(clusterInfoState), Mode: 0o644, Data: infoYAML},
			{Path: r.statePath(clusterConfigState), Mode: 0o644, Data: all},
			// kubeadm join writes the cluster CA for the kubelet (caCertPath).
			{Path: r.Join.Join.CACertPath, Mode: 0o644, Data: cluster.CertificateAuthorityData},
		}
		var warnings []string
		if r.Join.Join.ControlPlane != nil && cfg.Cluster.ControlPlaneEndpoint == "" {
			warnings = append(warnings, "the cluster has no controlPlaneEndpoint: this node's kubeconfigs point at "+cluster.Server+", and lose the API when that node goes; set controlPlaneEndpoint (a load balancer or DNS name) for a highly available control plane")
		}
		return Output{Files: files, Warnings: warnings, Summary: fmt.Sprintf("cluster %q at %s, Kubernetes %s (%s)",
			cfg.Cluster.ClusterName, cluster.Server, cfg.Cluster.KubernetesVersion, from)}, nil
	},
}

// discover returns the cluster-info kubeconfig (server and CA, no
// credentials) and the cluster's ClusterConfiguration and
// KubeletConfiguration documents.
func (r *Run) discover(ctx context.Context) (info *clientcmdapi.Config, cc, kc []byte, from string, err error) {
	if r.joined() {
		all, err := r.readOptional(r.statePath(clusterConfigState))
		if info, ierr := r.clusterInfoConfig(); err == nil && ierr == nil && all != nil {
			cc, kc, _ := bytes.Cut(all, []byte("\n---\n"))
			return info, cc, kc, "as read when this node joined", nil
		}
	}
	d := r.Join.Join.Discovery
	timeout := r.Join.Join.Timeouts.Discovery.Duration
	switch {
	case d.BootstrapToken != nil:
		b := d.BootstrapToken
		info, err = discovery.ByToken(ctx, b.APIServerEndpoint, b.Token, b.CACertHashes, b.UnsafeSkipCAVerification, timeout)
		from = "token " + tokenID(b.Token) + ", CA pinned"
		if len(b.CACertHashes) == 0 {
			from = "token " + tokenID(b.Token) + ", CA NOT pinned (unsafeSkipCAVerification)"
		}
	case d.File != nil:
		info, err = discovery.ByFile(r.Writer.HostPath(d.File.KubeConfigPath))
		from = "kubeconfig " + d.File.KubeConfigPath
	default:
		return nil, nil, nil, "", fmt.Errorf("no discovery configured")
	}
	if err != nil {
		return nil, nil, nil, "", err
	}
	client, err := r.bootstrapClients(info)
	if err != nil {
		return nil, nil, nil, "", err
	}
	err = postinstall.Retry(ctx, timeout, nil, func(ctx context.Context) error {
		cms := client.Typed.CoreV1().ConfigMaps(metav1.NamespaceSystem)
		cm, err := cms.Get(ctx, postinstall.KubeadmConfigMap, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("read kube-system/%s: %w", postinstall.KubeadmConfigMap, err)
		}
		cc = []byte(cm.Data[postinstall.ClusterConfigurationKey])
		cm, err = cms.Get(ctx, postinstall.KubeletConfigMap, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("read kube-system/%s: %w", postinstall.KubeletConfigMap, err)
		}
		kc = []byte(cm.Data[postinstall.KubeletConfigKey])
		return nil
	})
	if err != nil {
		return nil, nil, nil, "", fmt.Errorf("reading the cluster's configuration: %w", err)
	}
	// Only the cluster entry is kept: credentials of a discovery file stay
	// where the user put them.
	return stripCredentials(info), cc, kc, from, nil
}

// joined tells whether the kubelet already holds its own credentials.
func (r *Run) joined() bool {
	_, err := r.readOptionalStat(kubelet.KubeconfigPath)
	return err == nil
}

// bootstrapClients talk to the cluster as the discovery credentials: the
// discovery file's user if it has one, else the TLS bootstrap token.
func (r *Run) bootstrapClients(info *clientcmdapi.Config) (*postinstall.Clients, error) {
	cluster, err := discovery.Cluster(info)
	if err != nil {
		return nil, err
	}
	rc := &rest.Config{Host: cluster.Server, TLSClientConfig: rest.TLSClientConfig{CAData: cluster.CertificateAuthorityData}}
	if ctx, ok := info.Contexts[info.CurrentContext]; ok {
		if u, ok := info.AuthInfos[ctx.AuthInfo]; ok && (u.Token != "" || len(u.ClientCertificateData) > 0) {
			rc.BearerToken = u.Token
			rc.CertData, rc.KeyData = u.ClientCertificateData, u.ClientKeyData
		}
	}
	if rc.BearerToken == "" && rc.CertData == nil {
		rc.BearerToken = r.Join.Join.Discovery.TLSBootstrapToken
	}
	rc.Timeout = 15 * time.Second
	return postinstall.ClientsFor(rc)
}

func stripCredentials(info *clientcmdapi.Config) *clientcmdapi.Config {
	out := clientcmdapi.NewConfig()
	for name, c := range info.Clusters {
		cp := *c
		out.Clusters[name] = &cp
	}
	for name, c := range info.Contexts {
		out.Contexts[name] = &clientcmdapi.Context{Cluster: c.Cluster}
	}
	out.CurrentContext = info.CurrentContext
	return out
}

// tokenID is the public half of a bootstrap token, safe to print.
func tokenID(token string) string {
	if id, _, ok := strings.Cut(token, "."); ok && id != "" {
		return id
	}
	return "<invalid>"
}

// clusterInfoConfig is the cluster-info kubeconfig discovery kept.
func (r *Run) clusterInfoConfig() (*clientcmdapi.Config, error) {
	p := r.statePath(clusterInfoState)
	data, err := r.readFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w (run the discovery phase first)", p, err)
	}
	info, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return info, nil
}

// clusterInfo is the cluster (server and CA) discovery found.
func (r *Run) clusterInfo() (*clientcmdapi.Cluster, error) {
	info, err := r.clusterInfoConfig()
	if err != nil {
		return nil, err
	}
	return discovery.Cluster(info)
}
