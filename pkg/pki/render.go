package pki

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

const (
	certMode fs.FileMode = 0o644
	keyMode  fs.FileMode = 0o600
)

// Render returns the control-plane PKI for spec, reusing what exists in
// existing (an fs.FS rooted at the host root; nil when nothing exists yet).
// See the package documentation for the reuse rules. Every problem found is
// reported, joined in one error; then Result is empty.
func Render(spec Spec, existing fs.FS) (Result, error) {
	rs, err := spec.resolve()
	if err != nil {
		return Result{}, err
	}
	r := &renderer{resolved: rs, fsys: existing}
	groups := []*certDef{rootCA, frontProxyCA}
	if !rs.ExternalEtcd {
		groups = append(groups, etcdCA)
	}
	for _, caDef := range groups {
		ca, err := r.ca(caDef)
		if err != nil {
			r.errs = append(r.errs, err)
			continue
		}
		for _, d := range leaves {
			if d.ca != caDef {
				continue
			}
			if ca.Key == nil {
				err = r.provided(ca, d)
			} else {
				err = r.leaf(ca, d)
			}
			if err != nil {
				r.errs = append(r.errs, err)
			}
		}
	}
	if err := r.serviceAccount(); err != nil {
		r.errs = append(r.errs, err)
	}
	if len(r.errs) > 0 {
		return Result{}, errors.Join(r.errs...)
	}
	return r.res, nil
}

type renderer struct {
	*resolved
	fsys fs.FS
	res  Result
	errs []error
}

