package config

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestDefaultsMatchKubeadm(t *testing.T) {
	c := Defaults()
	tokenTTL := c.Init.BootstrapTokens[0].TTL.Duration
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"serviceSubnet", c.Cluster.Networking.ServiceSubnet, "10.96.0.0/12"},
		{"dnsDomain", c.Cluster.Networking.DNSDomain, "cluster.local"},
		{"clusterDNS", c.Kubelet.ClusterDNS[0], "10.96.0.10"},
		{"clusterName", c.Cluster.ClusterName, "kubernetes"},
		{"certificatesDir", c.Cluster.CertificatesDir, "/etc/kubernetes/pki"},
		{"etcd dataDir", c.Cluster.Etcd.Local.DataDir, "/var/lib/etcd"},
		{"imageRepository", c.Cluster.ImageRepository, "registry.k8s.io"},
		{"bindPort", c.Init.LocalAPIEndpoint.BindPort, int32(6443)},
		{"encryptionAlgorithm (kubeboot: ECDSA)", c.Cluster.EncryptionAlgorithm, "ECDSA-P256"},
		{"certificateValidityPeriod", c.Cluster.CertificateValidityPeriod.Duration, 8760 * time.Hour},
		{"caCertificateValidityPeriod", c.Cluster.CACertificateValidityPeriod.Duration, 87600 * time.Hour},
		{"token ttl", tokenTTL, 24 * time.Hour},
		{"token usages", strings.Join(c.Init.BootstrapTokens[0].Usages, ","), "signing,authentication"},
		{"token groups", c.Init.BootstrapTokens[0].Groups[0], "system:bootstrappers:kubeadm:default-node-token"},
		{"imagePullPolicy", string(c.Init.NodeRegistration.ImagePullPolicy), "IfNotPresent"},
		{"taint", c.Init.NodeRegistration.Taints[0].Key, "node-role.kubernetes.io/control-plane"},
		{"wait timeout", c.Init.Timeouts.ControlPlaneComponentHealthCheck.Duration, 4 * time.Minute},
		{"kubelet staticPodPath", c.Kubelet.StaticPodPath, "/etc/kubernetes/manifests"},
		{"kubelet cgroupDriver", c.Kubelet.CgroupDriver, "systemd"},
		{"kubelet anonymous auth", *c.Kubelet.Authentication.Anonymous.Enabled, false},
		{"kubelet healthz", *c.Kubelet.HealthzPort, int32(10248)},
		{"proxy kubeconfig", c.KubeProxy.ClientConnection.Kubeconfig, "/var/lib/kube-proxy/kubeconfig.conf"},
		{"proxy mode (kubeboot: nftables)", string(c.KubeProxy.Mode), "nftables"},
		{"audit on", *c.Boot.Audit.Enabled, true},
		{"encryption on", *c.Boot.EncryptionAtRest.Enabled, true},
		{"modules", len(c.Boot.KernelModules), 7},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestExplicitValuesSurviveDefaults(t *testing.T) {
	c, err := Load("c.yaml", []byte(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  taints: []
---
apiVersion: kubeboot.dev/v1alpha1
kind: BootConfiguration
audit:
  enabled: false
kernelModules: []
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
networking:
  podSubnet: 10.244.0.0/16,fd00:10:244::/56
  serviceSubnet: 10.96.0.0/16,fd00:10:96::/112
`))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Init.NodeRegistration.Taints); n != 0 {
		t.Errorf("explicit empty taints replaced by %d defaults", n)
	}
	if *c.Boot.Audit.Enabled {
		t.Error("explicit audit.enabled=false replaced")
	}
	if len(c.Boot.KernelModules) != 0 {
		t.Error("explicit empty module list replaced")
	}
	if c.KubeProxy.ClusterCIDR != "10.244.0.0/16,fd00:10:244::/56" {
		t.Errorf("clusterCIDR %q", c.KubeProxy.ClusterCIDR)
	}
}

func TestResolve(t *testing.T) {
	v4, v6 := net.ParseIP("192.0.2.10"), net.ParseIP("2001:db8::10")
	for _, tc := range []struct {
		name      string
		svc       string
		facts     StaticFacts
		wantName  string
		wantAddr  string
		wantError string
	}{
		{"v4", "", StaticFacts{Host: "Node-A", IPs: []net.IP{v4, v6}}, "node-a", "192.0.2.10", ""},
		{"v6 primary", "fd00::/112,10.96.0.0/12", StaticFacts{Host: "n", IPs: []net.IP{v4, v6}}, "n", "2001:db8::10", ""},
		{"no route", "", StaticFacts{Host: "n"}, "", "", "no default route"},
		{"bad hostname", "", StaticFacts{Host: "under_score", IPs: []net.IP{v4}}, "", "", "is not a valid node name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			if tc.svc != "" {
				c.Cluster.Networking.ServiceSubnet = tc.svc
			}
			err := Resolve(c, tc.facts)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("got %v, want %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Init.NodeRegistration.Name != tc.wantName || c.Init.LocalAPIEndpoint.AdvertiseAddress != tc.wantAddr {
				t.Errorf("got %s %s", c.Init.NodeRegistration.Name, c.Init.LocalAPIEndpoint.AdvertiseAddress)
			}
		})
	}
}
