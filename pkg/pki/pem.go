package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// PEM block types, as kubeadm writes them (k8s.io/client-go/util/keyutil).
const (
	blockCertificate = "CERTIFICATE"
	blockRSAKey      = "RSA PRIVATE KEY"
	blockECKey       = "EC PRIVATE KEY"
	blockPKCS8Key    = "PRIVATE KEY"
	blockPublicKey   = "PUBLIC KEY"
)

// EncodeCert returns the PEM encoding of a certificate.
func EncodeCert(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: blockCertificate, Bytes: cert.Raw})
}

// ParseCerts parses every CERTIFICATE block of a PEM file, in order; the
// first is the certificate itself, the rest its intermediates. Other block
// types are skipped.
func ParseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != blockCertificate {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return certs, nil
}

// EncodeKey returns the PEM encoding kubeadm uses for a private key:
// "EC PRIVATE KEY" (SEC 1) or "RSA PRIVATE KEY" (PKCS #1).
func EncodeKey(key crypto.Signer) ([]byte, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: blockECKey, Bytes: der}), nil
	case *rsa.PrivateKey:
		return pem.EncodeToMemory(&pem.Block{Type: blockRSAKey, Bytes: x509.MarshalPKCS1PrivateKey(k)}), nil
	}
	return nil, fmt.Errorf("encode key: unsupported key type %T", key)
}

// ParseKey parses the first private key of a PEM file: SEC 1, PKCS #1 or
// PKCS #8, RSA or ECDSA (the formats kubeadm accepts).
func ParseKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key block")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case blockECKey:
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case blockRSAKey:
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case blockPKCS8Key:
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		default:
			continue // e.g. "EC PARAMETERS" from openssl ecparam
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", block.Type, err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("%T is neither an RSA nor an ECDSA key", key)
	}
}

// EncodePublicKey returns the PEM "PUBLIC KEY" (PKIX) encoding, as in sa.pub.
func EncodePublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: blockPublicKey, Bytes: der}), nil
}

// ParsePublicKey parses the first PEM "PUBLIC KEY" block.
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM PUBLIC KEY block")
		}
		if block.Type == blockPublicKey {
			return x509.ParsePKIXPublicKey(block.Bytes)
		}
	}
}

// KeyMatches reports whether key is the private half of pub.
func KeyMatches(key crypto.Signer, pub crypto.PublicKey) bool {
	k, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(pub)
}
