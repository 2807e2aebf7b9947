package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/firstboot"
)

const (
	goodToken = "abcdef.0123456789abcdef"
	goodHash  = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// TestJoinBadInvocations: every bad command line exits with status 2 and
// a message naming what is wrong, shows no token, and writes nothing.
func TestJoinBadInvocations(t *testing.T) {
	cpYAML := filepath.Join(t.TempDir(), "init.yaml")
	if err := os.WriteFile(cpYAML, []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := []string{"192.0.2.10:6443", "--token", goodToken, "--discovery-token-ca-cert-hash", goodHash}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no discovery at all", nil, "discovery: required"},
		{"endpoint only", []string{"192.0.2.10:6443"}, "discovery.bootstrapToken.token: required"},
		{"malformed CA hash", []string{"192.0.2.10:6443", "--token", goodToken, "--discovery-token-ca-cert-hash", "sha256:abc"},
			`discovery.bootstrapToken.caCertHashes[0]: invalid hash "sha256:abc"`},
		{"CA hash of another algorithm", []string{"192.0.2.10:6443", "--token", goodToken, "--discovery-token-ca-cert-hash", "md5:0123456789abcdef0123456789abcdef"},
			"discovery.bootstrapToken.caCertHashes[0]: invalid hash"},
		{"no CA hash", []string{"192.0.2.10:6443", "--token", goodToken}, "discovery.bootstrapToken.caCertHashes: required"},
		{"bad token", []string{"192.0.2.10:6443", "--token", "abcdef.SECRETsecretSECRE", "--discovery-token-ca-cert-hash", goodHash},
			"discovery.bootstrapToken.token: invalid bootstrap token"},
		{"bad TLS bootstrap token", append(token, "--tls-bootstrap-token", "SECRETsecret"), "discovery.tlsBootstrapToken: invalid bootstrap token"},
		{"endpoint without a port", []string{"192.0.2.10", "--token", goodToken, "--discovery-token-ca-cert-hash", goodHash}, "expected host:port"},
		{"two endpoints", []string{"192.0.2.10:6443", "192.0.2.11:6443", "--token", goodToken, "--discovery-token-ca-cert-hash", goodHash},
			"accepts at most one argument (the API server endpoint), got 2"},
		{"token and file discovery", append(token, "--discovery-file", "/etc/kubernetes/discovery.conf"), "discovery: set bootstrapToken or file, not both"},
		{"https discovery file", []string{"--discovery-file", "https://example.com/discovery.conf"}, "an https URL is not supported"},
		{"join secret of an unsupported scheme", []string{"--join-secret", "ftp://meta.example.com/join"}, "join.source: expected an absolute file path, file://, http(s):// or virtio-serial:NAME"},
		{"join secret at a relative path", []string{"--join-secret", "join-secret.json"}, "join.source: expected an absolute file path"},
		{"join secret URL without a host", []string{"--join-secret", "https:///join"}, "join.source: invalid URL"},
		{"bad certificate key", append(token, "--control-plane", "--certificate-key", "not-hex"), "controlPlane.certificateKey: invalid certificate key"},
		{"bad advertise address", append(token, "--control-plane", "--apiserver-advertise-address", "127.0.0.1"), "cannot be advertised"},
		{"bad node name", append(token, "--node-name", "Node_1"), `nodeRegistration.name: invalid node name "Node_1"`},
		{"init configuration", append(token, "--config", cpYAML), "InitConfiguration is not used by kubeboot join"},
		{"unknown phase", append(token, "--skip-phases", "certs,nope"), "unknown phase(s) nope"},
		{"bad ignore list", append(token, "--ignore-preflight-errors", "all,Swap"), "don't name individual checks when 'all' is used"},
		{"unknown flag", []string{"--frobnicate"}, "unknown flag"},
		{"phase with an argument", []string{"phase", "preflight", "extra"}, "accepts 0 arg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			args := append([]string{"join", "--dry-run", "--root", root}, tc.args...)
			r := kubeboot(t, nil, "", args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2\n%s%s", r.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, r.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, "ECRET") {
				t.Errorf("output shows the token:\n%s%s", r.stdout, r.stderr)
			}
			var written []string
			filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if p != root {
					written = append(written, p)
				}
				return err
			})
			if len(written) > 0 {
				t.Errorf("bad input wrote %v", written)
			}
		})
	}
}

// TestJoinHelp: the help lists the flow's phases, and `join phase` has a
// subcommand for each (config, which every phase runs first, aside).
func TestJoinHelp(t *testing.T) {
	r := kubeboot(t, nil, "", "join", "--help")
	if r.code != 0 {
		t.Fatalf("join --help: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"--join-secret", "--discovery-token-ca-cert-hash", "--control-plane", "a worker skips the control-plane phases"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("join --help lacks %q", want)
		}
	}
	want := strings.Join(firstboot.Names(firstboot.JoinPhases(true)), ", ")
	if !strings.Contains(r.stdout, want) {
		t.Errorf("join --help lacks the phases %q:\n%s", want, r.stdout)
	}

	r = kubeboot(t, nil, "", "join", "phase", "--help")
	if r.code != 0 {
		t.Fatalf("join phase --help: exit %d\n%s", r.code, r.stderr)
	}
	for _, p := range firstboot.JoinPhases(true) {
		listed := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(p.Name) + `\s+` + regexp.QuoteMeta(p.Short) + `$`).MatchString(r.stdout)
		if p.Name == "config" && listed {
			t.Errorf("config listed as a phase to run alone")
		}
		if p.Name != "config" && !listed {
			t.Errorf("join phase lacks %q (%s):\n%s", p.Name, p.Short, r.stdout)
		}
	}
}
