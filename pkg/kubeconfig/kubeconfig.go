// Package kubeconfig renders the kubeconfig files `kubeadm init phase
// kubeconfig all` writes to /etc/kubernetes: admin.conf, super-admin.conf,
// kubelet.conf, controller-manager.conf and scheduler.conf, each with an
// embedded client certificate signed by the cluster CA.
//
// Like pki.Render, Render is pure and keeps what is still right: an existing
// file that trusts the current CA, points at the expected server and holds a
// valid client certificate for the right identity, signed by that CA, is
// returned byte-for-byte, so a second run changes nothing.
package kubeconfig

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubeboot/kubeboot/pkg/pki"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// DefaultDir is where kubeadm writes kubeconfig files.
const DefaultDir = "/etc/kubernetes"

// Spec is what Render needs; the caller maps its configuration into it.
type Spec struct {
	// Dir is an absolute host path; default /etc/kubernetes.
	Dir string
	// ClusterName names the cluster entry; default "kubernetes".
	ClusterName string
	// ControlPlaneURL is https://<controlPlaneEndpoint, or the advertise
	// address when there is none>:<port>, for admin.conf, super-admin.conf
	// and kubelet.conf. LocalURL is https://<advertise address>:<bindPort>,
	// for controller-manager.conf and scheduler.conf, which talk to the
	// apiserver on their own node. ServerURLs computes both as kubeadm does.
	ControlPlaneURL, LocalURL string
	// CACert and CAKey are the PEM cluster CA (ca.crt, ca.key). Without
	// CAKey the CA is external: every file must already exist and verify.
	CACert, CAKey []byte
	// CAPath names the CA in messages; default <Dir>/pki/ca.crt.
	CAPath string
	// NodeName makes the kubelet's identity system:node:<NodeName>.
	NodeName string
	// Algorithm of new client keys; the zero value is ECDSA-P256.
	Algorithm pki.Algorithm
	// Validity of client certificates; default 8760h, cut short to the CA's
	// expiry.
	Validity time.Duration
	// Now returns the current time; default time.Now.
	Now func() time.Time
	// Only restricts Render to these names (see Names); default all.
	Only []string
}

// Names are the kubeconfig files kubeadm init writes, in its order, by the
// names `kubeadm init phase kubeconfig <name>` uses.
var Names = []string{"admin", "super-admin", "kubelet", "controller-manager", "scheduler"}

// kind describes one kubeconfig file (kubeadm's getKubeConfigSpecsBase).
type kind struct {
	name  string
	user  string // "" for the kubelet: system:node:<NodeName>
	org   []string
	local bool // uses LocalURL rather than ControlPlaneURL
}

var kinds = []kind{
	{name: "admin", user: "kubernetes-admin", org: []string{"kubeadm:cluster-admins"}},
	{name: "super-admin", user: "kubernetes-super-admin", org: []string{"system:masters"}},
	// kubeadm 1.37 points kubelet.conf at the control-plane endpoint, not
	// at the local apiserver: only the controller-manager and the scheduler
	// use the local endpoint.
	{name: "kubelet", org: []string{"system:nodes"}},
	{name: "controller-manager", user: "system:kube-controller-manager", local: true},
	{name: "scheduler", user: "system:kube-scheduler", local: true},
}

// ServerURLs returns the two apiserver URLs as kubeadm computes them: the
// control-plane URL from controlPlaneEndpoint ("host" or "host:port"; the
// port defaults to bindPort), or the local URL when it is empty; the local
// URL from the advertise address and bindPort.
func ServerURLs(controlPlaneEndpoint string, advertise net.IP, bindPort int) (controlPlane, local string, err error) {
	if bindPort < 1 || bindPort > 65535 {
		return "", "", fmt.Errorf("kubeconfig: bind port %d: not in 1-65535", bindPort)
	}
	if advertise == nil || advertise.IsUnspecified() {
		return "", "", fmt.Errorf("kubeconfig: advertise address %q: not a usable IP address", advertise)
	}
	port := strconv.Itoa(bindPort)
	local = (&url.URL{Scheme: "https", Host: net.JoinHostPort(advertise.String(), port)}).String()
	if controlPlaneEndpoint == "" {
		return local, local, nil
	}
	host, p, err := net.SplitHostPort(controlPlaneEndpoint)
	if err != nil {
		host, p = controlPlaneEndpoint, ""
	}
	if p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", "", fmt.Errorf("kubeconfig: control-plane endpoint %q: port %q not in 1-65535", controlPlaneEndpoint, p)
		}
		port = p
	}
	if host == "" {
		return "", "", fmt.Errorf("kubeconfig: control-plane endpoint %q: no host", controlPlaneEndpoint)
	}
	controlPlane = (&url.URL{Scheme: "https", Host: net.JoinHostPort(host, port)}).String()
	return controlPlane, local, nil
}

