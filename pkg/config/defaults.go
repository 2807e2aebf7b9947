package config

import (
	"net"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// kubeadm 1.37's defaults, except where the comment says otherwise.
const (
	DefaultServiceSubnet   = "10.96.0.0/12"
	DefaultDNSDomain       = "cluster.local"
	DefaultCertificatesDir = "/etc/kubernetes/pki"
	DefaultImageRepository = "registry.k8s.io"
	DefaultClusterName     = "kubernetes"
	DefaultEtcdDataDir     = "/var/lib/etcd"
	DefaultBindPort        = 6443
	DefaultCRISocket       = "unix:///var/run/containerd/containerd.sock"
	DefaultManifestsDir    = "/etc/kubernetes/manifests"
	// kubeadm defaults to RSA-2048; ECDSA-P256 is as widely supported, and
	// 16 RSA keys cost about 2 s on a small machine against a few ms.
	DefaultEncryptionAlgorithm = "ECDSA-P256"
	DefaultStateDir            = "/var/lib/kubeboot"
	DefaultImageArchiveDir     = "/var/lib/kubeboot/images"
	DefaultAuditLogPath        = "/var/log/kubernetes/audit/audit.log"
	DefaultProxyKubeconfig     = "/var/lib/kube-proxy/kubeconfig.conf"
	// kube-proxy 1.37 deprecates ipvs and nftables is GA since 1.33;
	// kubeadm still defaults to iptables.
	DefaultProxyMode = "nftables"

	CertificateValidity   = 365 * 24 * time.Hour
	CACertificateValidity = 10 * 365 * 24 * time.Hour
	BootstrapTokenTTL     = 24 * time.Hour
	DefaultTokenGroup     = "system:bootstrappers:kubeadm:default-node-token"
)

// DefaultKernelModules are what kube-proxy (all modes) and the container
// runtime need.
var DefaultKernelModules = []string{"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack", "br_netfilter", "overlay"}

// ControlPlaneTaint is what kubeadm puts on control-plane nodes.
var ControlPlaneTaint = corev1.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}

