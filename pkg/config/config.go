// Package config decodes, defaults and validates kubeboot's configuration:
// kubeadm's v1beta4 InitConfiguration and ClusterConfiguration, the
// kubelet's and kube-proxy's component configurations, and kubeboot's own
// BootConfiguration, all in one multi-document YAML stream.
package config

import (
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
)

// Config is the whole configuration of one node.
type Config struct {
	// Source names where the configuration came from, for messages.
	Source    string
	Init      InitConfiguration
	Cluster   ClusterConfiguration
	Kubelet   kubeletv1beta1.KubeletConfiguration
	KubeProxy kubeproxyv1alpha1.KubeProxyConfiguration
	Boot      BootConfiguration

	// docs remembers where each kind came from, so that validation errors
	// point at the right document and line.
	docs map[string]docInfo
}

type docInfo struct {
	index int
	lines map[string]int
}

func (c *Config) errorsFor(kind string) *docErrors {
	d := c.docs[kind]
	return &docErrors{source: c.Source, doc: d.index, kind: kind, lines: d.lines}
}

const (
	KubeletGroupVersion   = "kubelet.config.k8s.io/v1beta1"
	KindKubelet           = "KubeletConfiguration"
	KubeProxyGroupVersion = "kubeproxy.config.k8s.io/v1alpha1"
	KindKubeProxy         = "KubeProxyConfiguration"
)
