package controlplane

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/kubeboot/kubeboot/pkg/discovery"
	"github.com/kubeboot/kubeboot/pkg/joinsecret"
)

// testDiscovery runs token discovery against the real API server with the
// token and hash from the join secret init wrote, and each failure a
// joining node can meet.
func testDiscovery(t *testing.T, e *env, s joinsecret.Secret) {
	ctx := context.Background()
	ca := mustRead(t, filepath.Join(e.root, "etc/kubernetes/pki/ca.crt"))
	id, secret, _ := strings.Cut(s.Token, ".")
	noSecret := func(t *testing.T, err error, secrets ...string) {
		t.Helper()
		for _, x := range append(secrets, secret) {
			if strings.Contains(err.Error(), x) {
				t.Errorf("error shows a token secret: %v", err)
			}
		}
	}

	t.Run("good token and hash", func(t *testing.T) {
		cfg, err := discovery.ByToken(ctx, s.APIServerEndpoint, s.Token, s.CACertHashes, false, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c, err := discovery.Cluster(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.CertificateAuthorityData, ca) {
			t.Errorf("discovered CA differs from ca.crt")
		}
		if c.Server != "https://"+s.APIServerEndpoint {
			t.Errorf("discovered server %q, want https://%s", c.Server, s.APIServerEndpoint)
		}
	})

	t.Run("wrong hash", func(t *testing.T) {
		wrong := "sha256:" + strings.Repeat("0", 64)
		_, err := discovery.ByToken(ctx, s.APIServerEndpoint, s.Token, []string{wrong}, false, 30*time.Second)
		if !errors.Is(err, discovery.ErrCAHashMismatch) {
			t.Fatalf("got %v, want a CA hash mismatch", err)
		}
		if !strings.Contains(err.Error(), s.CACertHashes[0]) || !strings.Contains(err.Error(), wrong) {
			t.Errorf("error does not name the hash found and the one expected: %v", err)
		}
		noSecret(t, err)
		t.Log(err)
	})

	t.Run("wrong secret", func(t *testing.T) {
		other := id + ".zzzzzzzzzzzzzzzz"
		_, err := discovery.ByToken(ctx, s.APIServerEndpoint, other, s.CACertHashes, false, 30*time.Second)
		if !errors.Is(err, discovery.ErrBadSignature) {
			t.Fatalf("got %v, want an invalid signature", err)
		}
		noSecret(t, err, "zzzzzzzzzzzzzzzz")
		t.Log(err)
	})

	t.Run("unknown token", func(t *testing.T) {
		unknown := "abcdef.0123456789abcdef"
		if id == "abcdef" {
			unknown = "fedcba.0123456789abcdef"
		}
		_, err := discovery.ByToken(ctx, s.APIServerEndpoint, unknown, s.CACertHashes, false, 3*time.Second)
		if !errors.Is(err, discovery.ErrUnknownToken) || !strings.Contains(err.Error(), "kubeadm token create") {
			t.Fatalf("got %v, want an unknown token", err)
		}
		noSecret(t, err, "0123456789abcdef")
		t.Log(err)
	})

	// A token the controller manager signed, then deleted: its signature
	// goes, and discovery must say the token is unknown or expired.
	t.Run("deleted token", func(t *testing.T) {
		admin := e.clients("admin.conf")
		token, id2, secret2, name := newToken(t, ctx, admin, time.Now().Add(time.Hour))
		if !waitSignature(t, admin, id2, true, 60*time.Second) {
			t.Fatalf("the controller manager's bootstrapsigner did not sign cluster-info for token %s within 60s", id2)
		}
		// Its signature, made by the controller manager, verifies.
		if _, err := discovery.ByToken(ctx, s.APIServerEndpoint, token, s.CACertHashes, false, 30*time.Second); err != nil {
			t.Fatalf("discovery with a token the controller manager signed: %v", err)
		}
		if err := admin.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if !waitSignature(t, admin, id2, false, 60*time.Second) {
			t.Fatalf("the signature for deleted token %s is still in cluster-info after 60s", id2)
		}
		_, err := discovery.ByToken(ctx, s.APIServerEndpoint, token, s.CACertHashes, false, 3*time.Second)
		if !errors.Is(err, discovery.ErrUnknownToken) {
			t.Fatalf("got %v, want an unknown or expired token", err)
		}
		if !strings.Contains(err.Error(), "may have expired") {
			t.Errorf("error does not say the token may have expired: %v", err)
		}
		noSecret(t, err, secret2)
		t.Log(err)
		// The init token is untouched.
		if _, err := discovery.ByToken(ctx, s.APIServerEndpoint, s.Token, s.CACertHashes, false, 30*time.Second); err != nil {
			t.Errorf("the init token no longer works: %v", err)
		}
	})

	// A token whose expiration has passed is never signed (the controller
	// manager's bootstrapsigner skips it and its tokencleaner deletes it).
	t.Run("expired token", func(t *testing.T) {
		admin := e.clients("admin.conf")
		token, _, secret3, _ := newToken(t, ctx, admin, time.Now().Add(-time.Minute))
		_, err := discovery.ByToken(ctx, s.APIServerEndpoint, token, s.CACertHashes, false, 3*time.Second)
		if !errors.Is(err, discovery.ErrUnknownToken) {
			t.Fatalf("got %v, want an unknown or expired token", err)
		}
		noSecret(t, err, secret3)
	})

	t.Run("kubeconfig file", func(t *testing.T) {
		cfg, err := discovery.ByFile(filepath.Join(e.root, "etc/kubernetes/admin.conf"))
		if err != nil {
			t.Fatal(err)
		}
		if c, _ := discovery.Cluster(cfg); c == nil || !bytes.Equal(c.CertificateAuthorityData, ca) {
			t.Errorf("admin.conf's CA differs from ca.crt")
		}
	})

	t.Run("join secret from its file sink", func(t *testing.T) {
		got, err := joinsecret.Fetch(ctx, filepath.Join(e.root, "var/lib/kubeboot/join-secret.json"))
		if err != nil || got.Token != s.Token || got.CACertHashes[0] != s.CACertHashes[0] {
			t.Fatalf("fetch: %v", err)
		}
	})
}

// waitSignature waits until cluster-info has (or no longer has) a
// signature for the token ID.
func waitSignature(t *testing.T, admin *kubernetes.Clientset, id string, present bool, timeout time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		cm, err := admin.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(context.Background(), bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
		if err == nil {
			if _, ok := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+id]; ok == present {
				return true
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return false
}

// newToken stores a bootstrap token that may sign cluster-info, expiring
// at expires, and deletes it when the test ends.
func newToken(t *testing.T, ctx context.Context, admin kubernetes.Interface, expires time.Time) (token, id, secret, name string) {
	t.Helper()
	token, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		t.Fatal(err)
	}
	id, secret, _ = strings.Cut(token, ".")
	name = bootstraputil.BootstrapTokenSecretName(id)
	_, err = admin.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		StringData: map[string]string{
			bootstrapapi.BootstrapTokenIDKey:           id,
			bootstrapapi.BootstrapTokenSecretKey:       secret,
			bootstrapapi.BootstrapTokenUsageSigningKey: "true",
			bootstrapapi.BootstrapTokenExpirationKey:   expires.UTC().Format(time.RFC3339),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := admin.CoreV1().Secrets(metav1.NamespaceSystem).Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete %s: %v", name, err)
		}
	})
	return token, id, secret, name
}
