// Package images names the container images of a control-plane node the
// way kubeadm 1.37 does. The static pods, the addons, the images phase and
// `kubeboot config images list` all take their names from here.
package images

import (
	"regexp"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// defaultImageRepository is kubeadm's v1beta4 DefaultImageRepository: only
// there is CoreDNS under coredns/coredns.
const defaultImageRepository = "registry.k8s.io"

// tagRe matches what may not appear in an image tag; kubeadm replaces it
// with "_" (a "+build" suffix becomes "_build").
var tagRe = regexp.MustCompile(`[^-\w.]`)

// List returns the images a control-plane node of this configuration
// needs, in the order and the form `kubeadm config images list` 1.37
// prints them: kube-apiserver, kube-controller-manager, kube-scheduler,
// kube-proxy (unless the add-on is disabled), CoreDNS (unless disabled),
// pause, and etcd when it is local.
func List(cfg *config.Config) []string {
	cc := &cfg.Cluster
	out := []string{
		Kubernetes(cfg, "kube-apiserver"),
		Kubernetes(cfg, "kube-controller-manager"),
		Kubernetes(cfg, "kube-scheduler"),
	}
	if !cc.Proxy.Disabled {
		out = append(out, Kubernetes(cfg, "kube-proxy"))
	}
	if !cc.DNS.Disabled {
		out = append(out, CoreDNS(cfg))
	}
	out = append(out, Pause(cfg))
	if cc.Etcd.Local != nil {
		out = append(out, Etcd(cfg))
	}
	return out
}

// Worker returns what a node without a control plane runs: kube-proxy,
// CoreDNS (which may be scheduled there) and pause; List without the
// control-plane components and etcd.
func Worker(cfg *config.Config) []string {
	cp := map[string]bool{
		Kubernetes(cfg, "kube-apiserver"): true, Kubernetes(cfg, "kube-controller-manager"): true,
		Kubernetes(cfg, "kube-scheduler"): true, Etcd(cfg): true,
	}
	var out []string
	for _, img := range List(cfg) {
		if !cp[img] {
			out = append(out, img)
		}
	}
	return out
}

// Kubernetes is the image of a component built from the Kubernetes
// repository, tagged with the cluster's version.
func Kubernetes(cfg *config.Config, component string) string {
	return cfg.Cluster.ImageRepository + "/" + component + ":" + tagRe.ReplaceAllString(cfg.Cluster.KubernetesVersion, "_")
}

// CoreDNS honours dns.imageRepository and dns.imageTag; the default
// repository keeps CoreDNS under coredns/coredns, any other under coredns.
func CoreDNS(cfg *config.Config) string {
	dns := cfg.Cluster.DNS
	repo := cfg.Cluster.ImageRepository
	if dns.ImageRepository != "" {
		repo = dns.ImageRepository
	}
	if repo == defaultImageRepository {
		repo += "/coredns"
	}
	tag := config.CoreDNSVersion
	if dns.ImageTag != "" {
		tag = dns.ImageTag
	}
	return repo + "/coredns:" + tag
}

// Pause is the sandbox image kubeadm expects the runtime to use. It
// always comes from imageRepository.
func Pause(cfg *config.Config) string {
	return cfg.Cluster.ImageRepository + "/pause:" + config.PauseVersion
}

// Etcd honours etcd.local.imageRepository and etcd.local.imageTag.
// kubeadm 1.37 maps every supported Kubernetes minor to the same etcd.
func Etcd(cfg *config.Config) string {
	repo, tag := cfg.Cluster.ImageRepository, config.EtcdVersion
	if l := cfg.Cluster.Etcd.Local; l != nil {
		if l.ImageRepository != "" {
			repo = l.ImageRepository
		}
		if l.ImageTag != "" {
			tag = l.ImageTag
		}
	}
	return repo + "/etcd:" + tag
}
