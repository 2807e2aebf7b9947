package userdata

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func ignFiles(files string) string {
	return `{"ignition":{"version":"3.4.0"},"storage":{"files":[` + files + `]}}`
}

func TestBadUserdata(t *testing.T) {
	bomb := gz(t, bytes.Repeat([]byte{0}, MaxDecompressed+1))
	srvURL := flakyServer(t, 0, []byte("payload")).URL
	cases := []struct {
		name, data, want string
	}{
		{"empty", "", "userdata is empty"},
		{"white space", " \n\t\n", "userdata is empty"},
		{"unknown format", "hello world\n", "unrecognized userdata format"},
		{"yaml not kubeboot", "apiVersion: v1\nkind: Pod\n", "not a kubeboot configuration group"},
		{"yaml without kubeadm", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n", "no kubeadm.k8s.io or kubeboot.dev document"},
		{"yaml broken", "apiVersion: kubeadm.k8s.io/v1beta4\nkind: [\n", "YAML"},
		{"shell script", "#!/bin/sh\nrm -rf /\n", "shell script userdata is not supported"},
		{"include", "#include\nhttp://example.invalid/x\n", `"#include" is not supported`},
		{"ignition bad json", `{"ignition":`, "ignition"},
		{"ignition 2.x", `{"ignition":{"version":"2.3.0"}}`, "ignition"},
		{"ignition 4.0", `{"ignition":{"version":"4.0.0"}}`, "ignition"},
		{"ignition no version", `{"storage":{}}`, "ignition"},
		{"ignition relative path", ignFiles(`{"path":"etc/x"}`), "ignition"},
		{"ignition dotdot path", ignFiles(`{"path":"/etc/../../x"}`), "ignition"},
		{"ignition mode too big", ignFiles(`{"path":"/etc/x","mode":70000}`), "ignition"},
		{"ignition negative mode", ignFiles(`{"path":"/etc/x","mode":-1}`), "mode"},
		{"ignition negative uid", ignFiles(`{"path":"/etc/x","user":{"id":-5}}`), "user -5: not a valid ID"},
		{"ignition unknown user", ignFiles(`{"path":"/etc/x","user":{"name":"nobody-here"}}`), `user "nobody-here": not in the image's /etc/passwd`},
		{"ignition unknown group", ignFiles(`{"path":"/etc/x","group":{"name":"nogroup-here"}}`), `group "nogroup-here"`},
		{"ignition hash mismatch", ignFiles(`{"path":"/etc/x","contents":{"source":"data:,abc","verification":{"hash":"sha256-` + strings.Repeat("0", 64) + `"}}}`), "verification failed"},
		{"ignition bad compression", ignFiles(`{"path":"/etc/x","contents":{"source":"data:,abc","compression":"gzip"}}`), "gzip"},
		{"ignition s3 source", ignFiles(`{"path":"/etc/x","contents":{"source":"s3://bucket/key"}}`), "only data:, http and https"},
		{"ignition tftp source", ignFiles(`{"path":"/etc/x","contents":{"source":"tftp://10.0.0.1/x"}}`), "only data:, http and https"},
		{"ignition bad data url", ignFiles(`{"path":"/etc/x","contents":{"source":"data:;base64,!!!"}}`), "invalid data"},
		{"ignition http 404", ignFiles(`{"path":"/etc/x","contents":{"source":"` + srvURL + `/missing?sig=SECRET"}}`), "404"},
		{"ignition gzip bomb", ignFiles(`{"path":"/etc/x","contents":{"compression":"gzip","source":"data:;base64,` + b64(bomb) + `"}}`), "exceeds 64 MiB"},
		{"ignition config not kubeboot", ignFiles(`{"path":"/etc/kubeboot/config.yaml","contents":{"source":"data:,kind:%20Pod"}}`), "kubeboot configuration"},
		{"ignition symlink escapes", `{"ignition":{"version":"3.4.0"},"storage":{"links":[{"path":"/etc/x","target":"../../../etc/shadow"}]}}`, "points outside the root"},
		{"ignition abs symlink dotdot", `{"ignition":{"version":"3.4.0"},"storage":{"links":[{"path":"/etc/x","target":"/../../etc/shadow"}]}}`, "escapes the root"},
		{"ignition hard link dotdot", `{"ignition":{"version":"3.4.0"},"storage":{"links":[{"path":"/etc/x","target":"/a/../../b","hard":true}]}}`, "hard link target"},
		{"ignition dir mode", `{"ignition":{"version":"3.4.0"},"storage":{"directories":[{"path":"/d","mode":99999}]}}`, "ignition"},
		{"ignition unit slash", `{"ignition":{"version":"3.4.0"},"systemd":{"units":[{"name":"../../etc/passwd.service","contents":"x"}]}}`, "ignition"},
		{"ignition replace loop", `{"ignition":{"version":"3.4.0","config":{"replace":{"source":"data:,%7B%22ignition%22%3A%7B%22version%22%3A%223.4.0%22%2C%22config%22%3A%7B%22replace%22%3A%7B%22source%22%3A%22data%3A%2C%257B%257D%22%7D%7D%7D%7D"}}}}`, "ignition"},
		{"cloud-config not a mapping", "#cloud-config\n- a\n- b\n", "top level is not a mapping"},
		{"cloud-config bad yaml", "#cloud-config\nwrite_files: [\n", "YAML"},
		{"cloud-config duplicate key", "#cloud-config\nhostname: a\nhostname: b\n", "given twice"},
		{"cloud-config relative path", "#cloud-config\nwrite_files:\n- path: etc/x\n", "not absolute"},
		{"cloud-config dotdot path", "#cloud-config\nwrite_files:\n- path: /etc/../../root/.ssh/authorized_keys\n", "escapes the root"},
		{"cloud-config no path", "#cloud-config\nwrite_files:\n- content: x\n", "empty path"},
		{"cloud-config bad permissions", "#cloud-config\nwrite_files:\n- path: /etc/x\n  permissions: '0999'\n", "not an octal mode"},
		{"cloud-config mode too big", "#cloud-config\nwrite_files:\n- path: /etc/x\n  permissions: '77777'\n", "not a file mode"},
		{"cloud-config bad owner", "#cloud-config\nwrite_files:\n- path: /etc/x\n  owner: ghost:ghost\n", `user "ghost"`},
		{"cloud-config empty group", "#cloud-config\nwrite_files:\n- path: /etc/x\n  owner: 'root:'\n", "want user[:group]"},
		{"cloud-config bad encoding", "#cloud-config\nwrite_files:\n- path: /etc/x\n  encoding: rot13\n  content: x\n", `encoding "rot13" is not supported`},
		{"cloud-config bad base64", "#cloud-config\nwrite_files:\n- path: /etc/x\n  encoding: b64\n  content: '***'\n", "base64"},
		{"cloud-config bad gzip", "#cloud-config\nwrite_files:\n- path: /etc/x\n  encoding: gz+b64\n  content: " + b64([]byte("not gzip")) + "\n", "gzip"},
		{"cloud-config gzip bomb", "#cloud-config\nwrite_files:\n- path: /etc/x\n  encoding: gz+b64\n  content: " + b64(bomb) + "\n", "exceeds 64 MiB"},
		{"cloud-config bad append", "#cloud-config\nwrite_files:\n- path: /etc/x\n  append: maybe\n", "not a boolean"},
		{"cloud-config write_files not list", "#cloud-config\nwrite_files: /etc/x\n", "not a list"},
		{"cloud-config bad hostname", "#cloud-config\nhostname: -bad_host-\n", "not an RFC 1123 host name"},
		{"cloud-config kubeboot not config", "#cloud-config\nkubeboot:\n  apiVersion: v1\n  kind: ConfigMap\n", "not a kubeboot configuration group"},
		{"cloud-config kubeboot scalar list", "#cloud-config\nkubeboot: [1, 2]\n", "not a mapping"},
		{"cloud-config billion laughs", laughs(), "YAML nodes"},
		{"cloud-config ssh key newline", "#cloud-config\nusers:\n- name: core\n  ssh_authorized_keys: [\"ssh-rsa AAA\\nssh-rsa BBB\"]\n", "more than one line"},
		{"multipart no boundary", "Content-Type: multipart/mixed\n\nbody\n", "without a boundary"},
		{"multipart bad media type", "Content-Type: ;;;\n\nbody\n", "Content-Type"},
		{"multipart too deep", nested(MaxMultipartDepth + 1), "nested deeper than 4"},
		{"multipart bad part", mimeMsg("b", part("text/cloud-config", "#cloud-config\nwrite_files: 3\n")), "not a list"},
		{"multipart bad transfer encoding", mimeMsg("b", part("text/plain", "x", "Content-Transfer-Encoding: uuencode")), "uuencode"},
		{"multipart bad base64 part", mimeMsg("b", part("text/plain", "!!!", "Content-Transfer-Encoding: base64")), "base64"},
		{"multipart unknown part format", mimeMsg("b", part("text/plain", "just text")), "unrecognized userdata format"},
		{"gzip garbage", "\x1f\x8bgarbage", "gzip"},
		{"gzip bomb", string(bomb), "exceeds 64 MiB"},
	}
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
	root := testRoot(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Decode(context.Background(), "file /tmp/"+strings.ReplaceAll(tc.name, " ", "-"), []byte(tc.data), quickFetch, root)
			if err == nil {
				t.Fatalf("no error; result %+v", r)
			}
			if r != nil {
				t.Errorf("result %+v with error", r)
			}
			var ue *Error
			if !errors.As(err, &ue) {
				t.Errorf("error %T is not *userdata.Error", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "userdata: file /tmp/") {
				t.Errorf("error does not name the source: %v", err)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not contain %q", msg, tc.want)
			}
			if strings.Contains(msg, "SECRET") {
				t.Errorf("error shows a query string: %v", err)
			}
		})
	}
}

