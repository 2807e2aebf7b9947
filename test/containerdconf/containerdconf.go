// Package containerdconf is the containerd configuration the node and
// cluster tests give Debian's containerd 1.6: the settings these machines
// need (../shared/docs/environment.md), and the CNI plugin directory each
// test chooses.
package containerdconf

import "fmt"

// Render returns config.toml for a containerd at the standard paths, with
// pause as the sandbox image and the CNI plugins in cniBinDir.
func Render(pause, cniBinDir string) string {
	return fmt.Sprintf(`version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  # Root here lacks CAP_SYS_RESOURCE: runc cannot set the sandbox's
  # oom_score_adj otherwise.
  restrict_oom_score_adj = true
  sandbox_image = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
`, pause, cniBinDir)
}
