package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// kubebootConfig is test/node's single-node configuration.
func kubebootConfig(images string) string {
	return fmt.Sprintf(`# The node's name and address come from the machine (hostname, default route).
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  # cgroup v1 here: the kubelet runs with failCgroupV1: false (see below).
  ignorePreflightErrors: [SystemVerification]
timeouts:
  controlPlaneComponentHealthCheck: 5m
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
networking:
  podSubnet: 10.244.0.0/16
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
---
apiVersion: kubeboot.dev/v1alpha1
kind: BootConfiguration
imageArchiveDir: %s
podNetwork:
  builtin: true
`, images)
}

// TestSingleNodeInit proves that a kubelet works in the harness: `kubeboot
// init` on kb-1, the kubelet started by Node.Boot, the Node Ready through
// admin.conf over the bridge. It takes 1-2 minutes, so it runs only with
// KUBEBOOT_CLUSTER_INIT=1; the multi-node test supersedes it.
func TestSingleNodeInit(t *testing.T) {
	if os.Getenv("KUBEBOOT_CLUSTER_INIT") != "1" {
		t.Skip("set KUBEBOOT_CLUSTER_INIT=1 to run `kubeboot init` on one node of the harness (1-2 min)")
	}
	c := New(t, 1)
	k8sBin, kubeboot := Env(t, "KUBEBOOT_K8S_BIN"), Env(t, "KUBEBOOT_BIN")
	n := c.Nodes[0]
	if err := n.WriteFile("/etc/kubeboot/config.yaml", []byte(kubebootConfig(Env(t, "KUBEBOOT_IMAGES"))), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	if _, err := n.Boot(ctx, k8sBin, kubeboot, "init", "--config", "/etc/kubeboot/config.yaml", "-v", "1"); err != nil {
		t.Fatal(err)
	}
	initDone := time.Since(start)
	cl, err := n.Clients()
	if err != nil {
		t.Fatal(err)
	}
	if got := cl.Config.Host; got != "https://"+n.IP+":6443" {
		t.Errorf("admin.conf's server %s, want the node's address", got)
	}
	if err := WaitNodeReady(ctx, cl.Typed, n.Name, 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("BENCH kb-1: kubeboot init %s, node Ready %s after its start", initDone.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	// The pods are in the node's cgroup, not in the host's /kubepods.
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/cpu", n.CgroupRoot(), "kubepods")); err != nil {
		t.Errorf("kubelet's pods cgroup: %v", err)
	}
}
