package firstboot

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubeboot/kubeboot/pkg/kubelet"
	"github.com/kubeboot/kubeboot/pkg/postinstall"
)

// tlsBootstrapToken is the token a joining kubelet bootstraps with; ""
// on a node that does not join.
func (r *Run) tlsBootstrapToken() string {
	if r.Join == nil {
		return ""
	}
	return r.Join.Join.Discovery.TLSBootstrapToken
}

// bootstrapKubeconfig is kubeadm's bootstrap-kubelet.conf: the cluster
// discovery found and the TLS bootstrap token.
func (r *Run) bootstrapKubeconfig() ([]byte, error) {
	cluster, err := r.clusterInfo()
	if err != nil {
		return nil, err
	}
	token := r.tlsBootstrapToken()
	if token == "" {
		return nil, errors.New("no TLS bootstrap token: set discovery.tlsBootstrapToken (or discovery.bootstrapToken.token)")
	}
	name := r.Cfg.Cluster.ClusterName
	user := "tls-bootstrap-token-user"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: cluster.Server, CertificateAuthorityData: cluster.CertificateAuthorityData}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	ctxName := user + "@" + name
	cfg.Contexts[ctxName] = &clientcmdapi.Context{Cluster: name, AuthInfo: user}
	cfg.CurrentContext = ctxName
	return clientcmd.Write(*cfg)
}

var kubeletBootstrapPhase = Phase{
	Name:  "kubelet-wait-bootstrap",
	Short: "Wait for the kubelet's TLS bootstrap, then remove the bootstrap kubeconfig",
	Apply: func(ctx context.Context, r *Run) (string, error) {
		timeout := r.Join.Join.Timeouts.TLSBootstrap.Duration
		start := time.Now()
		for !r.bootstrapped() {
			if time.Since(start) > timeout {
				return "", fmt.Errorf("the kubelet did not write %s and its client certificate within %s: is it running (kubelet.service, or the supervisor that replaces systemd)? Its log says why; common causes are a CSR that is not approved (the cluster's kubeadm:node-autoapprove-bootstrap binding) and an expired token", kubelet.KubeconfigPath, timeout)
			}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
		if err := r.Writer.Remove(kubelet.BootstrapKubeconfigPath); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s written after %s", kubelet.KubeconfigPath, round(time.Since(start))), nil
	},
}

var waitNodeReadyPhase = Phase{
	Name:  "wait-node-ready",
	Short: "Wait until this Node is registered and Ready",
	Apply: func(ctx context.Context, r *Run) (string, error) {
		c, err := postinstall.NewClients(r.Writer.HostPath(kubelet.KubeconfigPath))
		if err != nil {
			return "", err
		}
		name := r.Cfg.Init.NodeRegistration.Name
		timeout := r.Cfg.Init.Timeouts.KubeletHealthCheck.Duration
		start := time.Now()
		last := "not registered yet"
		for {
			n, err := c.Typed.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			switch {
			case err == nil:
				ready, why := nodeReady(n)
				if ready {
					return fmt.Sprintf("node %s Ready after %s", name, round(time.Since(start))), nil
				}
				last = why
			case apierrors.IsNotFound(err):
				last = "not registered yet"
			default:
				last = err.Error()
			}
			if time.Since(start) > timeout {
				return "", fmt.Errorf("node %s not Ready within %s: %s", name, timeout, last)
			}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(250 * time.Millisecond):
			}
		}
	},
}

// nodeReady reads the Ready condition; when not ready, why says what the
// kubelet reports (e.g. that no CNI network is configured yet).
func nodeReady(n *corev1.Node) (bool, string) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				return true, ""
			}
			return false, fmt.Sprintf("Ready=%s: %s: %s", c.Status, c.Reason, c.Message)
		}
	}
	return false, "no Ready condition yet"
}

// bootstrapped tells whether the TLS bootstrap is complete: the kubelet
// writes kubelet.conf before its certificate arrives, so both must exist.
func (r *Run) bootstrapped() bool {
	data, err := r.readOptional(kubelet.KubeconfigPath)
	if err != nil || data == nil {
		return false
	}
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return false
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return false
	}
	user, ok := cfg.AuthInfos[ctx.AuthInfo]
	if !ok {
		return false
	}
	if user.ClientCertificate != "" {
		if _, err := r.readOptionalStat(user.ClientCertificate); err != nil {
			return false
		}
	}
	return len(user.ClientCertificateData) > 0 || user.ClientCertificate != "" || user.Token != ""
}