// SetDefaults fills every field a user left empty. It never overrides a
// value the user set, and it is idempotent.
func SetDefaults(c *Config) {
	defaultInit(&c.Init)
	defaultCluster(&c.Cluster)
	defaultBoot(&c.Boot)
	defaultKubelet(c)
	defaultKubeProxy(c)
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func defaultInit(in *InitConfiguration) {
	in.APIVersion, in.Kind = KubeadmGroupVersion, KindInit
	if len(in.BootstrapTokens) == 0 {
		in.BootstrapTokens = []BootstrapToken{{}}
	}
	for i := range in.BootstrapTokens {
		t := &in.BootstrapTokens[i]
		if t.TTL == nil && t.Expires == nil {
			t.TTL = dur(BootstrapTokenTTL)
		}
		if len(t.Usages) == 0 {
			t.Usages = []string{"signing", "authentication"}
		}
		if len(t.Groups) == 0 {
			t.Groups = []string{DefaultTokenGroup}
		}
	}
	if in.LocalAPIEndpoint.BindPort == 0 {
		in.LocalAPIEndpoint.BindPort = DefaultBindPort
	}
	nr := &in.NodeRegistration
	if nr.CRISocket == "" {
		nr.CRISocket = DefaultCRISocket
	}
	// nil means "not said": a control plane gets kubeadm's taint. An explicit
	// empty list means no taints and is kept.
	if nr.Taints == nil {
		nr.Taints = []corev1.Taint{ControlPlaneTaint}
	}
	if nr.ImagePullPolicy == "" {
		nr.ImagePullPolicy = corev1.PullIfNotPresent
	}
	if nr.ImagePullSerial == nil {
		nr.ImagePullSerial = ptr.To(true)
	}
	if in.Timeouts == nil {
		in.Timeouts = &Timeouts{}
	}
	defaultTimeouts(in.Timeouts)
}

func defaultTimeouts(t *Timeouts) {
	set := func(p **metav1.Duration, d time.Duration) {
		if *p == nil {
			*p = dur(d)
		}
	}
	set(&t.ControlPlaneComponentHealthCheck, 4*time.Minute)
	set(&t.KubeletHealthCheck, 4*time.Minute)
	set(&t.KubernetesAPICall, time.Minute)
	set(&t.EtcdAPICall, 2*time.Minute)
	set(&t.TLSBootstrap, 5*time.Minute)
	set(&t.Discovery, 5*time.Minute)
	set(&t.UpgradeManifests, 5*time.Minute)
}

func defaultCluster(c *ClusterConfiguration) {
	c.APIVersion, c.Kind = KubeadmGroupVersion, KindCluster
	if c.KubernetesVersion == "" {
		// kubeadm's "stable-1" asks the internet; a first boot must not.
		c.KubernetesVersion = KubernetesVersion
	}
	if c.Networking.ServiceSubnet == "" {
		c.Networking.ServiceSubnet = DefaultServiceSubnet
	}
	if c.Networking.DNSDomain == "" {
		c.Networking.DNSDomain = DefaultDNSDomain
	}
	if c.CertificatesDir == "" {
		c.CertificatesDir = DefaultCertificatesDir
	}
	if c.ImageRepository == "" {
		c.ImageRepository = DefaultImageRepository
	}
	if c.ClusterName == "" {
		c.ClusterName = DefaultClusterName
	}
	if c.EncryptionAlgorithm == "" {
		c.EncryptionAlgorithm = DefaultEncryptionAlgorithm
	}
	if c.CertificateValidityPeriod == nil {
		c.CertificateValidityPeriod = dur(CertificateValidity)
	}
	if c.CACertificateValidityPeriod == nil {
		c.CACertificateValidityPeriod = dur(CACertificateValidity)
	}
	if c.Etcd.Local == nil && c.Etcd.External == nil {
		c.Etcd.Local = &LocalEtcd{}
	}
	if c.Etcd.Local != nil && c.Etcd.Local.DataDir == "" {
		c.Etcd.Local.DataDir = DefaultEtcdDataDir
	}
	if e := c.Etcd.External; e != nil && len(e.HTTPEndpoints) == 0 && len(e.Endpoints) > 0 {
		e.HTTPEndpoints = append([]string(nil), e.Endpoints...)
	}
}

func defaultBoot(b *BootConfiguration) {
	b.APIVersion, b.Kind = BootGroupVersion, KindBoot
	if b.StateDir == "" {
		b.StateDir = DefaultStateDir
	}
	if b.KernelModules == nil {
		for _, m := range DefaultKernelModules {
			b.KernelModules = append(b.KernelModules, KernelModule{Name: m})
		}
	}
	if b.ImageArchiveDir == "" {
		b.ImageArchiveDir = DefaultImageArchiveDir
	}
	if len(b.JoinSecret.Sinks) == 0 {
		b.JoinSecret.Sinks = []JoinSecretSink{{File: &FileSink{Path: b.StateDir + "/join-secret.json"}}}
	}
	for i := range b.JoinSecret.Sinks {
		if h := b.JoinSecret.Sinks[i].HTTP; h != nil && h.Timeout == nil {
			h.Timeout = dur(time.Minute)
		}
	}
	if b.Join.Timeout == nil {
		b.Join.Timeout = dur(15 * time.Minute)
	}
	if r := b.Cluster.Rendezvous; r != nil {
		if r.ControlPlaneReplicas == nil {
			r.ControlPlaneReplicas = ptr.To[int32](3)
		}
		if r.LeaseDuration == nil {
			r.LeaseDuration = dur(10 * time.Minute)
		}
		if r.Timeout == nil {
			r.Timeout = dur(30 * time.Minute)
		}
	}
	if b.Audit.Enabled == nil {
		b.Audit.Enabled = ptr.To(true)
	}
	if b.Audit.LogPath == "" {
		b.Audit.LogPath = DefaultAuditLogPath
	}
	if b.Audit.MaxAge == 0 {
		b.Audit.MaxAge = 30
	}
	if b.Audit.MaxBackups == 0 {
		b.Audit.MaxBackups = 10
	}
	if b.Audit.MaxSize == 0 {
		b.Audit.MaxSize = 100
	}
	if b.NodeNameInHosts == nil {
		b.NodeNameInHosts = ptr.To(true)
	}
	if b.EncryptionAtRest.Enabled == nil {
		b.EncryptionAtRest.Enabled = ptr.To(true)
	}
	if b.EncryptionAtRest.Provider == "" {
		b.EncryptionAtRest.Provider = "secretbox"
	}
}

// defaultKubelet applies the values kubeadm's kubelet component config
// defaults; the kubelet defaults everything else itself.
func defaultKubelet(c *Config) {
	k := &c.Kubelet
	k.APIVersion, k.Kind = KubeletGroupVersion, KindKubelet
	if k.StaticPodPath == "" {
		k.StaticPodPath = DefaultManifestsDir
	}
	if k.ClusterDNS == nil {
		if ip, err := DNSIP(c.Cluster.Networking.ServiceSubnet); err == nil {
			k.ClusterDNS = []string{ip.String()}
		}
	}
	if k.ClusterDomain == "" {
		k.ClusterDomain = c.Cluster.Networking.DNSDomain
	}
	if k.Authentication.X509.ClientCAFile == "" {
		k.Authentication.X509.ClientCAFile = strings.TrimSuffix(c.Cluster.CertificatesDir, "/") + "/ca.crt"
	}
	if k.Authentication.Anonymous.Enabled == nil {
		k.Authentication.Anonymous.Enabled = ptr.To(false)
	}
	if k.Authentication.Webhook.Enabled == nil {
		k.Authentication.Webhook.Enabled = ptr.To(true)
	}
	if k.Authorization.Mode == "" {
		k.Authorization.Mode = "Webhook"
	}
	if k.HealthzBindAddress == "" {
		k.HealthzBindAddress = "127.0.0.1"
	}
	if k.HealthzPort == nil {
		k.HealthzPort = ptr.To[int32](10248)
	}
	k.RotateCertificates = true
	if k.CgroupDriver == "" {
		k.CgroupDriver = "systemd"
	}
	if k.ContainerRuntimeEndpoint == "" {
		k.ContainerRuntimeEndpoint = c.Init.NodeRegistration.CRISocket
	}
}

func defaultKubeProxy(c *Config) {
	p := &c.KubeProxy
	p.APIVersion, p.Kind = KubeProxyGroupVersion, KindKubeProxy
	if p.BindAddress == "" {
		p.BindAddress = "0.0.0.0"
		if ip := net.ParseIP(c.Init.LocalAPIEndpoint.AdvertiseAddress); ip != nil && ip.To4() == nil {
			p.BindAddress = "::"
		}
	}
	if p.ClusterCIDR == "" {
		p.ClusterCIDR = c.Cluster.Networking.PodSubnet
	}
	if p.ClientConnection.Kubeconfig == "" {
		p.ClientConnection.Kubeconfig = DefaultProxyKubeconfig
	}
	if p.Mode == "" {
		p.Mode = DefaultProxyMode
	}
}
