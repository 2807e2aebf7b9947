package cri

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/pkg/config"
)

const (
	// Debian 12's /etc/containerd/config.toml: no sandbox image, no cgroup
	// setting.
	debianV2 = `version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
`
	// What `containerd config default` prints, edited as the Kubernetes
	// docs say.
	kubeV2 = `version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10.2"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true
`
	// containerd 2.x's own format.
	kubeV3 = `version = 3
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'native'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = 'registry.k8s.io/pause:3.10'
[plugins.'io.containerd.cri.v1.runtime']
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'crun'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crun.options]
      SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      SystemdCgroup = true
`
	// A version 1 file (no version key), as containerd 1.4 wrote them.
	oldV1 = `[plugins.cri]
  sandbox_image = "k8s.gcr.io/pause:3.2"
  [plugins.cri.containerd.runtimes.runc.options]
    SystemdCgroup = true
`
	// Docker's containerd.io package.
	dockerCRIOff = `disabled_plugins = ["cri"]
`
)

const pause = "registry.k8s.io/pause:3.10.2"

func TestContainerdConfig(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name          string
		data          string
		version       int
		sandbox       string
		runtime       string
		snapshotter   string
		systemd       *bool
		runtimeVer    string
		sandboxWarn   string // substring; "" means no warning
		kubeletDriver string
		cgroupErr     string // substring; "" means no error
		criErr        string
	}{
		{
			name: "debian default", data: debianV2, version: 2, runtime: "runc", snapshotter: "overlayfs",
			runtimeVer: "1.6.20~ds1",
			sandboxWarn: `containerd 1.6.20~ds1 sets no sandbox image in /etc/containerd/config.toml and uses its default registry.k8s.io/pause:3.6, but kubeadm's pause image is registry.k8s.io/pause:3.10.2` +
				`: pods will need an image that is not imported; set sandbox_image = "registry.k8s.io/pause:3.10.2" under [plugins."io.containerd.grpc.v1.cri"] in /etc/containerd/config.toml and restart containerd`,
			kubeletDriver: "systemd",
			cgroupErr: `cgroup driver mismatch: the KubeletConfiguration has cgroupDriver: systemd, but containerd's runtime "runc" uses cgroupfs (SystemdCgroup is not set in /etc/containerd/config.toml): ` +
				`set SystemdCgroup = true under [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options] in /etc/containerd/config.toml and restart containerd, or set cgroupDriver: cgroupfs in the KubeletConfiguration`,
		},
		{
			name: "debian default, cgroupfs kubelet", data: debianV2, version: 2, runtime: "runc", snapshotter: "overlayfs",
			runtimeVer: "v2.4.2", kubeletDriver: "cgroupfs",
		},
		{
			name: "kubernetes docs v2", data: kubeV2, version: 2, sandbox: pause, runtime: "runc", snapshotter: "overlayfs", systemd: &yes,
			kubeletDriver: "systemd",
		},
		{
			name: "kubernetes docs v2, cgroupfs kubelet", data: kubeV2, version: 2, sandbox: pause, runtime: "runc", snapshotter: "overlayfs", systemd: &yes,
			kubeletDriver: "cgroupfs",
			cgroupErr:     `containerd's runtime "runc" uses systemd (SystemdCgroup = true in /etc/containerd/config.toml): set SystemdCgroup = false under [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options] in /etc/containerd/config.toml and restart containerd, or set cgroupDriver: systemd in the KubeletConfiguration`,
		},
		{
			name: "v3 with another runtime", data: kubeV3, version: 3, sandbox: "registry.k8s.io/pause:3.10", runtime: "crun", snapshotter: "native", systemd: &no,
			sandboxWarn:   `containerd's sandbox image is registry.k8s.io/pause:3.10 (/etc/containerd/config.toml), but kubeadm's pause image is registry.k8s.io/pause:3.10.2: pods will need an image that is not imported; set sandbox = 'registry.k8s.io/pause:3.10.2' under [plugins.'io.containerd.cri.v1.images'.pinned_images] in /etc/containerd/config.toml and restart containerd`,
			kubeletDriver: "systemd",
			cgroupErr:     `set SystemdCgroup = true under [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.crun.options]`,
		},
		{
			name: "v1", data: oldV1, version: 1, sandbox: "k8s.gcr.io/pause:3.2", runtime: "runc", snapshotter: "overlayfs", systemd: &yes,
			sandboxWarn:   `set sandbox_image = "registry.k8s.io/pause:3.10.2" under [plugins.cri] in`,
			kubeletDriver: "systemd",
		},
		{
			name: "containerd 2.4 default sandbox", data: "version = 3\n", version: 3, runtime: "runc", snapshotter: "overlayfs",
			runtimeVer: "v2.4.2", kubeletDriver: "cgroupfs",
		},
		{
			name: "unknown containerd default", data: "version = 3\n", version: 3, runtime: "runc", snapshotter: "overlayfs",
			runtimeVer: "v2.9.0", kubeletDriver: "cgroupfs",
			sandboxWarn: "containerd sets no sandbox image in /etc/containerd/config.toml, so it uses its built-in default, which may not be kubeadm's pause image",
		},
		{
			name: "CRI disabled", data: dockerCRIOff, version: 1, runtime: "runc", snapshotter: "overlayfs",
			runtimeVer: "1.6.20", sandboxWarn: "uses its default registry.k8s.io/pause:3.6", kubeletDriver: "cgroupfs",
			criErr: `containerd's CRI plugin is disabled in /etc/containerd/config.toml: remove "cri" from disabled_plugins and restart containerd`,
		},
		{
			name: "bad kubelet driver", data: kubeV2, version: 2, sandbox: pause, runtime: "runc", snapshotter: "overlayfs", systemd: &yes,
			kubeletDriver: "system", cgroupErr: `kubelet cgroupDriver "system": expected systemd or cgroupfs`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseContainerdConfig(DefaultContainerdConfig, []byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if c.Version != tc.version || c.SandboxImage != tc.sandbox || c.Runtime != tc.runtime || c.Snapshotter != tc.snapshotter {
				t.Errorf("parsed version %d sandbox %q runtime %q snapshotter %q; want %d %q %q %q",
					c.Version, c.SandboxImage, c.Runtime, c.Snapshotter, tc.version, tc.sandbox, tc.runtime, tc.snapshotter)
			}
			if (c.SystemdCgroup == nil) != (tc.systemd == nil) || (c.SystemdCgroup != nil && *c.SystemdCgroup != *tc.systemd) {
				t.Errorf("SystemdCgroup = %v, want %v", c.SystemdCgroup, tc.systemd)
			}
			w := c.CheckSandboxImage(pause, tc.runtimeVer)
			if (w == "") != (tc.sandboxWarn == "") || !strings.Contains(w, tc.sandboxWarn) {
				t.Errorf("sandbox warning:\n got %q\nwant %q", w, tc.sandboxWarn)
			}
			checkErr(t, "cgroup driver", c.CheckCgroupDriver(tc.kubeletDriver), tc.cgroupErr)
			checkErr(t, "CRI", c.CheckCRI(), tc.criErr)
		})
	}
}

func checkErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: unexpected error %v", what, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%s:\n got %v\nwant %q", what, err, want)
	}
}

func TestReadContainerdConfig(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "config.toml")
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(main, "imports = [\"conf.d/*.toml\"]\n"+debianV2)
	write(filepath.Join(dir, "conf.d", "10-cgroup.toml"), `version = 2
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = true
`)
	write(filepath.Join(dir, "conf.d", "20-sandbox.toml"), `version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.9"
`)
	c, err := ReadContainerdConfig(main)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Files) != 3 || c.SandboxImage != "registry.k8s.io/pause:3.9" || c.SystemdCgroup == nil || !*c.SystemdCgroup {
		t.Errorf("merged: files %q sandbox %q systemd %v", c.Files, c.SandboxImage, c.SystemdCgroup)
	}
	// Fixes name the file that set the value.
	if w := c.CheckSandboxImage(pause, ""); !strings.Contains(w, "in "+filepath.Join(dir, "conf.d", "20-sandbox.toml")+" and restart") {
		t.Errorf("sandbox fix names the wrong file: %s", w)
	}
	checkErr(t, "cgroup", c.CheckCgroupDriver("cgroupfs"), "(SystemdCgroup = true in "+filepath.Join(dir, "conf.d", "10-cgroup.toml")+")")

	// No file: containerd's defaults.
	c, err = ReadContainerdConfig(filepath.Join(dir, "absent.toml"))
	if err != nil || c.SandboxImage != "" || c.Runtime != "runc" || c.SystemdCgroup != nil {
		t.Errorf("absent file: %+v, %v", c, err)
	}
	// Broken TOML says where.
	write(main, "version = 2\n[plugins\n")
	if _, err := ReadContainerdConfig(main); err == nil || !strings.Contains(err.Error(), main+":2:") {
		t.Errorf("broken file: %v, want an error with the line", err)
	}
	write(main, "version = 7\n")
	checkErr(t, "version", func() error { _, err := ReadContainerdConfig(main); return err }(), "version 7: expected 1, 2 or 3")
}

func TestCheckContainerd(t *testing.T) {
	cfg := config.Defaults()
	c, err := ParseContainerdConfig(DefaultContainerdConfig, []byte(kubeV2))
	if err != nil {
		t.Fatal(err)
	}
	// kubeboot's defaults: cgroupDriver systemd, pause 3.10.2.
	if w, err := CheckContainerd(c, cfg, "1.6.20"); w != "" || err != nil {
		t.Errorf("matching: %q, %v", w, err)
	}
	cfg.Kubelet.CgroupDriver = "cgroupfs"
	cfg.Cluster.ImageRepository = "mirror.example/k8s"
	w, err := CheckContainerd(c, cfg, "1.6.20")
	if !strings.Contains(w, "kubeadm's pause image is mirror.example/k8s/pause:3.10.2") || err == nil {
		t.Errorf("mismatching: %q, %v", w, err)
	}
	off, _ := ParseContainerdConfig(DefaultContainerdConfig, []byte(dockerCRIOff))
	if _, err := CheckContainerd(off, cfg, ""); err == nil || !strings.Contains(err.Error(), "CRI plugin is disabled") {
		t.Errorf("CRI off: %v", err)
	}
}
