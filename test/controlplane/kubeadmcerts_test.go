package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeboot/kubeboot/pkg/joinsecret"
	"github.com/kubeboot/kubeboot/pkg/postinstall"
)

// testKubeadmUploadCerts has real `kubeadm init phase upload-certs`
// replace kube-system/kubeadm-certs, then reads it the way a joining
// kubeboot control plane does: kubeboot and kubeadm share the format, so
// either tool's upload serves the other's join.
func testKubeadmUploadCerts(t *testing.T, e *env, s joinsecret.Secret) {
	key, err := postinstall.NewCertificateKey()
	if err != nil {
		t.Fatal(err)
	}
	pki := filepath.Join(e.root, "etc/kubernetes/pki")
	cfg := filepath.Join(t.TempDir(), "kubeadm.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
certificateKey: %s
nodeRegistration:
  name: %s
localAPIEndpoint:
  advertiseAddress: %s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.37.2
certificatesDir: %s
`, key, nodeName, e.addr, pki)), 0o600)
	cmd := exec.Command(filepath.Join(e.plane.Bins.K8s, "kubeadm"), "init", "phase", "upload-certs", "--upload-certs",
		"--skip-certificate-key-print", "--config", cfg, "--kubeconfig", filepath.Join(e.root, "etc/kubernetes/admin.conf"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubeadm init phase upload-certs: %v\n%s", err, out)
	}
	sec, err := e.clients("admin.conf").CoreV1().Secrets("kube-system").Get(context.Background(), postinstall.KubeadmCertsSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := postinstall.ParseCertificateKey(key)
	for name, p := range postinstall.SharedCerts(pki, false) {
		want, _ := os.ReadFile(p)
		got, err := postinstall.Open(sec.Data[name], k)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("kubeadm's upload of %s does not decrypt to %s: %v", name, p, err)
		}
	}
	// A kubeboot control-plane join takes kubeadm's upload.
	root := t.TempDir()
	secretFile := filepath.Join(e.root, "var/lib/kubeboot/join-secret.json")
	jc := exec.Command(e.kubeboot, "join", "--dry-run", "--root", root, "--control-plane", "--join-secret", secretFile,
		"--certificate-key", key, "--node-name", "kb-cp4", "--apiserver-advertise-address", "10.99.0.7")
	out, err = jc.CombinedOutput()
	if err != nil {
		t.Fatalf("kubeboot join with kubeadm's upload: %v\n%s", err, out)
	}
	if strings.Contains(string(out), key) {
		t.Errorf("kubeboot join printed the certificate key")
	}
	for _, f := range []string{"ca.key", "sa.key", "etcd/ca.key", "front-proxy-ca.key"} {
		a, _ := os.ReadFile(filepath.Join(root, "etc/kubernetes/pki", f))
		b, _ := os.ReadFile(filepath.Join(pki, f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s from kubeadm's upload differs from the first node's", f)
		}
	}
}
