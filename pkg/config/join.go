package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/ptr"
)

// JoinConfig is the configuration of a joining node: kubeadm's v1beta4
// JoinConfiguration, optionally a KubeletConfiguration and kubeboot's
// BootConfiguration, in one multi-document YAML stream. The cluster-wide
// configuration (ClusterConfiguration, the kubelet's and kube-proxy's) is
// the cluster's, read by the join phases; it has no place here.
type JoinConfig struct {
	// Source names where the configuration came from, for messages.
	Source string
	Join   JoinConfiguration
	// Kubelet is the KubeletConfiguration document if one was given, as
	// given: not defaulted, since a joining node takes the kubelet's
	// configuration from the cluster's kube-system/kubelet-config; the
	// fields set here are this node's own on top of it (what kubeadm does
	// with a kubeletconfiguration patch). nil when not given.
	Kubelet *kubeletv1beta1.KubeletConfiguration
	Boot    BootConfiguration

	docs map[string]docInfo
}

func (c *JoinConfig) errorsFor(kind string) *docErrors {
	d := c.docs[kind]
	return &docErrors{source: c.Source, doc: d.index, kind: kind, lines: d.lines}
}

// joinStream is what a join configuration stream may hold.
var joinStream = stream{
	command: "join",
	kinds:   map[string]string{KindJoin: KubeadmGroupVersion, KindKubelet: KubeletGroupVersion, KindBoot: BootGroupVersion},
	unused: map[string]string{
		KindInit:      "",
		KindCluster:   ": a joining node takes it from the cluster (kube-system/kubeadm-config)",
		KindKubeProxy: ": a joining node takes it from the cluster (kube-system/kube-proxy)",
		KindReset:     "",
		KindUpgrade:   "",
	},
	list: "JoinConfiguration, KubeletConfiguration, BootConfiguration",
}

// LoadJoin decodes a join configuration stream strictly, applies defaults
// and validates everything that does not depend on the host, with the
// same decoder and messages as Load: every error is a *Error naming
// source, document, kind and field.
//
// A caller that takes discovery from flags or a join secret uses
// DecodeJoin, fills the JoinConfiguration, then SetJoinDefaults and
// ValidateJoin.
func LoadJoin(source string, data []byte) (*JoinConfig, error) {
	c, err := DecodeJoin(source, data)
	if err != nil {
		return nil, err
	}
	SetJoinDefaults(c)
	if err := ValidateJoin(c); err != nil {
		return nil, err
	}
	return c, nil
}

// DecodeJoin only decodes: no defaults, no validation beyond types and names.
// Every document is optional; the stream must hold at least one.
func DecodeJoin(source string, data []byte) (*JoinConfig, error) {
	if source == "" {
		source = "config"
	}
	c := &JoinConfig{Source: source}
	docs, err := joinStream.decode(source, data, map[string]any{
		KindJoin:    &c.Join,
		KindKubelet: &c.Kubelet,
		KindBoot:    &c.Boot,
	})
	if err != nil {
		return nil, err
	}
	c.docs = docs
	return c, nil
}

// NewJoinConfig returns an empty join configuration for a caller that
// builds it from flags alone.
func NewJoinConfig(source string) *JoinConfig {
	return &JoinConfig{Source: source, docs: map[string]docInfo{}}
}

// SetJoinDefaults fills what the user left empty with kubeadm 1.37's
// defaults for join (the control-plane taint only for a control-plane
// join). It never overrides a value the user set and is idempotent.
func SetJoinDefaults(c *JoinConfig) {
	j := &c.Join
	j.APIVersion, j.Kind = KubeadmGroupVersion, KindJoin
	if j.CACertPath == "" {
		j.CACertPath = DefaultCertificatesDir + "/ca.crt"
	}
	if cp := j.ControlPlane; cp != nil && cp.LocalAPIEndpoint.BindPort == 0 {
		cp.LocalAPIEndpoint.BindPort = DefaultBindPort
	}
	d := &j.Discovery
	if d.TLSBootstrapToken == "" && d.BootstrapToken != nil {
		d.TLSBootstrapToken = d.BootstrapToken.Token
	}
	if f := d.File; f != nil {
		if u, err := url.Parse(f.KubeConfigPath); err == nil && u.Scheme == "file" {
			f.KubeConfigPath = u.Path
		}
	}
	nr := &j.NodeRegistration
	if nr.CRISocket == "" {
		nr.CRISocket = DefaultCRISocket
	}
	// nil means "not said": a control-plane node gets kubeadm's taint, a
	// worker none. An explicit empty list means no taints and is kept.
	if nr.Taints == nil && j.ControlPlane != nil {
		nr.Taints = []corev1.Taint{ControlPlaneTaint}
	}
	if nr.ImagePullPolicy == "" {
		nr.ImagePullPolicy = corev1.PullIfNotPresent
	}
	if nr.ImagePullSerial == nil {
		nr.ImagePullSerial = ptr.To(true)
	}
	if j.Timeouts == nil {
		j.Timeouts = &Timeouts{}
	}
	defaultTimeouts(j.Timeouts)
	defaultBoot(&c.Boot)
}