// Result is what Render returns.
type Result struct {
	// Files are the kubeconfig files, mode 0600 and Secret, in kubeadm's order.
	Files []rootfs.File
	// Outcomes has one entry per file, by name ("admin", ...).
	Outcomes []pki.Outcome
	Counts   pki.Counts
	Warnings []string
}

// Summary is a progress line: "5 kubeconfig files (5 created)".
func (r Result) Summary() string {
	n := r.Counts.Total()
	if n == 1 {
		return fmt.Sprintf("1 kubeconfig file (%s)", r.Counts)
	}
	return fmt.Sprintf("%d kubeconfig files (%s)", n, r.Counts)
}

// Render returns the kubeconfig files for spec, reusing what exists in
// existing (an fs.FS rooted at the host root; nil when nothing exists).
func Render(spec Spec, existing fs.FS) (Result, error) {
	s, err := spec.resolve()
	if err != nil {
		return Result{}, err
	}
	ca, err := pki.LoadCA(s.CACert, s.CAKey)
	if err != nil {
		return Result{}, fmt.Errorf("kubeconfig: %s: %w", s.CAPath, err)
	}
	ca.Name = s.CAPath
	r := &renderer{spec: s, ca: ca, fsys: existing, now: s.Now().UTC()}
	if r.now.After(ca.Cert.NotAfter) {
		return Result{}, fmt.Errorf("kubeconfig: %s expired at %s", s.CAPath, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	var errs []error
	for _, k := range kinds {
		if len(s.Only) > 0 && !slices.Contains(s.Only, k.name) {
			continue
		}
		if err := r.file(k); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return Result{}, errors.Join(errs...)
	}
	return r.res, nil
}

func (s Spec) resolve() (Spec, error) {
	if s.Dir == "" {
		s.Dir = DefaultDir
	}
	if !path.IsAbs(s.Dir) {
		return s, fmt.Errorf("kubeconfig: dir %q: not an absolute path", s.Dir)
	}
	s.Dir = path.Clean(s.Dir)
	if s.ClusterName == "" {
		s.ClusterName = "kubernetes"
	}
	if s.CAPath == "" {
		s.CAPath = path.Join(s.Dir, "pki", "ca.crt")
	}
	if s.Validity == 0 {
		s.Validity = pki.DefaultValidity
	}
	if s.Validity < 0 {
		return s, errors.New("kubeconfig: negative validity period")
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	for _, u := range []struct{ name, url string }{{"control-plane", s.ControlPlaneURL}, {"local", s.LocalURL}} {
		parsed, err := url.Parse(u.url)
		if err != nil || parsed.Scheme != "https" || parsed.Host == "" {
			return s, fmt.Errorf("kubeconfig: %s URL %q: want https://host:port", u.name, u.url)
		}
	}
	for _, n := range s.Only {
		if !slices.Contains(Names, n) {
			return s, fmt.Errorf("kubeconfig: unknown kubeconfig %q: want one of %q", n, Names)
		}
	}
	needKubelet := len(s.Only) == 0 || slices.Contains(s.Only, "kubelet")
	if needKubelet && s.NodeName == "" {
		return s, errors.New("kubeconfig: kubelet: node name is empty")
	}
	return s, nil
}

type renderer struct {
	spec Spec
	ca   *pki.CA
	fsys fs.FS
	now  time.Time
	res  Result
}

// want is what one file should contain under the spec.
type want struct {
	kind
	path, server, context string
	id                    pki.Identity
}

func (r *renderer) want(k kind) want {
	user := k.user
	if user == "" {
		user = "system:node:" + r.spec.NodeName
	}
	server := r.spec.ControlPlaneURL
	if k.local {
		server = r.spec.LocalURL
	}
	w := want{kind: k, path: path.Join(r.spec.Dir, k.name+".conf"), server: server, context: user + "@" + r.spec.ClusterName}
	w.user = user // the kubelet's user depends on the node
	w.id = pki.Identity{CommonName: user, Organization: k.org, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	return w
}

func (r *renderer) read(p string) ([]byte, bool, error) {
	if r.fsys == nil {
		return nil, false, nil
	}
	data, err := rootfs.ReadFile(r.fsys, p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	return data, err == nil, err
}

func (r *renderer) outcome(name string, a pki.Action, reason string) {
	r.res.Outcomes = append(r.res.Outcomes, pki.Outcome{Name: name, Action: a, Reason: reason})
	switch a {
	case pki.Created:
		r.res.Counts.Created++
	case pki.Reused:
		r.res.Counts.Reused++
	case pki.Reissued:
		r.res.Counts.Reissued++
	case pki.Verified:
		r.res.Counts.Verified++
	}
}

func (r *renderer) emit(p string, data []byte) {
	r.res.Files = append(r.res.Files, rootfs.File{Path: p, Mode: 0o600, Data: data, Secret: true})
}

func (r *renderer) file(k kind) error {
	w := r.want(k)
	data, ok, err := r.read(w.path)
	if err != nil {
		return fmt.Errorf("kubeconfig: %s: read %s: %w", k.name, w.path, err)
	}
	external := r.ca.Key == nil
	if !ok {
		if external {
			return fmt.Errorf("kubeconfig: %s: external CA (%s without its key): %s must be provided", k.name, r.spec.CAPath, w.path)
		}
		out, err := r.render(w)
		if err != nil {
			return err
		}
		r.emit(w.path, out)
		r.outcome(k.name, pki.Created, "")
		return nil
	}

	reason, serverOnly, err := r.check(w, data)
	if err != nil {
		return err
	}
	if reason == "" {
		r.emit(w.path, data)
		if external {
			r.outcome(k.name, pki.Verified, "")
		} else {
			r.outcome(k.name, pki.Reused, "")
		}
		return nil
	}
	if external {
		if serverOnly {
			// Nothing can be re-signed without the CA key; say so and go on,
			// as kubeadm does for any server mismatch.
			r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("kubeconfig: %s: %s %s; external CA, kept as provided", k.name, w.path, reason))
			r.emit(w.path, data)
			r.outcome(k.name, pki.Verified, reason)
			return nil
		}
		return fmt.Errorf("kubeconfig: %s: external CA (%s without its key): %s %s", k.name, r.spec.CAPath, w.path, reason)
	}
	out, err := r.render(w)
	if err != nil {
		return err
	}
	r.emit(w.path, out)
	r.outcome(k.name, pki.Reissued, w.path+" "+reason)
	return nil
}

// check tells why an existing kubeconfig cannot be kept ("" if it can), and
// whether the server URL is the only problem. It fails outright when the
// file trusts another CA: kubeadm refuses such a file too, since replacing
// it would silently move a component to another cluster's trust root.
func (r *renderer) check(w want, data []byte) (reason string, serverOnly bool, err error) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return "", false, fmt.Errorf("kubeconfig: %s: existing %s: %w", w.name, w.path, err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil {
		return fmt.Sprintf("has no current context (want %q)", w.context), false, nil
	}
	cluster := cfg.Clusters[ctx.Cluster]
	if cluster == nil {
		return fmt.Sprintf("has no cluster %q", ctx.Cluster), false, nil
	}

	caData := cluster.CertificateAuthorityData
	if len(caData) == 0 && cluster.CertificateAuthority != "" {
		if caData, _, err = r.read(cluster.CertificateAuthority); err != nil {
			return "", false, fmt.Errorf("kubeconfig: %s: existing %s: CA file: %w", w.name, w.path, err)
		}
	}
	caCerts, err := pki.ParseCerts(caData)
	if err != nil {
		return "", false, fmt.Errorf("kubeconfig: %s: existing %s: CA data: %w", w.name, w.path, err)
	}
	if !caCerts[0].Equal(r.ca.Cert) {
		return "", false, fmt.Errorf("kubeconfig: %s: existing %s trusts another CA (CN %q) than %s; remove the file or restore that CA",
			w.name, w.path, caCerts[0].Subject.CommonName, r.spec.CAPath)
	}

	if cfg.CurrentContext != w.context || ctx.Cluster != r.spec.ClusterName || ctx.AuthInfo != w.user {
		return fmt.Sprintf("has context %q (cluster %q, user %q), want %q", cfg.CurrentContext, ctx.Cluster, ctx.AuthInfo, w.context), false, nil
	}
	auth := cfg.AuthInfos[ctx.AuthInfo]
	if auth == nil {
		return fmt.Sprintf("has no user %q", ctx.AuthInfo), false, nil
	}
	certPEM, keyPEM := auth.ClientCertificateData, auth.ClientKeyData
	// A kubelet.conf that kubelet-finalize has pointed at the kubelet's own
	// rotating certificate (/var/lib/kubelet/pki/kubelet-client-current.pem)
	// is checked through those files; the kubelet renews that certificate
	// itself, so only expiry counts, not the renewal window.
	renewBefore := pki.RenewBefore(r.spec.Validity)
	if len(certPEM) == 0 && auth.ClientCertificate != "" {
		renewBefore = 0
		if certPEM, _, err = r.read(auth.ClientCertificate); err != nil {
			return "", false, fmt.Errorf("kubeconfig: %s: existing %s: client certificate: %w", w.name, w.path, err)
		}
	}
	if len(keyPEM) == 0 && auth.ClientKey != "" {
		if keyPEM, _, err = r.read(auth.ClientKey); err != nil {
			return "", false, fmt.Errorf("kubeconfig: %s: existing %s: client key: %w", w.name, w.path, err)
		}
	}
	certs, err := pki.ParseCerts(certPEM)
	if err != nil {
		return "has no usable client certificate: " + err.Error(), false, nil
	}
	key, err := pki.ParseKey(keyPEM)
	if err != nil {
		return "has no usable client key: " + err.Error(), false, nil
	}
	if !pki.KeyMatches(key, certs[0].PublicKey) {
		return "has a client key that does not match its certificate", false, nil
	}
	if err := r.ca.Check(certs[0], certs[1:], w.id, r.now, renewBefore); err != nil {
		return "client certificate " + err.Error(), false, nil
	}
	if r.now.Before(certs[0].NotBefore) {
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("kubeconfig: %s: client certificate in %s is not valid before %s; is the clock right?",
			w.name, w.path, certs[0].NotBefore.UTC().Format(time.RFC3339)))
	}

	// kubeadm only warns about a server URL that differs and keeps the file.
	// We re-render instead: the CA is the same, so nothing is lost, and a
	// component left pointing at a stale endpoint (an image built with a
	// placeholder address, a controlPlaneEndpoint changed before the first
	// boot finished) would otherwise fail later with a much less clear error.
	if cluster.Server != w.server {
		return fmt.Sprintf("has server %s, want %s", cluster.Server, w.server), true, nil
	}
	return "", false, nil
}

// render builds a fresh kubeconfig with a new client key and certificate.
func (r *renderer) render(w want) ([]byte, error) {
	key, err := r.spec.Algorithm.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %s: %w", w.name, err)
	}
	cert, err := r.ca.Issue(w.id, key.Public(), r.now, r.spec.Validity)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %s: %w", w.name, err)
	}
	return build(w, r.spec.ClusterName, r.ca.Cert, cert, key)
}

func build(w want, clusterName string, caCert, cert *x509.Certificate, key crypto.Signer) ([]byte, error) {
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %s: %w", w.name, err)
	}
	cfg := clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{
			clusterName: {Server: w.server, CertificateAuthorityData: pki.EncodeCert(caCert)},
		},
		Contexts: map[string]*clientcmdapi.Context{
			w.context: {Cluster: clusterName, AuthInfo: w.user},
		},
		AuthInfos: map[string]*clientcmdapi.AuthInfo{
			w.user: {ClientCertificateData: pki.EncodeCert(cert), ClientKeyData: keyPEM},
		},
		CurrentContext: w.context,
	}
	out, err := clientcmd.Write(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %s: %w", w.name, err)
	}
	if !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, '\n')
	}
	return out, nil
}
