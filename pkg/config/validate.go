package config

import (
	"filippo.io/age"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/version"
)

// Validate checks a defaulted configuration and returns every problem found.
func Validate(c *Config) error {
	all := &Error{}
	var derived []*FieldError
	for _, v := range []struct {
		kind string
		fn   func(*Config, *docErrors)
	}{
		{KindInit, validateInit},
		{KindCluster, validateCluster},
		{KindKubelet, validateKubelet},
		{KindKubeProxy, validateKubeProxy},
		{KindBoot, validateBoot},
	} {
		e := c.errorsFor(v.kind)
		v.fn(c, e)
		if _, given := c.docs[v.kind]; given {
			all.Errs = append(all.Errs, e.errs...)
		} else {
			derived = append(derived, e.errs...)
		}
	}
	// A document the user did not give holds only defaults, some derived
	// from other documents (kube-proxy's clusterCIDR from the pod subnet):
	// its errors repeat one already reported, so they are shown only alone.
	if len(all.Errs) == 0 {
		all.Errs = derived
	}
	if len(all.Errs) > 0 {
		return all
	}
	return nil
}

var (
	hexKey       = regexp.MustCompile(`^[0-9a-f]{64}$`)
	moduleName   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	sysctlKey    = regexp.MustCompile(`^[a-z0-9_-]+(\.[a-zA-Z0-9_*-]+)+$`)
	portName     = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	argName      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	tokenUsages  = map[string]bool{"signing": true, "authentication": true}
	tokenGroupRe = regexp.MustCompile(`^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$`)
)

func validateInit(c *Config, e *docErrors) {
	in := &c.Init
	for i, t := range in.BootstrapTokens {
		p := fmt.Sprintf("bootstrapTokens[%d]", i)
		validateTokenField(e, p+".token", t.Token, false)
		if t.TTL != nil && t.TTL.Duration < 0 {
			e.add(p+".ttl", "must not be negative, got %s", t.TTL.Duration)
		}
		if t.TTL != nil && t.Expires != nil && t.TTL.Duration > 0 {
			e.add(p, "set ttl or expires, not both")
		}
		for j, u := range t.Usages {
			if !tokenUsages[u] {
				e.add(fmt.Sprintf("%s.usages[%d]", p, j), "unknown usage %q (expected signing or authentication)", u)
			}
		}
		for j, g := range t.Groups {
			if !tokenGroupRe.MatchString(g) {
				e.add(fmt.Sprintf("%s.groups[%d]", p, j), "invalid group %q: must match %s", g, tokenGroupRe)
			}
		}
	}
	validateNodeRegistration(e, &in.NodeRegistration)
	validateAPIEndpoint(e, "localAPIEndpoint", in.LocalAPIEndpoint)
	if in.CertificateKey != "" && !hexKey.MatchString(in.CertificateKey) {
		e.add("certificateKey", "invalid certificate key: expected 64 lower-case hex characters (32 bytes)")
	}
	if in.Patches != nil && in.Patches.Directory != "" {
		e.add("patches.directory", "patches are not supported by kubeboot yet; use extraArgs, extraVolumes and the component configurations")
	}
	validateTimeouts(e, "timeouts", in.Timeouts)
}

// validateAPIEndpoint checks an address other nodes will dial and its port.
func validateAPIEndpoint(e *docErrors, p string, ep APIEndpoint) {
	if a := ep.AdvertiseAddress; a != "" {
		if ip := net.ParseIP(a); ip == nil {
			e.add(p+".advertiseAddress", "invalid IP address %q", a)
		} else if ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() {
			e.add(p+".advertiseAddress", "%q cannot be advertised to other nodes", a)
		}
	}
	validatePort(e, p+".bindPort", int64(ep.BindPort))
}