// ResolveJoin fills the values that come from the machine: the node name
// (the lower-cased hostname) and, for a control-plane join, the advertise
// address (the source address of the default route). Values the user set
// are kept.
func ResolveJoin(c *JoinConfig, h HostFacts) error {
	e := c.errorsFor(KindJoin)
	resolveNodeName(e, &c.Join.NodeRegistration, h)
	if cp := c.Join.ControlPlane; cp != nil && cp.LocalAPIEndpoint.AdvertiseAddress == "" {
		ips, err := h.DefaultRouteSources()
		switch {
		case err != nil:
			e.add("controlPlane.localAPIEndpoint.advertiseAddress", "not set and the default route cannot be read: %v", err)
		case len(ips) == 0:
			e.add("controlPlane.localAPIEndpoint.advertiseAddress", "not set and this machine has no default route to take it from; set it in the JoinConfiguration")
		default:
			cp.LocalAPIEndpoint.AdvertiseAddress = ips[0].String()
		}
	}
	if len(e.errs) > 0 {
		return &Error{Errs: e.errs}
	}
	return nil
}

var caHashRe = regexp.MustCompile(`^(?i:sha256):[0-9a-fA-F]{64}$`)

// ValidateJoin checks a defaulted join configuration and returns every
// problem found.
func ValidateJoin(c *JoinConfig) error {
	all := &Error{}
	e := c.errorsFor(KindJoin)
	validateJoin(e, &c.Join, c.Boot.Join.Source != "" || c.Boot.Join.Secret != "")
	all.Errs = append(all.Errs, e.errs...)

	if c.Kubelet != nil {
		// Check what the user set; the rest comes from the cluster, so
		// the copy is filled with defaults only to satisfy the checks.
		tmp := &Config{Source: c.Source, Kubelet: *c.Kubelet.DeepCopy(), docs: c.docs}
		tmp.Init.NodeRegistration.CRISocket = c.Join.NodeRegistration.CRISocket
		defaultKubelet(tmp)
		e := c.errorsFor(KindKubelet)
		validateKubelet(tmp, e)
		all.Errs = append(all.Errs, e.errs...)
	}

	e = c.errorsFor(KindBoot)
	tmp := &Config{Source: c.Source, Boot: c.Boot, docs: c.docs}
	if c.Boot.PodNetwork.Builtin {
		e.add("podNetwork.builtin", "the built-in pod network serves a single node; a cluster with more nodes needs a CNI add-on")
		tmp.Boot.PodNetwork.Builtin = false
	}
	validateBoot(tmp, e)
	all.Errs = append(all.Errs, e.errs...)

	if len(all.Errs) > 0 {
		return all
	}
	return nil
}

