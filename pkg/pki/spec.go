package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Defaults, as in kubeadm's v1beta4 API.
const (
	DefaultCertificatesDir = "/etc/kubernetes/pki"
	DefaultValidity        = 365 * 24 * time.Hour
	DefaultCAValidity      = 10 * 365 * 24 * time.Hour
)

// Spec is what Render needs to know; the caller maps its configuration into
// it. Zero values take kubeadm's defaults where kubeadm has one.
type Spec struct {
	// CertificatesDir is an absolute host path; default /etc/kubernetes/pki.
	CertificatesDir string
	// NodeName is the CN of the etcd server and peer certificates and a SAN
	// of them and of the apiserver certificate. Required.
	NodeName string
	// AdvertiseAddress is the apiserver's advertise address. Required.
	AdvertiseAddress net.IP
	// ControlPlaneEndpoint is "host" or "host:port"; its host becomes an
	// apiserver SAN. May be empty.
	ControlPlaneEndpoint string
	// ServiceSubnets: the first IP of the first subnet (10.96.0.1 for
	// 10.96.0.0/12) is an apiserver SAN; as in kubeadm, a dual-stack
	// cluster's second subnet adds nothing. Required.
	ServiceSubnets []*net.IPNet
	// DNSDomain adds kubernetes.default.svc.<DNSDomain>; may be empty.
	DNSDomain string
	// Extra SANs, each an IP address, a DNS name or a wildcard DNS name.
	APIServerCertSANs  []string
	EtcdServerCertSANs []string
	EtcdPeerCertSANs   []string
	// ExternalEtcd drops etcd/* and apiserver-etcd-client.
	ExternalEtcd bool
	// Algorithm of new keys; the zero value is ECDSA-P256.
	Algorithm Algorithm
	// Validity of leaf certificates (default 8760h) and of CAs (87600h).
	Validity, CAValidity time.Duration
	// Now returns the current time; default time.Now.
	Now func() time.Time
}

// certDef describes one certificate of kubeadm's list (certlist.go).
type certDef struct {
	name   string // kubeadm's name, as in `kubeadm init phase certs <name>`
	base   string // file base name under CertificatesDir
	ca     *certDef
	id     Identity
	caCN   string // for CAs: the CN
	sanFor string // "apiserver", "etcd-server", "etcd-peer" or ""
	etcd   bool
}

var (
	rootCA       = &certDef{name: "ca", base: "ca", caCN: "kubernetes"}
	frontProxyCA = &certDef{name: "front-proxy-ca", base: "front-proxy-ca", caCN: "front-proxy-ca"}
	etcdCA       = &certDef{name: "etcd-ca", base: "etcd/ca", caCN: "etcd-ca", etcd: true}

	serverAuth       = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	clientAuth       = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	serverClientAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}

	// leaves in kubeadm's order. The etcd server and peer CNs are the node
	// name, filled in by identity. In kubeadm 1.37 apiserver-kubelet-client
	// carries no organization: RBAC binds the user
	// kube-apiserver-kubelet-client to system:kubelet-api-admin
	// (ClusterRoleBinding kubeadm:apiserver-kubelet-client).
	leaves = []*certDef{
		{name: "apiserver", base: "apiserver", ca: rootCA, sanFor: "apiserver",
			id: Identity{CommonName: "kube-apiserver", Usages: serverAuth}},
		{name: "apiserver-kubelet-client", base: "apiserver-kubelet-client", ca: rootCA,
			id: Identity{CommonName: "kube-apiserver-kubelet-client", Usages: clientAuth}},
		{name: "front-proxy-client", base: "front-proxy-client", ca: frontProxyCA,
			id: Identity{CommonName: "front-proxy-client", Usages: clientAuth}},
		{name: "etcd-server", base: "etcd/server", ca: etcdCA, sanFor: "etcd-server", etcd: true,
			id: Identity{Usages: serverClientAuth}},
		{name: "etcd-peer", base: "etcd/peer", ca: etcdCA, sanFor: "etcd-peer", etcd: true,
			id: Identity{Usages: serverClientAuth}},
		{name: "etcd-healthcheck-client", base: "etcd/healthcheck-client", ca: etcdCA, etcd: true,
			id: Identity{CommonName: "kube-etcd-healthcheck-client", Usages: clientAuth}},
		{name: "apiserver-etcd-client", base: "apiserver-etcd-client", ca: etcdCA, etcd: true,
			id: Identity{CommonName: "kube-apiserver-etcd-client", Usages: clientAuth}},
	}
)

// resolved is a validated Spec with defaults applied and SANs computed.
type resolved struct {
	Spec
	now  time.Time
	sans map[string]Identity // SANs per sanFor key
}

