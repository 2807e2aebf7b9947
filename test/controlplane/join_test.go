package controlplane

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/kubeboot/kubeboot/pkg/joinsecret"
)

// testJoinDryRun runs `kubeboot join --control-plane --dry-run` against the
// real cluster with the join secret init wrote: discovery, kubeadm-certs
// and the cluster's configuration are real; the node's files land under a
// temporary root. Then the ways a join must fail, each with its own error.
func testJoinDryRun(t *testing.T, e *env, s joinsecret.Secret) {
	secretFile := filepath.Join(e.root, "var/lib/kubeboot/join-secret.json")
	_, tokenSecret, _ := strings.Cut(s.Token, ".")
	join := func(t *testing.T, args ...string) (string, string, error) {
		root := t.TempDir()
		cmd := exec.Command(e.kubeboot, append([]string{"join", "--dry-run", "--root", root}, args...)...)
		out, err := cmd.CombinedOutput()
		if strings.Contains(string(out), tokenSecret) || strings.Contains(string(out), s.CertificateKey) {
			t.Errorf("join output shows the token's secret or the certificate key")
		}
		return root, string(out), err
	}
	read := func(t *testing.T, p string) []byte {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	t.Run("control plane from the join secret", func(t *testing.T) {
		root, out, err := join(t, "--control-plane", "--join-secret", secretFile, "--node-name", "kb-cp2", "--apiserver-advertise-address", "10.99.0.5")
		if err != nil {
			t.Fatalf("kubeboot join: %v\n%s", err, out)
		}
		t.Logf("kubeboot join --dry-run:\n%s", out)
		pki := "etc/kubernetes/pki"
		for _, f := range []string{"ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key"} {
			if !bytes.Equal(read(t, filepath.Join(root, pki, f)), read(t, filepath.Join(e.root, pki, f))) {
				t.Errorf("%s differs from the first node's", f)
			}
		}
		if !bytes.Equal(read(t, filepath.Join(root, "etc/kubernetes/encryption/config.yaml")), read(t, filepath.Join(e.root, "etc/kubernetes/encryption/config.yaml"))) {
			t.Errorf("the encryption configuration differs from the first node's: this API server could not read Secrets")
		}
		block, _ := pem.Decode(read(t, filepath.Join(root, pki, "apiserver.crt")))
		crt, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ip := range crt.IPAddresses {
			found = found || ip.String() == "10.99.0.5"
		}
		if !found {
			t.Errorf("apiserver.crt SANs %v lack the node's address", crt.IPAddresses)
		}
		for _, f := range []string{"etc/kubernetes/admin.conf", "etc/kubernetes/controller-manager.conf", "etc/kubernetes/scheduler.conf",
			"etc/kubernetes/manifests/kube-apiserver.yaml", "etc/kubernetes/bootstrap-kubelet.conf", "var/lib/kubelet/config.yaml"} {
			if _, err := os.Stat(filepath.Join(root, f)); err != nil {
				t.Errorf("not written: %s", f)
			}
		}
		// The kubelet gets its own identity by TLS bootstrap; the
		// break-glass identity stays on the first node.
		for _, f := range []string{"etc/kubernetes/kubelet.conf", "etc/kubernetes/super-admin.conf"} {
			if _, err := os.Stat(filepath.Join(root, f)); err == nil {
				t.Errorf("written, but must not be: %s", f)
			}
		}
		if st, err := os.Stat(filepath.Join(root, "etc/kubernetes/bootstrap-kubelet.conf")); err == nil && st.Mode().Perm() != 0o600 {
			t.Errorf("bootstrap-kubelet.conf mode %v", st.Mode())
		}
		if !strings.Contains(string(read(t, filepath.Join(root, "var/lib/kubelet/config.yaml"))), "clusterDNS") {
			t.Errorf("kubelet config.yaml does not come from the cluster's kubelet-config")
		}
	})
	t.Run("worker from flags", func(t *testing.T) {
		root, out, err := join(t, s.APIServerEndpoint, "--token", s.Token, "--discovery-token-ca-cert-hash", s.CACertHashes[0], "--node-name", "kb-w1")
		if err != nil {
			t.Fatalf("kubeboot join: %v\n%s", err, out)
		}
		if !bytes.Equal(read(t, filepath.Join(root, "etc/kubernetes/pki/ca.crt")), read(t, filepath.Join(e.root, "etc/kubernetes/pki/ca.crt"))) {
			t.Errorf("a worker's pki/ca.crt is not the cluster CA")
		}
		if _, err := os.Stat(filepath.Join(root, "etc/kubernetes/pki/ca.key")); err == nil {
			t.Errorf("a worker got the CA key")
		}
	})
	wrongHash := "sha256:" + strings.Repeat("0", 64)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"wrong CA hash", []string{s.APIServerEndpoint, "--token", s.Token, "--discovery-token-ca-cert-hash", wrongHash}, "hash"},
		{"wrong certificate key", []string{"--join-secret", secretFile, "--control-plane", "--certificate-key", strings.Repeat("ab", 32), "--node-name", "kb-cp3", "--apiserver-advertise-address", "10.99.0.6"}, "does not decrypt"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root, out, err := join(t, c.args...)
			if err == nil {
				t.Fatalf("join succeeded:\n%s", out)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("error does not mention %q:\n%s", c.want, out)
			}
			if c.name == "wrong certificate key" {
				if _, err := os.Stat(filepath.Join(root, "etc/kubernetes/pki/ca.key")); err == nil {
					t.Errorf("a key was written although the certificate key is wrong")
				}
			}
		})
	}
}

