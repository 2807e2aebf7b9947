package config

import (
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// kubeadmClusterConfig is kube-system/kubeadm-config's ClusterConfiguration
// as kubeadm 1.37 writes it (every defaulted field, empty components).
var kubeadmClusterConfig = `apiServer: {}
apiVersion: kubeadm.k8s.io/v1beta4
caCertificateValidityPeriod: 87600h0m0s
certificateValidityPeriod: 8760h0m0s
certificatesDir: /etc/kubernetes/pki
clusterName: prod
controlPlaneEndpoint: cp.example.com:6443
controllerManager: {}
dns: {}
encryptionAlgorithm: RSA-2048
etcd:
  local:
    dataDir: /var/lib/etcd
imageRepository: ` + DefaultImageRepository + `
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.100.0.0/16
proxy: {}
scheduler: {}
`

// kubeadmKubeletConfig is kube-system/kubelet-config as kubeadm 1.37
// writes it (zero durations included), with a few values an operator set
// in init's KubeletConfiguration: maxPods, shutdownGracePeriod, the
// webhook cache TTL and an eviction threshold.
const kubeadmKubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 2m0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: systemd
clusterDNS:
- 10.100.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: ""
cpuManagerReconcilePeriod: 0s
evictionHard:
  nodefs.available: 10%
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMaximumGCAge: 0s
imageMinimumGCAge: 0s
kind: KubeletConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
maxPods: 110
memorySwap: {}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
rotateCertificates: true
runtimeRequestTimeout: 0s
shutdownGracePeriod: 30s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
volumeStatsAggPeriod: 0s
`

// nodeKubelet is a joining node's own KubeletConfiguration: one scalar,
// one map entry, one list.
const nodeKubelet = `---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 50
evictionHard:
  memory.available: 200Mi
clusterDNS: [10.100.0.53]
`

func loadJoin(t *testing.T, yaml string) *JoinConfig {
	t.Helper()
	j, err := LoadJoin("join.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := ResolveJoin(j, StaticFacts{Host: "node-2", IPs: []net.IP{net.ParseIP("192.0.2.12")}}); err != nil {
		t.Fatal(err)
	}
	return j
}

func TestForJoin(t *testing.T) {
	cpJoin := worker + "controlPlane:\n  localAPIEndpoint: {advertiseAddress: 192.0.2.21, bindPort: 7443}\n"
	for _, tc := range []struct {
		name           string
		join           string
		cluster, kubel string
		check          func(t *testing.T, c *Config)
	}{
		{"worker before discovery: defaults stand in", worker, "", "", func(t *testing.T, c *Config) {
			same(t, "kubernetesVersion", c.Cluster.KubernetesVersion, KubernetesVersion)
			same(t, "serviceSubnet", c.Cluster.Networking.ServiceSubnet, DefaultServiceSubnet)
			same(t, "node name", c.Init.NodeRegistration.Name, "node-2")
			same(t, "advertise address (--node-ip)", c.Init.LocalAPIEndpoint.AdvertiseAddress, "192.0.2.99")
			same(t, "staticPodPath", c.Kubelet.StaticPodPath, DefaultManifestsDir)
			same(t, "source", c.Source, "join.yaml")
		}},
		{"worker has no control-plane taint", worker, kubeadmClusterConfig, kubeadmKubeletConfig, func(t *testing.T, c *Config) {
			// init's defaults give a node without taints the control-plane
			// taint; a worker must not get it from them.
			for _, ta := range c.Init.NodeRegistration.Taints {
				if ta.Key == ControlPlaneTaint.Key {
					t.Errorf("worker has the control-plane taint: %v", c.Init.NodeRegistration.Taints)
				}
			}
		}},
		{"worker keeps its own taints", worker + "nodeRegistration:\n  taints: [{key: gpu, value: \"true\", effect: NoSchedule}]\n", "", "", func(t *testing.T, c *Config) {
			same(t, "taints", c.Init.NodeRegistration.Taints, []corev1.Taint{{Key: "gpu", Value: "true", Effect: corev1.TaintEffectNoSchedule}})
		}},
		{"control plane: its endpoint wins over the node IP", cpJoin, kubeadmClusterConfig, kubeadmKubeletConfig, func(t *testing.T, c *Config) {
			same(t, "advertise address", c.Init.LocalAPIEndpoint.AdvertiseAddress, "192.0.2.21")
			same(t, "bind port", c.Init.LocalAPIEndpoint.BindPort, int32(7443))
			same(t, "taints", c.Init.NodeRegistration.Taints, []corev1.Taint{ControlPlaneTaint})
		}},
		{"cluster documents as kubeadm writes them", worker, kubeadmClusterConfig, kubeadmKubeletConfig, func(t *testing.T, c *Config) {
			same(t, "clusterName", c.Cluster.ClusterName, "prod")
			same(t, "controlPlaneEndpoint", c.Cluster.ControlPlaneEndpoint, "cp.example.com:6443")
			same(t, "encryptionAlgorithm (the cluster's, not kubeboot's default)", c.Cluster.EncryptionAlgorithm, "RSA-2048")
			same(t, "podSubnet", c.Cluster.Networking.PodSubnet, "10.244.0.0/16")
			same(t, "maxPods", c.Kubelet.MaxPods, int32(110))
			same(t, "shutdownGracePeriod", c.Kubelet.ShutdownGracePeriod.Duration, 30*time.Second)
			same(t, "clusterDNS", c.Kubelet.ClusterDNS, []string{"10.100.0.10"})
			// The cluster's copy has no endpoint; the node's CRI socket is it.
			same(t, "containerRuntimeEndpoint", c.Kubelet.ContainerRuntimeEndpoint, DefaultCRISocket)
			if err := Validate(c); err != nil {
				t.Errorf("composed configuration does not validate: %v", err)
			}
		}},
		{"node's kubelet fields on top of the cluster's", worker + nodeKubelet, kubeadmClusterConfig, kubeadmKubeletConfig, func(t *testing.T, c *Config) {
			k := c.Kubelet
			same(t, "maxPods (node)", k.MaxPods, int32(50))
			same(t, "evictionHard (maps merge)", k.EvictionHard, map[string]string{"nodefs.available": "10%", "memory.available": "200Mi"})
			same(t, "clusterDNS (lists replace)", k.ClusterDNS, []string{"10.100.0.53"})
			same(t, "cgroupDriver (cluster)", k.CgroupDriver, "systemd")
			// Fields the node did not write must not be overwritten by the
			// zero values its decoded document holds for them.
			same(t, "shutdownGracePeriod (cluster)", k.ShutdownGracePeriod.Duration, 30*time.Second)
			same(t, "authentication.webhook.cacheTTL (cluster)", k.Authentication.Webhook.CacheTTL.Duration, 2*time.Minute)
			same(t, "authentication.x509.clientCAFile (cluster)", k.Authentication.X509.ClientCAFile, "/etc/kubernetes/pki/ca.crt")
		}},
		{"node's explicit zero duration overrides the cluster's", worker + "---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nshutdownGracePeriod: 0s\n",
			kubeadmClusterConfig, kubeadmKubeletConfig, func(t *testing.T, c *Config) {
				same(t, "shutdownGracePeriod", c.Kubelet.ShutdownGracePeriod.Duration, time.Duration(0))
				same(t, "maxPods (cluster)", c.Kubelet.MaxPods, int32(110))
			}},
		{"node's nested field beside the cluster's", worker + "---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nauthentication: {anonymous: {enabled: true}}\n",
			kubeadmClusterConfig, kubeadmKubeletConfig, func(t *testing.T, c *Config) {
				same(t, "anonymous (node)", *c.Kubelet.Authentication.Anonymous.Enabled, true)
				same(t, "webhook.enabled (cluster)", *c.Kubelet.Authentication.Webhook.Enabled, true)
				same(t, "webhook.cacheTTL (cluster)", c.Kubelet.Authentication.Webhook.CacheTTL.Duration, 2*time.Minute)
			}},
		{"cluster without kubelet-config", worker, kubeadmClusterConfig, "", func(t *testing.T, c *Config) {
			same(t, "cgroupDriver (default)", c.Kubelet.CgroupDriver, "systemd")
			same(t, "clusterDNS (from the cluster's service subnet)", c.Kubelet.ClusterDNS, []string{"10.100.0.10"})
		}},
		{"join settings carried", worker + "nodeRegistration: {criSocket: \"unix:///run/crio/crio.sock\", kubeletExtraArgs: [{name: v, value: \"4\"}]}\nskipPhases: [images]\n", "", "", func(t *testing.T, c *Config) {
			same(t, "criSocket", c.Init.NodeRegistration.CRISocket, "unix:///run/crio/crio.sock")
			same(t, "containerRuntimeEndpoint", c.Kubelet.ContainerRuntimeEndpoint, "unix:///run/crio/crio.sock")
			same(t, "kubeletExtraArgs", c.Init.NodeRegistration.KubeletExtraArgs, []Arg{{Name: "v", Value: "4"}})
			same(t, "skipPhases", c.Init.SkipPhases, []string{"images"})
			same(t, "tlsBootstrap timeout", c.Init.Timeouts.TLSBootstrap.Duration, 5*time.Minute)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := loadJoin(t, tc.join)
			ip := "192.0.2.99"
			c, err := ForJoin(j, "", []byte(tc.cluster), []byte(tc.kubel), ip)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
			// The join configuration is not changed by composing.
			if j.Kubelet != nil && j.Kubelet.CgroupDriver != "" {
				t.Errorf("ForJoin wrote into the join configuration's kubelet document")
			}
		})
	}
}

func TestForJoinInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, cluster, kubelet, want string
	}{
		{"no version", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n", "",
			"kube-system/kubeadm-config: no ClusterConfiguration with a kubernetesVersion"},
		{"only a kubelet document", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n", "",
			"no ClusterConfiguration with a kubernetesVersion"},
		{"unknown field", strings.Replace(kubeadmClusterConfig, "clusterName:", "clusterNam:", 1), "",
			"document 1 (ClusterConfiguration): clusterNam: unknown field"},
		{"unknown kubelet field", kubeadmClusterConfig, strings.Replace(kubeadmKubeletConfig, "maxPods:", "maxPod:", 1),
			"document 2 (KubeletConfiguration): maxPod: unknown field"},
		{"init document", kubeadmClusterConfig + "---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n", "",
			"InitConfiguration is not used by kubeboot join"},
		{"wrong type", strings.Replace(kubeadmClusterConfig, "clusterName: prod", "clusterName: [prod]", 1), "",
			"clusterName: wrong type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ForJoin(loadJoin(t, worker), "kube-system/kubeadm-config", []byte(tc.cluster), []byte(tc.kubelet), "192.0.2.99")
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "kube-system/kubeadm-config: ") {
				t.Errorf("error does not say %q after the source:\n%v", tc.want, err)
			}
		})
	}
}

func TestJoinFromInit(t *testing.T) {
	c, err := Load("init.yaml", []byte(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: 192.0.2.10, bindPort: 7443}
nodeRegistration:
  name: node-1
  kubeletExtraArgs: [{name: v, value: "2"}]
timeouts: {tlsBootstrap: 7m}
---
apiVersion: kubeboot.dev/v1alpha1
kind: BootConfiguration
stateDir: /var/lib/kb
join: {identityFile: /etc/kubeboot/age.key}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		cp     bool
		taints []corev1.Taint
		port   int32
	}{
		{"control plane", true, []corev1.Taint{ControlPlaneTaint}, 7443},
		{"worker", false, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := JoinFromInit(c, tc.cp)
			same(t, "node name", j.Join.NodeRegistration.Name, "node-1")
			same(t, "kubeletExtraArgs", j.Join.NodeRegistration.KubeletExtraArgs, []Arg{{Name: "v", Value: "2"}})
			same(t, "tlsBootstrap timeout", j.Join.Timeouts.TLSBootstrap.Duration, 7*time.Minute)
			same(t, "boot", j.Boot.StateDir, "/var/lib/kb")
			same(t, "identity file", j.Boot.Join.IdentityFile, "/etc/kubeboot/age.key")
			same(t, "control plane", j.Join.ControlPlane != nil, tc.cp)
			same(t, "taints", j.Join.NodeRegistration.Taints, tc.taints)
			if tc.cp {
				// The init node's address is its own, not the joiner's.
				same(t, "advertise address", j.Join.ControlPlane.LocalAPIEndpoint.AdvertiseAddress, "")
				same(t, "bind port", j.Join.ControlPlane.LocalAPIEndpoint.BindPort, tc.port)
			}
			if j.Join.Discovery.BootstrapToken != nil || j.Join.Discovery.File != nil {
				t.Errorf("discovery set: %+v", j.Join.Discovery)
			}
			// Without a secret the configuration is incomplete; with one it
			// validates.
			SetJoinDefaults(j)
			if err := ValidateJoin(j); err == nil || !strings.Contains(err.Error(), "discovery: required") {
				t.Errorf("no secret: %v", err)
			}
			j.Boot.Join.Secret = "{}"
			if err := ValidateJoin(j); err != nil {
				t.Errorf("with a secret: %v", err)
			}
		})
	}
	if c.Init.NodeRegistration.Taints == nil || c.Init.LocalAPIEndpoint.AdvertiseAddress != "192.0.2.10" {
		t.Errorf("JoinFromInit changed the init configuration: %+v", c.Init)
	}
}

func TestUseSecret(t *testing.T) {
	s := SecretDiscovery{Endpoint: "192.0.2.10:6443", Token: joinToken, CACertHashes: []string{joinHash}, CertificateKey: strings.Repeat("cd", 32)}
	const other = "zyxwvu.zyxwvuzyxwvuzyxw"
	otherKey := strings.Repeat("ef", 32)
	for _, tc := range []struct {
		name  string
		setup func(j *JoinConfig)
		check func(t *testing.T, d Discovery, cp *JoinControlPlane)
	}{
		{"empty discovery: token discovery of the secret", func(*JoinConfig) {}, func(t *testing.T, d Discovery, cp *JoinControlPlane) {
			same(t, "bootstrapToken", d.BootstrapToken, &BootstrapTokenDiscovery{APIServerEndpoint: s.Endpoint, Token: s.Token, CACertHashes: s.CACertHashes})
			same(t, "tlsBootstrapToken", d.TLSBootstrapToken, joinToken)
			same(t, "no control plane made", cp == nil, true)
		}},
		{"file discovery kept", func(j *JoinConfig) {
			j.Join.Discovery.File = &FileDiscovery{KubeConfigPath: "/etc/kubernetes/discovery.conf"}
		}, func(t *testing.T, d Discovery, _ *JoinControlPlane) {
			same(t, "no token discovery added", d.BootstrapToken == nil, true)
			same(t, "file", d.File.KubeConfigPath, "/etc/kubernetes/discovery.conf")
			same(t, "tlsBootstrapToken from the secret", d.TLSBootstrapToken, joinToken)
		}},
		{"configured token discovery kept", func(j *JoinConfig) {
			j.Join.Discovery.BootstrapToken = &BootstrapTokenDiscovery{APIServerEndpoint: "lb.example.com:6443", Token: other, UnsafeSkipCAVerification: true}
			j.Join.Discovery.TLSBootstrapToken = other
		}, func(t *testing.T, d Discovery, _ *JoinControlPlane) {
			same(t, "endpoint", d.BootstrapToken.APIServerEndpoint, "lb.example.com:6443")
			same(t, "token", d.BootstrapToken.Token, other)
			same(t, "tlsBootstrapToken", d.TLSBootstrapToken, other)
		}},
		{"control plane gets the certificate key", func(j *JoinConfig) {
			j.Join.ControlPlane = &JoinControlPlane{}
		}, func(t *testing.T, _ Discovery, cp *JoinControlPlane) {
			same(t, "certificateKey", cp.CertificateKey, s.CertificateKey)
		}},
		{"configured certificate key kept", func(j *JoinConfig) {
			j.Join.ControlPlane = &JoinControlPlane{CertificateKey: otherKey}
		}, func(t *testing.T, _ Discovery, cp *JoinControlPlane) {
			same(t, "certificateKey", cp.CertificateKey, otherKey)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := NewJoinConfig("join.yaml")
			j.Boot.Join.Source = "/run/join-secret.json"
			tc.setup(j)
			SetJoinDefaults(j)
			if err := ValidateJoin(j); err != nil {
				t.Fatalf("before the secret: %v", err)
			}
			j.UseSecret(s)
			tc.check(t, j.Join.Discovery, j.Join.ControlPlane)
			if err := ValidateJoin(j); err != nil {
				t.Errorf("after the secret: %v", err)
			}
		})
	}
}

// TestJoinSecretStandsInForDiscovery: a join source or an inline secret
// makes discovery optional, both at once are refused, and neither leaves
// discovery required.
func TestJoinSecretStandsInForDiscovery(t *testing.T) {
	const boot = "apiVersion: kubeboot.dev/v1alpha1\nkind: BootConfiguration\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"join.source file", boot + "join: {source: /run/kubeboot/join-secret.json}\n", ""},
		{"join.source URL", boot + "join: {source: \"https://meta.example.com/join\"}\n", ""},
		{"join.source virtio-serial", boot + "join: {source: \"virtio-serial:kubeboot.join\"}\n", ""},
		{"join.secret", boot + "join: {secret: \"{}\"}\n", ""},
		{"neither", boot, "discovery: required"},
		{"both", boot + "join: {source: /run/s.json, secret: \"{}\"}\n", "join.secret: set either join.source or join.secret, not both"},
		{"secret and a control plane", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ncontrolPlane: {}\n---\n" + boot + "join: {secret: \"{}\"}\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadJoin("join.yaml", []byte(tc.yaml))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error does not say %q: %v", tc.want, err)
			}
		})
	}
}

func same(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %#v, want %#v", what, got, want)
	}
}