func (s Spec) resolve() (*resolved, error) {
	if s.CertificatesDir == "" {
		s.CertificatesDir = DefaultCertificatesDir
	}
	if !path.IsAbs(s.CertificatesDir) {
		return nil, fmt.Errorf("certs: certificates dir %q: not an absolute path", s.CertificatesDir)
	}
	s.CertificatesDir = path.Clean(s.CertificatesDir)
	if s.Validity == 0 {
		s.Validity = DefaultValidity
	}
	if s.CAValidity == 0 {
		s.CAValidity = DefaultCAValidity
	}
	if s.Validity < 0 || s.CAValidity < 0 {
		return nil, errors.New("certs: negative validity period")
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if int(s.Algorithm) >= len(algorithmNames) {
		return nil, fmt.Errorf("certs: unknown algorithm %v", s.Algorithm)
	}
	if s.NodeName == "" {
		return nil, errors.New("certs: node name is empty")
	}
	if s.AdvertiseAddress == nil || s.AdvertiseAddress.IsUnspecified() {
		return nil, fmt.Errorf("certs: advertise address %q: not a usable IP address", s.AdvertiseAddress)
	}
	if len(s.ServiceSubnets) == 0 || s.ServiceSubnets[0] == nil {
		return nil, errors.New("certs: no service subnet")
	}
	r := &resolved{Spec: s, now: s.Now().UTC(), sans: map[string]Identity{}}

	// apiserver, as kubeadm's GetAPIServerAltNames.
	svcIP, err := firstIP(s.ServiceSubnets[0])
	if err != nil {
		return nil, fmt.Errorf("certs: apiserver: service subnet %s: %w", s.ServiceSubnets[0], err)
	}
	api := Identity{
		DNSNames: []string{s.NodeName, "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPs:      []net.IP{svcIP, s.AdvertiseAddress},
	}
	if s.DNSDomain != "" {
		api.DNSNames = append(api.DNSNames, "kubernetes.default.svc."+s.DNSDomain)
	}
	if s.ControlPlaneEndpoint != "" {
		host, err := endpointHost(s.ControlPlaneEndpoint)
		if err != nil {
			return nil, fmt.Errorf("certs: apiserver: control-plane endpoint %q: %w", s.ControlPlaneEndpoint, err)
		}
		if err := addSAN(&api, host); err != nil {
			return nil, fmt.Errorf("certs: apiserver: control-plane endpoint %q: %w", s.ControlPlaneEndpoint, err)
		}
	}
	if err := addSANs(&api, "apiserver", s.APIServerCertSANs); err != nil {
		return nil, err
	}
	r.sans["apiserver"] = api

	// etcd server and peer, as kubeadm's getAltNames.
	for _, e := range []struct {
		key   string
		extra []string
	}{{"etcd-server", s.EtcdServerCertSANs}, {"etcd-peer", s.EtcdPeerCertSANs}} {
		key, extra := e.key, e.extra
		id := Identity{
			DNSNames: []string{s.NodeName, "localhost"},
			IPs:      []net.IP{s.AdvertiseAddress, net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		}
		if err := addSANs(&id, key, extra); err != nil {
			return nil, err
		}
		r.sans[key] = id
	}
	for key, id := range r.sans {
		r.sans[key] = dedupe(id)
	}
	return r, nil
}

// identity is the full identity a leaf must carry under this spec.
func (r *resolved) identity(d *certDef) Identity {
	id := d.id
	if id.CommonName == "" {
		id.CommonName = r.NodeName
	}
	if d.sanFor != "" {
		sans := r.sans[d.sanFor]
		id.DNSNames, id.IPs = sans.DNSNames, sans.IPs
	}
	return id
}

func (r *resolved) certPath(d *certDef) string { return path.Join(r.CertificatesDir, d.base+".crt") }
func (r *resolved) keyPath(d *certDef) string  { return path.Join(r.CertificatesDir, d.base+".key") }

// firstIP returns the network address plus one: the kubernetes Service IP.
func firstIP(n *net.IPNet) (net.IP, error) {
	ip := n.IP.Mask(n.Mask)
	if ip == nil {
		return nil, errors.New("malformed subnet")
	}
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	ip = slices.Clone(ip)
	for i := len(ip) - 1; i >= 0; i-- {
		ip[i]++
		if ip[i] != 0 {
			break
		}
	}
	if !n.Contains(ip) {
		return nil, errors.New("too small to hold a Service IP")
	}
	return ip, nil
}

// endpointHost splits "host", "host:port", "[v6]:port" or a bare IPv6
// address and checks the port, as kubeadm's ParseHostPort.
func endpointHost(endpoint string) (string, error) {
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		host, port = endpoint, ""
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("port %q: not a number in 1-65535", port)
		}
	}
	return host, nil
}

func addSANs(id *Identity, cert string, sans []string) error {
	for _, san := range sans {
		if err := addSAN(id, san); err != nil {
			return fmt.Errorf("certs: %s: SAN %q: %w", cert, san, err)
		}
	}
	return nil
}

// addSAN adds an IP address or an RFC 1123 (possibly wildcard) DNS name,
// the values kubeadm's ValidateCertSANs accepts.
func addSAN(id *Identity, san string) error {
	if ip := net.ParseIP(san); ip != nil {
		id.IPs = append(id.IPs, ip)
		return nil
	}
	errs := validation.IsDNS1123Subdomain(san)
	if len(errs) == 0 || len(validation.IsWildcardDNS1123Subdomain(san)) == 0 {
		id.DNSNames = append(id.DNSNames, san)
		return nil
	}
	return fmt.Errorf("not an IP address or DNS name: %s", strings.Join(errs, "; "))
}

// dedupe sorts and de-duplicates DNS names and de-duplicates IPs keeping
// their order, as kubeadm's RemoveDuplicateAltNames.
func dedupe(id Identity) Identity {
	dns := slices.Clone(id.DNSNames)
	slices.Sort(dns)
	id.DNSNames = slices.Compact(dns)
	var ips []net.IP
	for _, ip := range id.IPs {
		if !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	}
	id.IPs = ips
	return id
}