func validateTimeouts(e *docErrors, p string, t *Timeouts) {
	if t == nil {
		return
	}
	for name, d := range map[string]*metav1.Duration{
		"controlPlaneComponentHealthCheck": t.ControlPlaneComponentHealthCheck,
		"kubeletHealthCheck":               t.KubeletHealthCheck,
		"kubernetesAPICall":                t.KubernetesAPICall,
		"etcdAPICall":                      t.EtcdAPICall,
		"tlsBootstrap":                     t.TLSBootstrap,
		"discovery":                        t.Discovery,
		"upgradeManifests":                 t.UpgradeManifests,
	} {
		if d != nil && d.Duration <= 0 {
			e.add(p+"."+name, "must be a positive duration, got %s", d.Duration)
		}
	}
}

func validateCluster(c *Config, e *docErrors) {
	cc := &c.Cluster
	if v, err := version.ParseSemantic(cc.KubernetesVersion); err != nil || !strings.HasPrefix(cc.KubernetesVersion, "v") {
		e.add("kubernetesVersion", "invalid version %q: expected a release such as %s", cc.KubernetesVersion, KubernetesVersion)
	} else if v.Major() != 1 || v.Minor() < MinKubernetesMinor || v.Minor() > MaxKubernetesMinor {
		e.add("kubernetesVersion", "version %s is not supported: this kubeboot deploys v1.%d.x to v1.%d.x", cc.KubernetesVersion, MinKubernetesMinor, MaxKubernetesMinor)
	}
	svc, err := ParseCIDRs(cc.Networking.ServiceSubnet)
	if err != nil {
		e.add("networking.serviceSubnet", "%v", err)
	}
	for _, n := range svc {
		ones, bits := n.Mask.Size()
		// kubeadm caps the service range at 2^20 addresses: the apiserver's allocator bitmap.
		if bits-ones > 20 {
			e.add("networking.serviceSubnet", "subnet %s is too large: at most 2^20 addresses (/%d)", n, bits-20)
		}
		if bits-ones < 4 {
			e.add("networking.serviceSubnet", "subnet %s is too small: it needs room for the DNS service at the 10th address", n)
		}
	}
	var pods []*net.IPNet
	if cc.Networking.PodSubnet != "" {
		pods, err = ParseCIDRs(cc.Networking.PodSubnet)
		if err != nil {
			e.add("networking.podSubnet", "%v", err)
		}
	}
	for _, p := range pods {
		for _, s := range svc {
			if overlaps(p, s) {
				e.add("networking.podSubnet", "pod subnet %s overlaps the service subnet %s", p, s)
			}
		}
	}
	if cc.Networking.DNSDomain != "" {
		for _, msg := range validation.IsDNS1123Subdomain(cc.Networking.DNSDomain) {
			e.add("networking.dnsDomain", "invalid DNS domain %q: %s", cc.Networking.DNSDomain, msg)
		}
	}
	if cc.ControlPlaneEndpoint != "" {
		if err := validateHostPort(cc.ControlPlaneEndpoint); err != nil {
			e.add("controlPlaneEndpoint", "%v", err)
		}
	}
	for i, san := range cc.APIServer.CertSANs {
		if err := validateSAN(san); err != nil {
			e.add(fmt.Sprintf("apiServer.certSANs[%d]", i), "%v", err)
		}
	}
	validateComponent(e, "apiServer", cc.APIServer.ControlPlaneComponent)
	validateComponent(e, "controllerManager", cc.ControllerManager)
	validateComponent(e, "scheduler", cc.Scheduler)
	validateAbs(e, "certificatesDir", cc.CertificatesDir)
	if err := validateImageRepository(cc.ImageRepository); err != nil {
		e.add("imageRepository", "%v", err)
	}
	if err := validateImageRepository(cc.DNS.ImageRepository); cc.DNS.ImageRepository != "" && err != nil {
		e.add("dns.imageRepository", "%v", err)
	}
	for _, msg := range validation.IsDNS1123Subdomain(cc.ClusterName) {
		e.add("clusterName", "invalid cluster name %q: %s", cc.ClusterName, msg)
	}
	switch cc.EncryptionAlgorithm {
	case "RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384":
	default:
		e.add("encryptionAlgorithm", "unknown algorithm %q (expected RSA-2048, RSA-3072, RSA-4096, ECDSA-P256 or ECDSA-P384)", cc.EncryptionAlgorithm)
	}
	if d := cc.CertificateValidityPeriod; d != nil && d.Duration <= 0 {
		e.add("certificateValidityPeriod", "must be a positive duration, got %s", d.Duration)
	}
	if d := cc.CACertificateValidityPeriod; d != nil && d.Duration <= 0 {
		e.add("caCertificateValidityPeriod", "must be a positive duration, got %s", d.Duration)
	}
	if a, b := cc.CertificateValidityPeriod, cc.CACertificateValidityPeriod; a != nil && b != nil && a.Duration > b.Duration && b.Duration > 0 {
		e.add("certificateValidityPeriod", "%s is longer than the CA's %s; leaf certificates cannot outlive their CA", a.Duration, b.Duration)
	}
	validateEtcd(e, &cc.Etcd)
}