// testSealedJoin joins (dry run) with the join secret sealed to an age
// identity, as init writes it for joinSecret.recipients: the right
// identity opens it; a wrong one, or an unsealed secret where an identity
// is configured, is refused.
func testSealedJoin(t *testing.T, e *env, s joinsecret.Secret) {
	dir := t.TempDir()
	plain, err := os.ReadFile(filepath.Join(e.root, "var/lib/kubeboot/join-secret.json"))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	sealed, err := joinsecret.Seal(plain, []string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"sealed.json": sealed, "plain.json": plain,
		"id.txt": []byte(id.String() + "\n"), "other.txt": []byte(other.String() + "\n")}
	for name, data := range files {
		os.WriteFile(filepath.Join(dir, name), data, 0o600)
	}
	config := func(secret, identity string) string {
		p := filepath.Join(dir, secret+"-"+identity+".yaml")
		os.WriteFile(p, []byte(fmt.Sprintf("apiVersion: kubeboot.dev/v1alpha1\nkind: BootConfiguration\njoin:\n  source: %s\n  identityFile: %s\n",
			filepath.Join(dir, secret), filepath.Join(dir, identity))), 0o600)
		return p
	}
	for _, c := range []struct {
		name, secret, identity, want string
	}{
		{"right identity", "sealed.json", "id.txt", ""},
		{"wrong identity", "sealed.json", "other.txt", "no configured identity opens it"},
		{"unsealed secret where an identity is set", "plain.json", "id.txt", "not sealed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			out, err := exec.Command(e.kubeboot, "join", "--dry-run", "--root", root, "--config", config(c.secret, c.identity), "--node-name", "kb-w9").CombinedOutput()
			if strings.Contains(string(out), id.String()) || strings.Contains(string(out), other.String()) {
				t.Errorf("output shows an age identity")
			}
			if c.want == "" {
				if err != nil {
					t.Fatalf("kubeboot join: %v\n%s", err, out)
				}
				if _, err := os.Stat(filepath.Join(root, "etc/kubernetes/bootstrap-kubelet.conf")); err != nil {
					t.Errorf("no bootstrap-kubelet.conf after a sealed join: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(string(out), c.want) {
				t.Errorf("want an error with %q, got %v:\n%s", c.want, err, out)
			}
		})
	}
}
