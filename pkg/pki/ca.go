package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"
)

// Backdate is how far before "now" new certificates start to be valid, as
// in kubeadm, so that small clock differences between nodes do not matter.
const Backdate = 5 * time.Minute

// RenewBefore is how long before its expiry a leaf certificate is re-issued
// by Render: a third of its configured validity, at most 30 days. A year's
// certificate is therefore renewed by any run in its last 30 days, a day's
// certificate in its last 8 hours. A leaf that cannot outlive its CA is not
// renewed, since a new one would expire at the same moment.
func RenewBefore(validity time.Duration) time.Duration {
	return min(validity/3, 30*24*time.Hour)
}

// Identity is what a certificate asserts: its subject, SANs and extended
// key usages.
type Identity struct {
	CommonName   string
	Organization []string
	DNSNames     []string
	IPs          []net.IP
	Usages       []x509.ExtKeyUsage
}

// CA is a certificate authority. Key is nil for an external CA, whose key
// stays off the node.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Name is used in messages, e.g. "/etc/kubernetes/pki/ca.crt".
	Name string
}

// NewCA creates a self-signed CA the way kubeadm does: CN commonName (also
// its only DNS SAN), key usages digital signature, key encipherment and
// certificate signing, valid from now-Backdate to now+validity.
func NewCA(commonName string, alg Algorithm, now time.Time, validity time.Duration) (*CA, error) {
	key, err := alg.GenerateKey()
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		DNSNames:              []string{commonName},
		NotBefore:             now.Add(-Backdate).UTC(),
		NotAfter:              now.Add(validity).UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA %q: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, Name: commonName}, nil
}

// LoadCA parses a CA certificate and, unless keyPEM is empty, its key. Only
// the first certificate of certPEM is the CA.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	certs, err := ParseCerts(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	ca := &CA{Cert: certs[0], Name: fmt.Sprintf("CA %q", certs[0].Subject.CommonName)}
	if !ca.Cert.IsCA {
		return nil, fmt.Errorf("certificate %q is not a CA", ca.Cert.Subject.CommonName)
	}
	if len(keyPEM) == 0 {
		return ca, nil
	}
	if ca.Key, err = ParseKey(keyPEM); err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if !KeyMatches(ca.Key, ca.Cert.PublicKey) {
		return nil, errors.New("CA key does not match the CA certificate")
	}
	return ca, nil
}

// Issue signs a leaf certificate for pub: key usages digital signature and
// key encipherment (as kubeadm), valid from now-Backdate to now+validity but
// never past the CA's own expiry.
func (ca *CA) Issue(id Identity, pub crypto.PublicKey, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	if ca.Key == nil {
		return nil, fmt.Errorf("issue %q: %s has no key (external CA)", id.CommonName, ca.Name)
	}
	if id.CommonName == "" {
		return nil, errors.New("issue: empty common name")
	}
	if len(id.Usages) == 0 {
		return nil, fmt.Errorf("issue %q: no extended key usage", id.CommonName)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: id.CommonName, Organization: id.Organization},
		DNSNames:              id.DNSNames,
		IPAddresses:           id.IPs,
		NotBefore:             now.Add(-Backdate).UTC(),
		NotAfter:              notAfter.UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           id.Usages,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue %q: %w", id.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// Check tells why an existing leaf certificate cannot be kept for want, or
// returns nil. It checks, in order: the chain to the CA (for every usage of
// want), expiry and the renewal window (renewBefore, see RenewBefore), the
// common name, the organizations (as a set), and that the SANs cover want's
// (extra SANs are fine). A certificate that is not valid yet passes: that is
// the local clock lagging, which re-issuing would not cure.
func (ca *CA) Check(cert *x509.Certificate, intermediates []*x509.Certificate, want Identity, now time.Time, renewBefore time.Duration) error {
	if err := ca.verifyChain(cert, intermediates, want.Usages); err != nil {
		return err
	}
	if now.After(cert.NotAfter) {
		return fmt.Errorf("expired at %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if cert.NotAfter.Sub(now) < renewBefore && cert.NotAfter.Before(ca.Cert.NotAfter) {
		return fmt.Errorf("expires at %s, within %s", cert.NotAfter.UTC().Format(time.RFC3339), renewBefore)
	}
	if cert.Subject.CommonName != want.CommonName {
		return fmt.Errorf("has CN %q, want %q", cert.Subject.CommonName, want.CommonName)
	}
	if !sameSet(cert.Subject.Organization, want.Organization) {
		return fmt.Errorf("has O %q, want %q", cert.Subject.Organization, want.Organization)
	}
	for _, name := range want.DNSNames {
		if !slices.ContainsFunc(cert.DNSNames, func(n string) bool { return strings.EqualFold(n, name) }) {
			return fmt.Errorf("lacks SAN %s", name)
		}
	}
	for _, ip := range want.IPs {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return fmt.Errorf("lacks SAN %s", ip)
		}
	}
	return nil
}

// verifyChain checks the signature chain and the extended key usages. The
// chain is checked at a moment inside every certificate's validity, not at
// "now": time is judged separately, and a node whose clock lags must not
// take a freshly issued chain for a broken one.
func (ca *CA) verifyChain(cert *x509.Certificate, intermediates []*x509.Certificate, usages []x509.ExtKeyUsage) error {
	at := cert.NotBefore
	for _, c := range append([]*x509.Certificate{ca.Cert}, intermediates...) {
		if c.NotBefore.After(at) {
			at = c.NotBefore
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	if len(usages) == 0 {
		usages = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
	}
	for _, u := range usages {
		_, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{u}})
		if err != nil {
			var unknown x509.UnknownAuthorityError
			if errors.As(err, &unknown) {
				return fmt.Errorf("is not signed by %s", ca.Name)
			}
			return fmt.Errorf("does not verify against %s: %w", ca.Name, err)
		}
	}
	return nil
}

// CAHash returns the hash kubeadm's discovery uses to pin a CA
// (--discovery-token-ca-cert-hash): "sha256:" and the hex SHA-256 of the
// DER SubjectPublicKeyInfo of the first certificate in caCertPEM.
func CAHash(caCertPEM []byte) (string, error) {
	certs, err := ParseCerts(caCertPEM)
	if err != nil {
		return "", fmt.Errorf("CA hash: %w", err)
	}
	sum := sha256.Sum256(certs[0].RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// newSerial returns a random serial number in [1, 2^63-1), as kubeadm.
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(math.MaxInt64-1))
	if err != nil {
		return nil, err
	}
	return n.Add(n, big.NewInt(1)), nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