func validateJoin(e *docErrors, j *JoinConfiguration, fromSecret bool) {
	d := &j.Discovery
	switch {
	case d.BootstrapToken == nil && d.File == nil && !fromSecret:
		e.add("discovery", "required: set bootstrapToken (apiServerEndpoint, token, caCertHashes) or file (kubeConfigPath), or give a join secret (--join-secret, or join.source or join.secret in the BootConfiguration)")
	case d.BootstrapToken != nil && d.File != nil:
		e.add("discovery", "set bootstrapToken or file, not both")
	}
	if b := d.BootstrapToken; b != nil {
		p := "discovery.bootstrapToken"
		validateTokenField(e, p+".token", b.Token, true)
		if b.APIServerEndpoint == "" {
			e.add(p+".apiServerEndpoint", "required: the API server's host:port")
		} else if _, port, err := net.SplitHostPort(b.APIServerEndpoint); err != nil || port == "" {
			e.add(p+".apiServerEndpoint", "invalid endpoint %q: expected host:port, e.g. 192.0.2.10:6443", b.APIServerEndpoint)
		} else if err := validateHostPort(b.APIServerEndpoint); err != nil {
			e.add(p+".apiServerEndpoint", "%v", err)
		}
		if len(b.CACertHashes) == 0 && !b.UnsafeSkipCAVerification {
			e.add(p+".caCertHashes", "required: give the hash of the cluster CA's public key (sha256:<hex>, as `kubeadm token create --print-join-command` or the join secret shows it), "+
				"or set unsafeSkipCAVerification: true to trust any API server that knows the token")
		}
		for i, h := range b.CACertHashes {
			if !caHashRe.MatchString(h) {
				e.add(fmt.Sprintf("%s.caCertHashes[%d]", p, i), "invalid hash %q: expected sha256:<64 hex characters>", h)
			}
		}
	}
	if f := d.File; f != nil {
		p := "discovery.file.kubeConfigPath"
		u, err := url.Parse(f.KubeConfigPath)
		switch {
		case f.KubeConfigPath == "":
			e.add(p, "required")
		case err == nil && u.Scheme == "https":
			e.add(p, "an https URL is not supported by kubeboot yet: download the kubeconfig and give its path")
		case err == nil && u.Scheme != "":
			e.add(p, "invalid path %q: expected an absolute path", f.KubeConfigPath)
		default:
			validateAbs(e, p, f.KubeConfigPath)
		}
	}
	if d.TLSBootstrapToken != "" {
		validateTokenField(e, "discovery.tlsBootstrapToken", d.TLSBootstrapToken, false)
	}

	validateNodeRegistration(e, &j.NodeRegistration)
	validateAbs(e, "caCertPath", j.CACertPath)
	if j.CACertPath != "" && !strings.HasSuffix(j.CACertPath, ".crt") {
		e.add("caCertPath", "must name a .crt file, got %q", j.CACertPath)
	}
	if cp := j.ControlPlane; cp != nil {
		validateAPIEndpoint(e, "controlPlane.localAPIEndpoint", cp.LocalAPIEndpoint)
		if cp.CertificateKey != "" && !hexKey.MatchString(cp.CertificateKey) {
			e.add("controlPlane.certificateKey", "invalid certificate key: expected 64 lower-case hex characters (32 bytes)")
		}
	}
	if j.Patches != nil && j.Patches.Directory != "" {
		e.add("patches.directory", "patches are not supported by kubeboot yet; use kubeletExtraArgs and a KubeletConfiguration document")
	}
	validateTimeouts(e, "timeouts", j.Timeouts)
}

// validateTokenField never echoes the token: it is a secret even when malformed.
func validateTokenField(e *docErrors, p, token string, required bool) {
	switch {
	case token == "" && required:
		e.add(p, "required: the bootstrap token, \"[a-z0-9]{6}.[a-z0-9]{16}\"")
	case token != "" && !bootstraputil.IsValidBootstrapToken(token):
		e.add(p, `invalid bootstrap token: expected the form "[a-z0-9]{6}.[a-z0-9]{16}"`)
	}
}

// validateNodeRegistration holds the checks InitConfiguration's
// nodeRegistration gets in validateInit.
func validateNodeRegistration(e *docErrors, nr *NodeRegistrationOptions) {
	if nr.Name != "" {
		for _, msg := range validation.IsDNS1123Subdomain(nr.Name) {
			e.add("nodeRegistration.name", "invalid node name %q: %s", nr.Name, msg)
		}
	}
	if err := validateCRISocket(nr.CRISocket); err != nil {
		e.add("nodeRegistration.criSocket", "%v", err)
	}
	validateTaints(e, "nodeRegistration.taints", nr.Taints)
	validateArgs(e, "nodeRegistration.kubeletExtraArgs", nr.KubeletExtraArgs)
	switch nr.ImagePullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		e.add("nodeRegistration.imagePullPolicy", "invalid policy %q (expected Always, IfNotPresent or Never)", nr.ImagePullPolicy)
	}
}

// SecretDiscovery is what a join secret contributes: token discovery of
// its endpoint pinned to its CA hashes and, for a control-plane join, the
// certificate key. Values already set in the configuration win.
type SecretDiscovery struct {
	Endpoint       string
	Token          string
	CACertHashes   []string
	CertificateKey string
}

// UseSecret fills the discovery the configuration left empty from a join
// secret.
func (c *JoinConfig) UseSecret(s SecretDiscovery) {
	d := &c.Join.Discovery
	if d.BootstrapToken == nil && d.File == nil {
		d.BootstrapToken = &BootstrapTokenDiscovery{Token: s.Token, APIServerEndpoint: s.Endpoint, CACertHashes: s.CACertHashes}
	}
	if d.TLSBootstrapToken == "" {
		d.TLSBootstrapToken = s.Token
	}
	if cp := c.Join.ControlPlane; cp != nil && cp.CertificateKey == "" {
		cp.CertificateKey = s.CertificateKey
	}
}
