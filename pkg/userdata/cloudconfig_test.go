package userdata

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestCloudConfigWriteFiles(t *testing.T) {
	cc := `#cloud-config
hostname: node-1
write_files:
- path: /etc/plain
  content: |
    plain text
- path: /etc/b64
  encoding: b64
  content: ` + b64([]byte("base64 text")) + `
- path: /etc/base64
  encoding: base64
  content: ` + b64([]byte("base64 text")) + `
- path: /etc/gz
  encoding: gzip
  content: !!binary |
    ` + b64(gz(t, []byte("gzip text"))) + `
- path: /etc/gzb64
  encoding: gz+b64
  permissions: '0600'
  owner: core:wheel
  content: ` + b64(gz(t, []byte("gzip base64 text"))) + `
- path: /etc/gzipbase64
  encoding: gzip+base64
  permissions: 0755
  owner: "2379"
  content: ` + b64(gz(t, []byte("x"))) + `
- path: /etc/appended
  append: true
  content: "line\n"
- path: /etc/kubernetes/pki/sa.key
  permissions: "0600"
  content: "-----BEGIN PRIVATE KEY-----\n"
  defer: true
runcmd: [reboot]
packages: [vim]
users:
- default
- name: core
  groups: wheel
  ssh_authorized_keys:
  - ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDFakeFakeFakeFakeFakeFakeFakeFakeFakeFake core@host
`
	r := decodeOK(t, cc)
	if r.Format != FormatCloudConfig || r.Hostname != "node-1" {
		t.Errorf("Format, Hostname = %q, %q", r.Format, r.Hostname)
	}
	for p, want := range map[string]string{
		"/etc/plain": "plain text\n", "/etc/b64": "base64 text", "/etc/base64": "base64 text",
		"/etc/gz": "gzip text", "/etc/gzb64": "gzip base64 text", "/etc/gzipbase64": "x",
	} {
		f := fileByPath(r, p)
		if f == nil || string(f.Data) != want || !f.HasContents || !f.Overwrite {
			t.Errorf("%s = %+v, want contents %q", p, f, want)
		}
	}
	if f := fileByPath(r, "/etc/gzb64"); f.Mode != 0o600 || *f.Owner != (rootfs.Owner{UID: 1000, GID: 10}) {
		t.Errorf("/etc/gzb64 mode, owner = %v, %+v", f.Mode, f.Owner)
	}
	if f := fileByPath(r, "/etc/gzipbase64"); f.Mode != fs.FileMode(0o755) || *f.Owner != (rootfs.Owner{UID: 2379, GID: 2379}) {
		t.Errorf("/etc/gzipbase64 mode, owner = %v, %+v", f.Mode, f.Owner)
	}
	if f := fileByPath(r, "/etc/appended"); f.HasContents || string(f.Append) != "line\n" {
		t.Errorf("/etc/appended = %+v", f)
	}
	if f := fileByPath(r, "/etc/kubernetes/pki/sa.key"); !f.Secret {
		t.Errorf("sa.key not secret")
	}
	if !hasWarning(r, "packages, runcmd") {
		t.Errorf("warnings = %q", r.Warnings)
	}
	if !hasWarning(r, "users[1] core: groups not applied") || !hasWarning(r, `users[0] "default"`) {
		t.Errorf("warnings = %q", r.Warnings)
	}
	if len(r.SSHAuthorizedKeys["core"]) != 1 {
		t.Errorf("ssh keys = %v", r.SSHAuthorizedKeys)
	}
}

func TestCloudConfigPermissions(t *testing.T) {
	for _, tc := range []struct {
		perms string
		want  fs.FileMode
	}{
		{"0644", 0o644}, {"'0644'", 0o644}, {`"0640"`, 0o640}, {"'644'", 0o644}, {"420", 0o644}, {"0o700", 0o700},
		{"'0o700'", 0o700}, {"0", 0},
	} {
		r := decodeOK(t, "#cloud-config\nwrite_files:\n- path: /etc/x\n  permissions: "+tc.perms+"\n")
		if got := r.Files[0].Mode; got != tc.want {
			t.Errorf("permissions %s: mode %o, want %o", tc.perms, got, tc.want)
		}
	}
}

func TestCloudConfigKubebootKey(t *testing.T) {
	docs := strings.Split(testConfig, "---\n")
	for _, tc := range []struct{ name, body string }{
		{"string", "kubeboot: |\n" + indent(testConfig, "  ")},
		{"list", "kubeboot:\n" + "- " + strings.TrimSpace(indent(docs[0], "  ")) + "\n- " + strings.TrimSpace(indent(docs[1], "  ")) + "\n- " + strings.TrimSpace(indent(docs[2], "  ")) + "\n"},
		{"mapping", "kubeboot:\n" + indent(docs[2], "  ")},
		{"anchors", "x: &tok abcdef.0123456789abcdef\nkubeboot:\n  apiVersion: kubeadm.k8s.io/v1beta4\n  kind: InitConfiguration\n  bootstrapTokens:\n  - token: *tok\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := decodeOK(t, "#cloud-config\n"+tc.body)
			if len(r.Config) == 0 || checkKubebootYAML(r.Config) != nil {
				t.Fatalf("Config = %q", r.Config)
			}
			if tc.name == "string" && string(r.Config) != testConfig {
				t.Errorf("Config = %q", r.Config)
			}
			if tc.name == "list" && strings.Count(string(r.Config), "---\n") != 2 {
				t.Errorf("Config = %q", r.Config)
			}
			if tc.name == "anchors" && !strings.Contains(string(r.Config), "token: abcdef.0123456789abcdef") {
				t.Errorf("Config = %q", r.Config)
			}
		})
	}
}

func TestPlainKubebootYAML(t *testing.T) {
	r := decodeOK(t, testConfig)
	if r.Format != FormatKubebootYAML || string(r.Config) != testConfig || len(r.Files) != 0 {
		t.Errorf("Result = %+v", r)
	}
	r = decodeOK(t, string(gz(t, []byte(testConfig))))
	if r.Format != FormatKubebootYAML || string(r.Config) != testConfig {
		t.Errorf("gzip: Result = %+v", r)
	}
}
