package postinstall

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// CertsTokenTTL is how long kubeadm-certs lives: it is owned by a token
// secret of this TTL and garbage-collected with it.
const CertsTokenTTL = 2 * time.Hour

// SharedCerts are the files a joining control plane downloads, by the
// names kubeadm uses inside the Secret ("/" becomes "-").
func SharedCerts(certDir string, externalEtcd bool) map[string]string {
	m := map[string]string{
		"ca.crt": certDir + "/ca.crt", "ca.key": certDir + "/ca.key",
		"front-proxy-ca.crt": certDir + "/front-proxy-ca.crt", "front-proxy-ca.key": certDir + "/front-proxy-ca.key",
		"sa.pub": certDir + "/sa.pub", "sa.key": certDir + "/sa.key",
	}
	if !externalEtcd {
		m["etcd-ca.crt"] = certDir + "/etcd/ca.crt"
		m["etcd-ca.key"] = certDir + "/etcd/ca.key"
	}
	return m
}

// EncryptionConfigKey carries the API server's encryption-at-rest
// configuration next to the certificates: every API server of a cluster
// needs the same keys to read Secrets. kubeadm reads only the names it
// knows and ignores this one.
const EncryptionConfigKey = "kubeboot-encryption-config.yaml"

// ParseCertificateKey decodes the hex certificate key (32 bytes, AES-256).
func ParseCertificateKey(s string) ([]byte, error) {
	k, err := hex.DecodeString(s)
	if err != nil || len(k) != 32 {
		return nil, fmt.Errorf("invalid certificate key: expected 64 hex characters")
	}
	return k, nil
}

// NewCertificateKey returns a fresh random certificate key in hex.
func NewCertificateKey() (string, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return "", err
	}
	return hex.EncodeToString(k), nil
}

// Seal and Open are kubeadm's format: AES-GCM, the nonce prepended.
func Seal(data, key []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, data, nil), nil
}

func Open(data, key []byte) ([]byte, error) {
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(data) < gcm.NonceSize() {
		return nil, fmt.Errorf("ciphertext too short")
	}
	return gcm.Open(nil, data[:gcm.NonceSize()], data[gcm.NonceSize():], nil)
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// CertsSecret builds kube-system/kubeadm-certs with every file sealed, owned
// by the token secret so that it disappears when the token expires.
func CertsSecret(files map[string][]byte, key []byte, owner *corev1.Secret) (*corev1.Secret, error) {
	data := map[string][]byte{}
	for name, content := range files {
		sealed, err := Seal(content, key)
		if err != nil {
			return nil, err
		}
		data[name] = sealed
	}
	s := &corev1.Secret{TypeMeta: secType,
		ObjectMeta: metav1.ObjectMeta{Name: KubeadmCertsSecret, Namespace: metav1.NamespaceSystem},
		Type:       corev1.SecretTypeOpaque, Data: data}
	if owner != nil {
		t := true
		s.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Secret", Name: owner.Name, UID: types.UID(owner.UID), Controller: &t, BlockOwnerDeletion: &t}}
	}
	return s, nil
}

// SameCerts tells whether an uploaded Secret already holds exactly these
// files under this key; re-uploading would only churn the nonces.
func SameCerts(s *corev1.Secret, files map[string][]byte, key []byte) bool {
	if s == nil || len(s.Data) != len(files) {
		return false
	}
	for name, want := range files {
		got, err := Open(s.Data[name], key)
		if err != nil || !bytes.Equal(got, want) {
			return false
		}
	}
	return true
}

// CertsRBAC lets bootstrap tokens read kubeadm-certs, as kubeadm does.
func CertsRBAC() []runtime.Object {
	return getOne(metav1.NamespaceSystem, KubeadmCertsRole, "secrets", KubeadmCertsSecret, group(BootstrapGroup))
}

// CertsOwnerToken is the short-lived token whose Secret owns kubeadm-certs.
func CertsOwnerToken(id, secret string, now time.Time) Token {
	return Token{ID: id, Secret: secret, Expires: now.Add(CertsTokenTTL).UTC().Truncate(time.Second),
		Description: "Proxy for managing TTL for the kubeadm-certs secret"}
}