func validateEtcd(e *docErrors, et *Etcd) {
	if et.Local != nil && et.External != nil {
		e.add("etcd", "set either local or external, not both")
		return
	}
	if l := et.Local; l != nil {
		validateAbs(e, "etcd.local.dataDir", l.DataDir)
		validateArgs(e, "etcd.local.extraArgs", l.ExtraArgs)
		validateEnvs(e, "etcd.local.extraEnvs", l.ExtraEnvs)
		for i, s := range l.ServerCertSANs {
			if err := validateSAN(s); err != nil {
				e.add(fmt.Sprintf("etcd.local.serverCertSANs[%d]", i), "%v", err)
			}
		}
		for i, s := range l.PeerCertSANs {
			if err := validateSAN(s); err != nil {
				e.add(fmt.Sprintf("etcd.local.peerCertSANs[%d]", i), "%v", err)
			}
		}
		if l.ImageRepository != "" {
			if err := validateImageRepository(l.ImageRepository); err != nil {
				e.add("etcd.local.imageRepository", "%v", err)
			}
		}
	}
	if x := et.External; x != nil {
		if len(x.Endpoints) == 0 {
			e.add("etcd.external.endpoints", "at least one endpoint is required")
		}
		for i, ep := range x.Endpoints {
			u, err := url.Parse(ep)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				e.add(fmt.Sprintf("etcd.external.endpoints[%d]", i), "invalid endpoint %q: expected https://host:port", ep)
			}
		}
		if x.CAFile != "" || x.CertFile != "" || x.KeyFile != "" {
			validateAbs(e, "etcd.external.caFile", x.CAFile)
			validateAbs(e, "etcd.external.certFile", x.CertFile)
			validateAbs(e, "etcd.external.keyFile", x.KeyFile)
		}
	}
}

func validateKubelet(c *Config, e *docErrors) {
	k := &c.Kubelet
	if k.CgroupDriver != "systemd" && k.CgroupDriver != "cgroupfs" {
		e.add("cgroupDriver", "invalid driver %q (expected systemd or cgroupfs)", k.CgroupDriver)
	}
	for i, ip := range k.ClusterDNS {
		if net.ParseIP(ip) == nil {
			e.add(fmt.Sprintf("clusterDNS[%d]", i), "invalid IP address %q", ip)
		}
	}
	validateAbs(e, "staticPodPath", k.StaticPodPath)
	if k.HealthzPort != nil {
		validatePort(e, "healthzPort", int64(*k.HealthzPort))
	}
	if k.Port != 0 {
		validatePort(e, "port", int64(k.Port))
	}
	if k.HealthzBindAddress != "" && net.ParseIP(k.HealthzBindAddress) == nil {
		e.add("healthzBindAddress", "invalid IP address %q", k.HealthzBindAddress)
	}
	if err := validateCRISocket(k.ContainerRuntimeEndpoint); err != nil {
		e.add("containerRuntimeEndpoint", "%v", err)
	}
	if k.ClusterDomain != "" {
		for _, msg := range validation.IsDNS1123Subdomain(k.ClusterDomain) {
			e.add("clusterDomain", "invalid domain %q: %s", k.ClusterDomain, msg)
		}
	}
}

