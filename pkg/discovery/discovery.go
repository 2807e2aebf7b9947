// Package discovery finds and authenticates the cluster a node joins, as
// kubeadm join's discovery does: by bootstrap token (read
// kube-public/cluster-info anonymously, check its JWS signature with the
// token, pin the CA by its public-key hash, read it again over TLS that
// trusts only that CA), or from a kubeconfig file.
//
// The result is the cluster-info kubeconfig: the API server's address and
// the cluster CA, trusted. The join phases build bootstrap-kubelet.conf
// from it.
package discovery

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
)

// Each failure of discovery wraps exactly one of these, so that a caller
// (or a test) can tell them apart with errors.Is; the message around it
// says what was found and what to do.
var (
	// ErrUnreachable: no HTTP answer from the endpoint before the timeout.
	ErrUnreachable = errors.New("API server unreachable")
	// ErrNoClusterInfo: the server answers, but kube-public/cluster-info is
	// missing, not readable anonymously, or not a cluster-info ConfigMap.
	ErrNoClusterInfo = errors.New("cluster-info not available")
	// ErrUnknownToken: cluster-info carries no signature for the token's ID:
	// the token does not exist (any more) on the cluster.
	ErrUnknownToken = errors.New("unknown or expired token")
	// ErrBadSignature: a signature exists for the token's ID but does not
	// verify: the token's secret is wrong or cluster-info was altered.
	ErrBadSignature = errors.New("cluster-info signature invalid")
	// ErrCAHashMismatch: the signed CA's public key is not one of the pinned hashes.
	ErrCAHashMismatch = errors.New("CA hash mismatch")
	// ErrUntrustedServer: the API server's certificate does not verify
	// against the CA that cluster-info names.
	ErrUntrustedServer = errors.New("API server certificate not trusted")
	// ErrChanged: the second read, over the pinned TLS connection, returned
	// a different cluster-info than the first.
	ErrChanged = errors.New("cluster-info changed between reads")
)

// Hash returns kubeadm's pin of a certificate's public key:
// "sha256:" and the hex SHA-256 of its DER SubjectPublicKeyInfo.
func Hash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// parsePins checks kubeadm's hash format, "sha256:<64 hex>", and returns
// the hex values in lower case.
func parsePins(hashes []string) (map[string]bool, error) {
	pins := map[string]bool{}
	for _, h := range hashes {
		format, value, ok := strings.Cut(h, ":")
		if !ok || !strings.EqualFold(format, "sha256") {
			return nil, fmt.Errorf("invalid CA hash %q: expected sha256:<64 hex characters>", h)
		}
		if b, err := hex.DecodeString(value); err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("invalid CA hash %q: expected sha256:<64 hex characters>", h)
		}
		pins["sha256:"+strings.ToLower(value)] = true
	}
	return pins, nil
}

// Cluster returns the cluster a kubeconfig talks to: the current
// context's, or its only cluster (cluster-info has no contexts).
func Cluster(cfg *clientcmdapi.Config) (*clientcmdapi.Cluster, error) {
	if ctx, ok := cfg.Contexts[cfg.CurrentContext]; ok && ctx != nil {
		c, ok := cfg.Clusters[ctx.Cluster]
		if !ok || c == nil {
			return nil, fmt.Errorf("current context %q names cluster %q, which is not in the kubeconfig", cfg.CurrentContext, ctx.Cluster)
		}
		return c, nil
	}
	if cfg.CurrentContext != "" {
		return nil, fmt.Errorf("current context %q is not in the kubeconfig", cfg.CurrentContext)
	}
	if len(cfg.Clusters) != 1 {
		return nil, fmt.Errorf("kubeconfig has %d clusters and no current context: expected exactly one cluster", len(cfg.Clusters))
	}
	for _, c := range cfg.Clusters {
		if c != nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("kubeconfig has an empty cluster entry")
}

// caCerts parses the cluster's CA bundle.
func caCerts(c *clientcmdapi.Cluster) ([]*x509.Certificate, error) {
	if len(c.CertificateAuthorityData) == 0 {
		return nil, fmt.Errorf("no certificate-authority-data")
	}
	certs, err := certutil.ParseCertsPEM(c.CertificateAuthorityData)
	if err != nil {
		return nil, fmt.Errorf("certificate-authority-data: %w", err)
	}
	return certs, nil
}
