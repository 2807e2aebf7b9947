package userdata

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

func TestApply(t *testing.T) {
	root := testRoot(t)
	writeTree(t, root, map[string]string{
		"etc/only-append":                "old\n",
		"home/core/.ssh/authorized_keys": "ssh-ed25519 EXISTING old@host",
		"usr/share/zoneinfo/UTC":         "TZif",
	})
	// merged /usr: /bin is a relative link into the root.
	os.Symlink("usr/bin", filepath.Join(root, "bin"))
	os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
	cfg := `{
  "ignition": {"version": "3.4.0"},
  "storage": {
    "files": [
      {"path": "/etc/hello", "mode": 420, "contents": {"source": "data:,hello%0A"}, "append": [{"source": "data:,more%0A"}]},
      {"path": "/etc/only-append", "append": [{"source": "data:,new%0A"}]},
      {"path": "/bin/tool", "mode": 493, "user": {"id": 1000}, "group": {"id": 1000}, "contents": {"source": "data:,%23!/bin/sh"}},
      {"path": "/etc/kubeboot/config.yaml", "mode": 384, "contents": {"source": "data:;base64,` + b64([]byte(testConfig)) + `"}}
    ],
    "directories": [{"path": "/var/lib/data/sub", "mode": 448, "user": {"id": 2379}}],
    "links": [
      {"path": "/etc/localtime", "target": "../usr/share/zoneinfo/UTC"},
      {"path": "/etc/hello-hard", "target": "/etc/hello", "hard": true}
    ]
  },
  "systemd": {"units": [
    {"name": "hello.service", "enabled": true, "contents": "[Service]\nExecStart=/bin/true\n", "dropins": [{"name": "10-a.conf", "contents": "[Service]\n"}]},
    {"name": "docker.service", "mask": true}
  ]},
  "passwd": {"users": [{"name": "core", "sshAuthorizedKeys": ["ssh-ed25519 NEWKEY new@host", "ssh-ed25519 EXISTING old@host"]}]}
}`
	r := decodeOK(t, cfg)
	w := rootfs.Writer{Root: root}
	if err := r.Apply(w); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
		}
		return string(b)
	}
	mode := func(p string) os.FileMode {
		st, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return st.Mode().Perm()
	}
	if got := read("etc/hello"); got != "hello\nmore\n" {
		t.Errorf("/etc/hello = %q", got)
	}
	if got := read("etc/only-append"); got != "old\nnew\n" {
		t.Errorf("/etc/only-append = %q", got)
	}
	if got := read("usr/bin/tool"); got != "#!/bin/sh" || mode("usr/bin/tool") != 0o755 {
		t.Errorf("/bin/tool through the /bin link = %q %v", got, mode("usr/bin/tool"))
	}
	if read("etc/kubeboot/config.yaml") != testConfig || mode("etc/kubeboot/config.yaml") != 0o600 {
		t.Errorf("config: mode %v", mode("etc/kubeboot/config.yaml"))
	}
	if mode("var/lib/data/sub") != 0o700 {
		t.Errorf("directory mode %v", mode("var/lib/data/sub"))
	}
	if tgt, _ := os.Readlink(filepath.Join(root, "etc/localtime")); tgt != "../usr/share/zoneinfo/UTC" {
		t.Errorf("/etc/localtime -> %q", tgt)
	}
	a, _ := os.Stat(filepath.Join(root, "etc/hello"))
	b, _ := os.Stat(filepath.Join(root, "etc/hello-hard"))
	if !os.SameFile(a, b) {
		t.Error("hard link is not the same file")
	}
	if read("etc/systemd/system/hello.service") == "" || read("etc/systemd/system/hello.service.d/10-a.conf") != "[Service]\n" {
		t.Error("unit or drop-in missing")
	}
	if tgt, _ := os.Readlink(filepath.Join(root, "etc/systemd/system/docker.service")); tgt != "/dev/null" {
		t.Errorf("mask -> %q", tgt)
	}
	if got := read("home/core/.ssh/authorized_keys"); got != "ssh-ed25519 EXISTING old@host\nssh-ed25519 NEWKEY new@host\n" {
		t.Errorf("authorized_keys = %q", got)
	}
	if mode("home/core/.ssh") != 0o700 || mode("home/core/.ssh/authorized_keys") != 0o600 {
		t.Error("ssh modes")
	}
	if os.Geteuid() == 0 {
		st, _ := os.Stat(filepath.Join(root, "home/core/.ssh/authorized_keys"))
		if uid, gid := ownerOf(st); uid != 1000 || gid != 1000 {
			t.Errorf("authorized_keys owner %d:%d", uid, gid)
		}
	}
	// A second Apply changes nothing and fails on nothing (idempotent),
	// except that overwrite: false on /etc/hello now finds it in the way.
	if err := r.Apply(w); err == nil || !strings.Contains(err.Error(), "/etc/hello: exists and overwrite is false") {
		t.Errorf("second Apply: %v", err)
	}
}

func TestApplyConflictsWriteNothing(t *testing.T) {
	for _, tc := range []struct {
		name, cfg, want string
		setup           func(root string)
	}{
		{"file exists", ignFiles(`{"path":"/etc/new","contents":{"source":"data:,x"}},{"path":"/etc/exists","contents":{"source":"data:,x"}}`),
			"/etc/exists: exists and overwrite is false",
			func(root string) { os.WriteFile(filepath.Join(root, "etc/exists"), []byte("keep"), 0o644) }},
		{"link escapes", ignFiles(`{"path":"/etc/new","contents":{"source":"data:,x"}},{"path":"/evil/x","contents":{"source":"data:,x"}}`),
			"climbs above the root",
			func(root string) { os.Symlink("../../../../../../tmp", filepath.Join(root, "evil")) }},
		{"directory in the way", ignFiles(`{"path":"/etc/new","contents":{"source":"data:,x"}},{"path":"/etc/dir","overwrite":true,"contents":{"source":"data:,x"}}`),
			"a directory is in the way",
			func(root string) { os.MkdirAll(filepath.Join(root, "etc/dir"), 0o755) }},
		{"unknown ssh user", `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/new","contents":{"source":"data:,x"}}]},"passwd":{"users":[{"name":"ghost","sshAuthorizedKeys":["ssh-ed25519 AAAA"]}]}}`,
			`user "ghost" is not in the image's /etc/passwd`, func(string) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := testRoot(t)
			tc.setup(root)
			r := decodeOK(t, tc.cfg)
			before := listTree(t, root)
			err := r.Apply(rootfs.Writer{Root: root})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "userdata: test: ") {
				t.Fatalf("Apply: %v, want %q", err, tc.want)
			}
			if after := listTree(t, root); after != before {
				t.Errorf("root changed:\n%s\n->\n%s", before, after)
			}
		})
	}
}

func TestResolveLinkTarget(t *testing.T) {
	for _, tc := range []struct {
		link, target, want string
		ok                 bool
	}{
		{"/etc/localtime", "../usr/share/zoneinfo/UTC", "/usr/share/zoneinfo/UTC", true},
		{"/etc/localtime", "../../x", "", false},
		{"/x", "..", "", false},
		{"/x", "y", "/y", true},
		{"/a/b/c", "../../d", "/d", true},
		{"/a/b/c", "/abs", "/abs", true},
	} {
		got, err := rootfs.ResolveLinkTarget(tc.link, tc.target)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ResolveLinkTarget(%q, %q) = %q, %v", tc.link, tc.target, got, err)
		}
	}
}