func validateKubeProxy(c *Config, e *docErrors) {
	p := &c.KubeProxy
	switch p.Mode {
	case "iptables", "nftables", "ipvs":
	default:
		e.add("mode", "unknown mode %q (expected nftables, iptables or ipvs)", p.Mode)
	}
	if p.ClusterCIDR != "" {
		if _, err := ParseCIDRs(p.ClusterCIDR); err != nil {
			e.add("clusterCIDR", "%v", err)
		}
	}
	if net.ParseIP(p.BindAddress) == nil {
		e.add("bindAddress", "invalid IP address %q", p.BindAddress)
	}
	for field, addr := range map[string]string{"metricsBindAddress": p.MetricsBindAddress, "healthzBindAddress": p.HealthzBindAddress} {
		if addr == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(addr); err != nil {
			e.add(field, "invalid address %q: expected host:port", addr)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			e.add(field, "invalid port in %q", addr)
		}
	}
}

func validateBoot(c *Config, e *docErrors) {
	b := &c.Boot
	validateAbs(e, "stateDir", b.StateDir)
	validateAbs(e, "imageArchiveDir", b.ImageArchiveDir)
	seen := map[string]bool{}
	for i, m := range b.KernelModules {
		p := fmt.Sprintf("kernelModules[%d].name", i)
		if !moduleName.MatchString(m.Name) {
			e.add(p, "invalid module name %q", m.Name)
		}
		if seen[m.Name] {
			e.add(p, "module %q listed twice", m.Name)
		}
		seen[m.Name] = true
	}
	for k, v := range b.Sysctls {
		p := "sysctls." + k
		if !sysctlKey.MatchString(k) || strings.Contains(k, "..") {
			e.add(p, "invalid sysctl name %q: expected dotted form such as net.ipv4.ip_forward", k)
		}
		if v == "" || strings.ContainsAny(v, "\n\x00") {
			e.add(p, "invalid value %q", v)
		}
	}
	for i, s := range b.JoinSecret.Sinks {
		p := fmt.Sprintf("joinSecret.sinks[%d]", i)
		n := 0
		if s.File != nil {
			n++
			validateAbs(e, p+".file.path", s.File.Path)
		}
		if s.VirtioSerial != nil {
			n++
			if !portName.MatchString(s.VirtioSerial.Name) {
				e.add(p+".virtioSerial.name", "invalid port name %q", s.VirtioSerial.Name)
			}
		}
		if s.HTTP != nil {
			n++
			validateHTTPURL(e, p+".http.url", s.HTTP.URL)
			if s.HTTP.Timeout != nil && s.HTTP.Timeout.Duration <= 0 {
				e.add(p+".http.timeout", "must be a positive duration, got %s", s.HTTP.Timeout.Duration)
			}
		}
		if n != 1 {
			e.add(p, "exactly one of file, virtioSerial or http must be set, got %d", n)
		}
	}
	for i, r := range b.JoinSecret.Recipients {
		if _, err := age.ParseX25519Recipient(r); err != nil {
			e.add(fmt.Sprintf("joinSecret.recipients[%d]", i), "not an age X25519 public key (age1...)")
		}
	}
	validateJoinSource(e, &b.Join)
	if r := b.Cluster.Rendezvous; r != nil {
		validateHTTPURL(e, "cluster.rendezvous.url", r.URL)
		if b.PodNetwork.Builtin {
			e.add("podNetwork.builtin", "the built-in pod network serves a single node, and a rendezvous forms a cluster: list a CNI add-on in manifests instead")
		}
		if r.ControlPlaneReplicas != nil && *r.ControlPlaneReplicas < 1 {
			e.add("cluster.rendezvous.controlPlaneReplicas", "must be at least 1, got %d", *r.ControlPlaneReplicas)
		}
		for f, d := range map[string]*metav1.Duration{"cluster.rendezvous.leaseDuration": r.LeaseDuration, "cluster.rendezvous.timeout": r.Timeout} {
			if d != nil && d.Duration <= 0 {
				e.add(f, "must be a positive duration, got %s", d.Duration)
			}
		}
	}
	for i, m := range b.Manifests {
		validateAbs(e, fmt.Sprintf("manifests[%d]", i), m)
	}
	if b.Audit.PolicyFile != "" {
		validateAbs(e, "audit.policyFile", b.Audit.PolicyFile)
	}
	validateAbs(e, "audit.logPath", b.Audit.LogPath)
	for f, v := range map[string]int32{"audit.maxAge": b.Audit.MaxAge, "audit.maxBackups": b.Audit.MaxBackups, "audit.maxSize": b.Audit.MaxSize} {
		if v < 0 {
			e.add(f, "must not be negative, got %d", v)
		}
	}
	if b.PodNetwork.Builtin {
		if c.Cluster.Networking.PodSubnet == "" {
			e.add("podNetwork.builtin", "the built-in pod network needs networking.podSubnet in the ClusterConfiguration")
		}
		if n := b.PodNetwork.Bridge; n != "" && (len(n) > 15 || strings.ContainsAny(n, "/ \t")) {
			e.add("podNetwork.bridge", "invalid interface name %q", n)
		}
	}
	switch b.EncryptionAtRest.Provider {
	case "secretbox", "aescbc":
	default:
		e.add("encryptionAtRest.provider", "unknown provider %q (expected secretbox or aescbc)", b.EncryptionAtRest.Provider)
	}
}