// laughs is a "billion laughs" cloud-config.
func laughs() string {
	var b strings.Builder
	b.WriteString("#cloud-config\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// TestBadUserdataWritesNothing runs bad userdata through Find and Apply's
// caller path: no Result, so nothing under the root changes.
func TestBadUserdataWritesNothing(t *testing.T) {
	root := testRoot(t)
	file := filepath.Join(t.TempDir(), "userdata.ign")
	// The first file is fine, the second is not: neither may be written.
	data := ignFiles(`{"path":"/etc/good","contents":{"source":"data:,ok"}},{"path":"/etc/bad","user":{"name":"ghost"}}`)
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	before := listTree(t, root)
	r, err := Find(context.Background(), Sources{Root: root, File: file, Cmdline: "-", FwCfg: "-", BakedConfig: "-"})
	if err == nil || r != nil {
		t.Fatalf("Find = %+v, %v", r, err)
	}
	if !strings.HasPrefix(err.Error(), "userdata: file "+file+": ") {
		t.Errorf("error does not name the source: %v", err)
	}
	if after := listTree(t, root); after != before {
		t.Errorf("root changed:\n%s\n->\n%s", before, after)
	}
}

func listTree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil {
			b.WriteString(p + " " + info.Mode().String() + "\n")
		}
		return nil
	})
	return b.String()
}
