package userdata

import (
	"strings"
	"testing"
)

func TestRedacted(t *testing.T) {
	cc := "#cloud-config\nhostname: node-1\nkubeboot: |\n" + indent(testConfig+`---
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    token: 123456.abcdefabcdefabcd
    apiServerEndpoint: 10.0.0.1:6443
    caCertHashes: [sha256:aaaa]
  tlsBootstrapToken: 123456.abcdefabcdefabcd
controlPlane:
  certificateKey: ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff
---
apiVersion: kubeboot.dev/v1alpha1
kind: BootConfiguration
join:
  identity: AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ
  identityFile: /etc/kubeboot/age.key
`, "  ") + `write_files:
- path: /etc/kubernetes/pki/ca.key
  permissions: '0600'
  content: |
    -----BEGIN RSA PRIVATE KEY-----
    MIIEsecretsecret
    -----END RSA PRIVATE KEY-----
users:
- name: core
  ssh_authorized_keys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZWxvbmdrZXlrZXlrZXlrZXlrZXlrZXlrZXlrZXk core@example]
runcmd: [x]
`
	r := decodeOK(t, cc)
	out := r.Redacted()
	for _, secret := range []string{"0123456789abcdef0123", "abcdefabcdefabcd", "ffffffff", "MIIEsecret", "AAAAC3NzaC1lZDI1NTE5AAAAIGx0", "AGE-SECRET-KEY"} {
		if strings.Contains(out, secret) {
			t.Errorf("Redacted shows %q:\n%s", secret, out)
		}
	}
	for _, shown := range []string{"source: test", "format: cloud-config", "hostname: node-1", "kind: JoinConfiguration",
		"apiServerEndpoint: 10.0.0.1:6443", "sha256:aaaa", "token: " + RedactedValue, "certificateKey: " + RedactedValue,
		"/etc/kubernetes/pki/ca.key mode 0600 overwrite:", "secret", "core: ssh-ed25519 " + RedactedValue + " core@example",
		"cloud-config keys not applied by kubeboot: runcmd", "ttl: 24h0m0s", "identityFile: /etc/kubeboot/age.key"} {
		if !strings.Contains(out, shown) {
			t.Errorf("Redacted lacks %q:\n%s", shown, out)
		}
	}
	if (*Result)(nil).Redacted() != "no userdata found\n" {
		t.Error("nil Result")
	}
}

func TestRedactConfigBadYAML(t *testing.T) {
	r := &Result{Source: "x", Config: []byte("a: [")}
	if out := r.Redacted(); !strings.Contains(out, "4 bytes not shown") {
		t.Errorf("Redacted = %s", out)
	}
}
