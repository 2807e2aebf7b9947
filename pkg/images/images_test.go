package images

import (
	"slices"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/pkg/config"
)

func TestList(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*config.Config)
		want []string
	}{
		{
			// `kubeadm config images list` 1.37.2, verbatim.
			name: "defaults",
			want: []string{
				"registry.k8s.io/kube-apiserver:v1.37.2",
				"registry.k8s.io/kube-controller-manager:v1.37.2",
				"registry.k8s.io/kube-scheduler:v1.37.2",
				"registry.k8s.io/kube-proxy:v1.37.2",
				"registry.k8s.io/coredns/coredns:v1.14.6",
				"registry.k8s.io/pause:3.10.2",
				"registry.k8s.io/etcd:3.7.0-0",
			},
		},
		{
			name: "mirror repository and older version",
			edit: func(c *config.Config) {
				c.Cluster.ImageRepository = "mirror.example:5000/k8s"
				c.Cluster.KubernetesVersion = "v1.36.4"
			},
			want: []string{
				"mirror.example:5000/k8s/kube-apiserver:v1.36.4",
				"mirror.example:5000/k8s/kube-controller-manager:v1.36.4",
				"mirror.example:5000/k8s/kube-scheduler:v1.36.4",
				"mirror.example:5000/k8s/kube-proxy:v1.36.4",
				"mirror.example:5000/k8s/coredns:v1.14.6",
				"mirror.example:5000/k8s/pause:3.10.2",
				"mirror.example:5000/k8s/etcd:3.7.0-0",
			},
		},
		{
			name: "overrides, build metadata, add-ons disabled",
			edit: func(c *config.Config) {
				c.Cluster.ImageRepository = "mirror.example/k8s"
				c.Cluster.KubernetesVersion = "v1.37.2+vendor.1"
				c.Cluster.DNS.ImageRepository = "registry.k8s.io"
				c.Cluster.DNS.ImageTag = "v1.14.7"
				c.Cluster.Etcd.Local.ImageRepository = "quay.io/coreos"
				c.Cluster.Etcd.Local.ImageTag = "v3.7.3"
				c.Cluster.Proxy.Disabled = true
			},
			want: []string{
				"mirror.example/k8s/kube-apiserver:v1.37.2_vendor.1",
				"mirror.example/k8s/kube-controller-manager:v1.37.2_vendor.1",
				"mirror.example/k8s/kube-scheduler:v1.37.2_vendor.1",
				"registry.k8s.io/coredns/coredns:v1.14.7",
				"mirror.example/k8s/pause:3.10.2",
				"quay.io/coreos/etcd:v3.7.3",
			},
		},
		{
			name: "external etcd, no DNS",
			edit: func(c *config.Config) {
				c.Cluster.Etcd.Local = nil
				c.Cluster.Etcd.External = &config.ExternalEtcd{Endpoints: []string{"https://10.0.0.5:2379"}}
				c.Cluster.DNS.Disabled = true
				c.Cluster.DNS.ImageRepository = "other.example"
			},
			want: []string{
				"registry.k8s.io/kube-apiserver:v1.37.2",
				"registry.k8s.io/kube-controller-manager:v1.37.2",
				"registry.k8s.io/kube-scheduler:v1.37.2",
				"registry.k8s.io/kube-proxy:v1.37.2",
				"registry.k8s.io/pause:3.10.2",
			},
		},
		{
			name: "DNS from another repository",
			edit: func(c *config.Config) { c.Cluster.DNS.ImageRepository = "other.example/dns" },
			want: []string{
				"registry.k8s.io/kube-apiserver:v1.37.2",
				"registry.k8s.io/kube-controller-manager:v1.37.2",
				"registry.k8s.io/kube-scheduler:v1.37.2",
				"registry.k8s.io/kube-proxy:v1.37.2",
				"other.example/dns/coredns:v1.14.6",
				"registry.k8s.io/pause:3.10.2",
				"registry.k8s.io/etcd:3.7.0-0",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Defaults()
			if tc.edit != nil {
				tc.edit(c)
			}
			if got := List(c); !slices.Equal(got, tc.want) {
				t.Errorf("Images:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestWorker(t *testing.T) {
	cfg := config.Defaults()
	got := strings.Join(Worker(cfg), " ")
	want := Kubernetes(cfg, "kube-proxy") + " " + CoreDNS(cfg) + " " + Pause(cfg)
	if got != want {
		t.Errorf("Worker = %s, want %s", got, want)
	}
	cfg.Cluster.Proxy.Disabled = true
	if got := Worker(cfg); len(got) != 2 {
		t.Errorf("without kube-proxy: %v", got)
	}
}