func validateComponent(e *docErrors, p string, c ControlPlaneComponent) {
	validateArgs(e, p+".extraArgs", c.ExtraArgs)
	validateEnvs(e, p+".extraEnvs", c.ExtraEnvs)
	names := map[string]bool{}
	for i, v := range c.ExtraVolumes {
		vp := fmt.Sprintf("%s.extraVolumes[%d]", p, i)
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			e.add(vp+".name", "invalid volume name %q: %s", v.Name, msg)
		}
		if names[v.Name] {
			e.add(vp+".name", "volume name %q used twice", v.Name)
		}
		names[v.Name] = true
		validateAbs(e, vp+".hostPath", v.HostPath)
		validateAbs(e, vp+".mountPath", v.MountPath)
		switch v.PathType {
		case corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory, corev1.HostPathFileOrCreate,
			corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev:
		default:
			e.add(vp+".pathType", "unknown path type %q", v.PathType)
		}
	}
}

func validateArgs(e *docErrors, p string, args []Arg) {
	for i, a := range args {
		if !argName.MatchString(a.Name) {
			e.add(fmt.Sprintf("%s[%d].name", p, i), "invalid flag name %q: give it without leading dashes, e.g. \"v\"", a.Name)
		}
	}
}

func validateEnvs(e *docErrors, p string, envs []EnvVar) {
	for i, v := range envs {
		for _, msg := range validation.IsEnvVarName(v.Name) {
			e.add(fmt.Sprintf("%s[%d].name", p, i), "invalid variable name %q: %s", v.Name, msg)
		}
	}
}

func validateTaints(e *docErrors, p string, taints []corev1.Taint) {
	for i, t := range taints {
		tp := fmt.Sprintf("%s[%d]", p, i)
		for _, msg := range validation.IsQualifiedName(t.Key) {
			e.add(tp+".key", "invalid taint key %q: %s", t.Key, msg)
		}
		if t.Value != "" {
			for _, msg := range validation.IsValidLabelValue(t.Value) {
				e.add(tp+".value", "invalid taint value %q: %s", t.Value, msg)
			}
		}
		switch t.Effect {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			e.add(tp+".effect", "invalid effect %q (expected NoSchedule, PreferNoSchedule or NoExecute)", t.Effect)
		}
	}
}

