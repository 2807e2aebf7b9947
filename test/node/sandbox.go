// Package node runs `kubeboot init` for real on this machine, inside a
// sandbox the test builds: private mount, network and UTS namespaces (made
// by `make e2e-node` with unshare), tmpfs over every directory kubeboot,
// the kubelet and containerd write, a veth pair with the node's address,
// Debian's containerd and the project-built kubelet.
package node

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// privateDirs are the directories the node writes; each gets a tmpfs in
// the sandbox's mount namespace, so nothing reaches the host.
var privateDirs = []string{
	"/etc/kubernetes", "/etc/containerd", "/etc/cni/net.d", "/etc/modules-load.d", "/etc/sysctl.d",
	"/etc/systemd/system/kubelet.service.d", "/etc/kubeboot",
	"/var/lib/kubelet", "/var/lib/etcd", "/var/lib/kubeboot", "/var/lib/containerd", "/var/lib/cni",
	"/var/log/pods", "/var/log/containers", "/var/log/kubernetes",
	"/run/containerd", "/run/netns", "/run/kubeboot", "/usr/libexec/kubernetes",
}

// Sandbox is the node's private world.
type Sandbox struct {
	created []string // mount points this test had to create on the host
	mounted []string
}

// InSandbox tells whether the process runs in the namespaces make made.
func InSandbox() bool { return os.Getenv("KUBEBOOT_NODE_SANDBOX") == "1" }

// Enter mounts the private directories and a hosts file.
func (s *Sandbox) Enter(hosts string) error {
	for _, d := range privateDirs {
		if _, err := os.Stat(d); os.IsNotExist(err) {
			// The mount point itself lands on the host: remember to remove it.
			top := d
			for p := filepath.Dir(d); p != "/"; p = filepath.Dir(p) {
				if _, err := os.Stat(p); os.IsNotExist(err) {
					top = p
				}
			}
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			s.created = append(s.created, top)
		}
		if err := syscall.Mount("tmpfs", d, "tmpfs", 0, "mode=0755,size=8g"); err != nil {
			return fmt.Errorf("mount tmpfs on %s: %w", d, err)
		}
		s.mounted = append(s.mounted, d)
	}
	if err := syscall.Mount(hosts, "/etc/hosts", "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s over /etc/hosts: %w", hosts, err)
	}
	s.mounted = append(s.mounted, "/etc/hosts")
	return nil
}

// Leave unmounts everything (lazily: the kubelet leaves nested mounts) and
// removes the mount points it created.
func (s *Sandbox) Leave() {
	for i := len(s.mounted) - 1; i >= 0; i-- {
		syscall.Unmount(s.mounted[i], syscall.MNT_DETACH)
	}
	for _, d := range s.created {
		os.RemoveAll(d)
	}
}

// Network gives the node an address and a default route inside its own
// network namespace; the peer end stays inside too, so nothing leaves.
func Network(node, gateway string) error {
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "kb0", "type", "veth", "peer", "name", "kb1"},
		{"addr", "add", node + "/24", "dev", "kb0"},
		{"addr", "add", gateway + "/24", "dev", "kb1"},
		{"link", "set", "kb0", "up"},
		{"link", "set", "kb1", "up"},
		{"route", "add", "default", "via", gateway, "src", node},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// CleanCgroups removes the kubelet's cgroups from the host's (shared)
// cgroup v1 hierarchies once every container is gone.
func CleanCgroups() {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods*")
	unified, _ := filepath.Glob("/sys/fs/cgroup/unified/kubepods*")
	for _, r := range append(roots, unified...) {
		var dirs []string
		filepath.Walk(r, func(p string, info os.FileInfo, err error) error {
			if err == nil && info.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			syscall.Rmdir(dirs[i])
		}
	}
}