// read returns an existing file; ok is false when it does not exist.
func (r *renderer) read(p string) (data []byte, ok bool, err error) {
	if r.fsys == nil {
		return nil, false, nil
	}
	data, err = rootfs.ReadFile(r.fsys, p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return data, true, nil
}

func (r *renderer) emit(p string, data []byte, secret bool) {
	mode := certMode
	if secret {
		mode = keyMode
	}
	r.res.Files = append(r.res.Files, rootfs.File{Path: p, Mode: mode, Data: data, Secret: secret})
}

// backup returns old contents of p as <p>.bak-<UTC timestamp>, choosing a
// name that does not exist yet so an earlier backup is never overwritten.
func (r *renderer) backup(p string, data []byte, secret bool) error {
	base := p + ".bak-" + r.now.Format("20060102T150405Z")
	name := base
	for i := 1; ; i++ {
		_, exists, err := r.read(name)
		if err != nil {
			return err
		}
		if !exists && !r.emitted(name) {
			break
		}
		name = fmt.Sprintf("%s.%d", base, i)
	}
	r.emit(name, data, secret)
	return nil
}

func (r *renderer) emitted(p string) bool {
	_, ok := r.res.Lookup(p)
	return ok
}

func (r *renderer) outcome(name string, a Action, reason string, keyPair bool) {
	r.res.Outcomes = append(r.res.Outcomes, Outcome{Name: name, Action: a, Reason: reason})
	if keyPair {
		r.res.KeyPairs.add(a)
	} else {
		r.res.Certificates.add(a)
	}
}

func (r *renderer) warn(format string, args ...any) {
	r.res.Warnings = append(r.res.Warnings, fmt.Sprintf(format, args...))
}

// ca loads or creates one CA. An existing CA is never replaced.
func (r *renderer) ca(d *certDef) (*CA, error) {
	crtPath, keyPath := r.certPath(d), r.keyPath(d)
	crtData, crtOK, err := r.read(crtPath)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: read %s: %w", d.name, crtPath, err)
	}
	keyData, keyOK, err := r.read(keyPath)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: read %s: %w", d.name, keyPath, err)
	}
	switch {
	case !crtOK && !keyOK:
		ca, err := NewCA(d.caCN, r.Algorithm, r.now, r.CAValidity)
		if err != nil {
			return nil, fmt.Errorf("certs: %s: %w", d.name, err)
		}
		keyPEM, err := EncodeKey(ca.Key)
		if err != nil {
			return nil, fmt.Errorf("certs: %s: %w", d.name, err)
		}
		ca.Name = crtPath
		r.emit(crtPath, EncodeCert(ca.Cert), false)
		r.emit(keyPath, keyPEM, true)
		r.outcome(d.name, Created, "", false)
		return ca, nil
	case !crtOK:
		return nil, fmt.Errorf("certs: %s: %s exists without %s: restore the certificate or remove the key", d.name, keyPath, crtPath)
	}

	certs, err := ParseCerts(crtData)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: existing %s: %w", d.name, crtPath, err)
	}
	ca := &CA{Cert: certs[0], Name: crtPath}
	if !ca.Cert.IsCA {
		return nil, fmt.Errorf("certs: %s: existing %s is not a CA certificate", d.name, crtPath)
	}
	if r.now.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("certs: %s: existing %s expired at %s; a CA is never replaced, renew it by hand",
			d.name, crtPath, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if r.now.Before(ca.Cert.NotBefore) {
		r.warn("certs: %s: %s is not valid before %s; is the clock right?", d.name, crtPath, ca.Cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if ca.Cert.NotAfter.Before(r.now.Add(r.Validity)) {
		r.warn("certs: %s: %s expires at %s, before new certificates would; they are cut short to it",
			d.name, crtPath, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	r.emit(crtPath, crtData, false)
	if !keyOK {
		// External CA: its leaves must be provided; see provided.
		r.outcome(d.name, Verified, "", false)
		return ca, nil
	}
	if ca.Key, err = ParseKey(keyData); err != nil {
		return nil, fmt.Errorf("certs: %s: existing %s: %w", d.name, keyPath, err)
	}
	if !KeyMatches(ca.Key, ca.Cert.PublicKey) {
		return nil, fmt.Errorf("certs: %s: existing %s does not match %s", d.name, keyPath, crtPath)
	}
	if a, ok := AlgorithmOf(ca.Cert.PublicKey); !ok || a != r.Algorithm {
		r.warn("certs: %s: %s keeps its %s key; the configuration asks for %s", d.name, crtPath, describe(ca.Cert.PublicKey), r.Algorithm)
	}
	r.emit(keyPath, keyData, true)
	r.outcome(d.name, Reused, "", false)
	return ca, nil
}

// leaf reuses, creates or re-issues one certificate signed by ca.
func (r *renderer) leaf(ca *CA, d *certDef) error {
	crtPath, keyPath := r.certPath(d), r.keyPath(d)
	want := r.identity(d)
	crtData, crtOK, err := r.read(crtPath)
	if err != nil {
		return fmt.Errorf("certs: %s: read %s: %w", d.name, crtPath, err)
	}
	keyData, keyOK, err := r.read(keyPath)
	if err != nil {
		return fmt.Errorf("certs: %s: read %s: %w", d.name, keyPath, err)
	}

	var key crypto.Signer
	if keyOK {
		if key, err = ParseKey(keyData); err != nil {
			return fmt.Errorf("certs: %s: existing %s: %w (remove it to have a new key made)", d.name, keyPath, err)
		}
	}
	var certs []*x509.Certificate
	if crtOK {
		if certs, err = ParseCerts(crtData); err != nil {
			return fmt.Errorf("certs: %s: existing %s: %w (remove it to have it re-issued)", d.name, crtPath, err)
		}
	}

	// Decide: keep everything, or say why not.
	reason := ""
	switch {
	case !crtOK:
	case !keyOK:
		reason = crtPath + " has no key " + keyPath
	case !KeyMatches(key, certs[0].PublicKey):
		reason = keyPath + " does not match " + crtPath
	default:
		if a, ok := AlgorithmOf(key.Public()); !ok || a != r.Algorithm {
			reason = fmt.Sprintf("%s is %s, the configuration asks for %s", keyPath, describe(key.Public()), r.Algorithm)
		} else if err := ca.Check(certs[0], certs[1:], want, r.now, RenewBefore(r.Validity)); err != nil {
			reason = fmt.Sprintf("existing %s %v", crtPath, err)
		}
	}
	if crtOK && keyOK && reason == "" {
		if r.now.Before(certs[0].NotBefore) {
			r.warn("certs: %s: %s is not valid before %s; is the clock right?", d.name, crtPath, certs[0].NotBefore.UTC().Format(time.RFC3339))
		}
		r.emit(crtPath, crtData, false)
		r.emit(keyPath, keyData, true)
		r.outcome(d.name, Reused, "", false)
		return nil
	}

	// Keep a key that is still usable; otherwise make one and back up the old.
	newKey := key == nil
	if key != nil {
		if a, ok := AlgorithmOf(key.Public()); !ok || a != r.Algorithm {
			newKey = true
		}
	}
	if newKey {
		if key, err = r.Algorithm.GenerateKey(); err != nil {
			return fmt.Errorf("certs: %s: %w", d.name, err)
		}
	}
	cert, err := ca.Issue(want, key.Public(), r.now, r.Validity)
	if err != nil {
		return fmt.Errorf("certs: %s: %w", d.name, err)
	}
	r.emit(crtPath, EncodeCert(cert), false)
	if newKey {
		keyPEM, err := EncodeKey(key)
		if err != nil {
			return fmt.Errorf("certs: %s: %w", d.name, err)
		}
		r.emit(keyPath, keyPEM, true)
	} else {
		r.emit(keyPath, keyData, true)
	}
	if crtOK {
		if err := r.backup(crtPath, crtData, false); err != nil {
			return fmt.Errorf("certs: %s: back up %s: %w", d.name, crtPath, err)
		}
	}
	if keyOK && newKey {
		if err := r.backup(keyPath, keyData, true); err != nil {
			return fmt.Errorf("certs: %s: back up %s: %w", d.name, keyPath, err)
		}
	}
	if !crtOK {
		r.outcome(d.name, Created, "", false)
	} else {
		r.outcome(d.name, Reissued, reason, false)
	}
	return nil
}

// provided checks a leaf of an external CA: it must exist, match its key,
// chain to the CA, carry the right identity and SANs, and not be expired.
func (r *renderer) provided(ca *CA, d *certDef) error {
	crtPath, keyPath := r.certPath(d), r.keyPath(d)
	prefix := fmt.Sprintf("certs: %s: external CA (%s without its key)", d.name, ca.Name)
	crtData, crtOK, err := r.read(crtPath)
	if err != nil {
		return fmt.Errorf("%s: read %s: %w", prefix, crtPath, err)
	}
	keyData, keyOK, err := r.read(keyPath)
	if err != nil {
		return fmt.Errorf("%s: read %s: %w", prefix, keyPath, err)
	}
	var errs []error
	if !crtOK {
		errs = append(errs, fmt.Errorf("%s: %s must be provided", prefix, crtPath))
	}
	if !keyOK {
		errs = append(errs, fmt.Errorf("%s: %s must be provided", prefix, keyPath))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	certs, err := ParseCerts(crtData)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", prefix, crtPath, err)
	}
	key, err := ParseKey(keyData)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", prefix, keyPath, err)
	}
	if !KeyMatches(key, certs[0].PublicKey) {
		return fmt.Errorf("%s: %s does not match %s", prefix, keyPath, crtPath)
	}
	if err := ca.Check(certs[0], certs[1:], r.identity(d), r.now, 0); err != nil {
		return fmt.Errorf("%s: %s %w", prefix, crtPath, err)
	}
	if left := certs[0].NotAfter.Sub(r.now); left < RenewBefore(r.Validity) {
		r.warn("certs: %s: %s expires at %s and cannot be renewed here (external CA)", d.name, crtPath, certs[0].NotAfter.UTC().Format(time.RFC3339))
	}
	r.emit(crtPath, crtData, false)
	r.emit(keyPath, keyData, true)
	r.outcome(d.name, Verified, "", false)
	return nil
}

// serviceAccount keeps sa.key whenever it parses: a new key would invalidate
// every service-account token. kubeadm 1.37 makes it with the configured
// algorithm.
func (r *renderer) serviceAccount() error {
	keyPath := path.Join(r.CertificatesDir, "sa.key")
	pubPath := path.Join(r.CertificatesDir, "sa.pub")
	keyData, keyOK, err := r.read(keyPath)
	if err != nil {
		return fmt.Errorf("certs: sa: read %s: %w", keyPath, err)
	}
	pubData, pubOK, err := r.read(pubPath)
	if err != nil {
		return fmt.Errorf("certs: sa: read %s: %w", pubPath, err)
	}

	if !keyOK {
		key, err := r.Algorithm.GenerateKey()
		if err != nil {
			return fmt.Errorf("certs: sa: %w", err)
		}
		keyPEM, err := EncodeKey(key)
		if err != nil {
			return fmt.Errorf("certs: sa: %w", err)
		}
		pubPEM, err := EncodePublicKey(key.Public())
		if err != nil {
			return fmt.Errorf("certs: sa: %w", err)
		}
		r.emit(keyPath, keyPEM, true)
		r.emit(pubPath, pubPEM, false)
		if pubOK {
			if err := r.backup(pubPath, pubData, false); err != nil {
				return fmt.Errorf("certs: sa: back up %s: %w", pubPath, err)
			}
		}
		r.outcome("sa", Created, "", true)
		return nil
	}

	key, err := ParseKey(keyData)
	if err != nil {
		return fmt.Errorf("certs: sa: existing %s: %w", keyPath, err)
	}
	if a, ok := AlgorithmOf(key.Public()); !ok || a != r.Algorithm {
		r.warn("certs: sa: %s keeps its %s key; the configuration asks for %s", keyPath, describe(key.Public()), r.Algorithm)
	}
	r.emit(keyPath, keyData, true)
	reason := pubPath + " is missing"
	if pubOK {
		pub, err := ParsePublicKey(pubData)
		if err == nil && KeyMatches(key, pub) {
			r.emit(pubPath, pubData, false)
			r.outcome("sa", Reused, "", true)
			return nil
		}
		reason = pubPath + " does not match " + keyPath
	}
	pubPEM, err := EncodePublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("certs: sa: %w", err)
	}
	r.emit(pubPath, pubPEM, false)
	if pubOK {
		if err := r.backup(pubPath, pubData, false); err != nil {
			return fmt.Errorf("certs: sa: back up %s: %w", pubPath, err)
		}
	}
	r.outcome("sa", Reissued, reason, true)
	return nil
}