func validatePort(e *docErrors, p string, port int64) {
	if port < 1 || port > 65535 {
		e.add(p, "invalid port %d: must be between 1 and 65535", port)
	}
}

func validateAbs(e *docErrors, p, v string) {
	if v == "" {
		e.add(p, "required")
		return
	}
	if !path.IsAbs(v) {
		e.add(p, "must be an absolute path, got %q", v)
	} else if path.Clean(v) != strings.TrimSuffix(v, "/") && v != "/" {
		e.add(p, "path %q is not clean (want %q)", v, path.Clean(v))
	}
}

func validateCRISocket(s string) error {
	if strings.HasPrefix(s, "unix://") {
		if !path.IsAbs(strings.TrimPrefix(s, "unix://")) {
			return fmt.Errorf("invalid socket %q: expected unix:///absolute/path", s)
		}
		return nil
	}
	return fmt.Errorf("invalid socket %q: expected unix:///absolute/path", s)
}

func validateHostPort(s string) error {
	host := s
	if h, port, err := net.SplitHostPort(s); err == nil {
		n, perr := strconv.Atoi(port)
		if perr != nil || n < 1 || n > 65535 {
			return fmt.Errorf("invalid port in %q", s)
		}
		host = h
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if msgs := validation.IsDNS1123Subdomain(host); len(msgs) > 0 {
		return fmt.Errorf("invalid endpoint %q: expected host or host:port", s)
	}
	return nil
}

func validateSAN(s string) error {
	if net.ParseIP(s) != nil {
		return nil
	}
	if strings.Contains(s, "/") {
		return fmt.Errorf("SAN %q: not an IP address or DNS name", s)
	}
	if strings.HasPrefix(s, "*.") {
		if msgs := validation.IsWildcardDNS1123Subdomain(s); len(msgs) > 0 {
			return fmt.Errorf("SAN %q: %s", s, msgs[0])
		}
		return nil
	}
	if msgs := validation.IsDNS1123Subdomain(s); len(msgs) > 0 {
		return fmt.Errorf("SAN %q: not an IP address or DNS name", s)
	}
	return nil
}

var imageRepoRe = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$`)

func validateImageRepository(s string) error {
	if !imageRepoRe.MatchString(s) {
		return fmt.Errorf("invalid image repository %q", s)
	}
	return nil
}

func validateHTTPURL(e *docErrors, field, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		e.add(field, "invalid URL: expected http:// or https:// with a host")
	}
}

// validateJoinSource never quotes the identity or the secret: both are
// secrets.
func validateJoinSource(e *docErrors, j *JoinSource) {
	switch s := j.Source; {
	case s == "":
	case strings.HasPrefix(s, "http://"), strings.HasPrefix(s, "https://"):
		validateHTTPURL(e, "join.source", s)
	case strings.HasPrefix(s, "virtio-serial:"):
		if !portName.MatchString(strings.TrimPrefix(s, "virtio-serial:")) {
			e.add("join.source", "invalid virtio-serial port name")
		}
	case strings.HasPrefix(s, "file://"), strings.HasPrefix(s, "/"):
	default:
		e.add("join.source", "expected an absolute file path, file://, http(s):// or virtio-serial:NAME")
	}
	if j.Source != "" && j.Secret != "" {
		e.add("join.secret", "set either join.source or join.secret, not both")
	}
	if j.Identity != "" {
		if _, err := age.ParseX25519Identity(strings.TrimSpace(j.Identity)); err != nil {
			e.add("join.identity", "not an age X25519 identity (AGE-SECRET-KEY-1...)")
		}
	}
	if j.IdentityFile != "" {
		validateAbs(e, "join.identityFile", j.IdentityFile)
	}
	if j.Timeout != nil && j.Timeout.Duration <= 0 {
		e.add("join.timeout", "must be a positive duration, got %s", j.Timeout.Duration)
	}
}
