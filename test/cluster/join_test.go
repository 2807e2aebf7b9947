package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeboot/kubeboot/pkg/joinsecret"
)

// TestKubeadmJoin proves Node.Boot with real kubeadm: kb-1 is initialised
// by kubeboot, kb-2 joined as a worker by `kubeadm join` with the join
// secret kb-1 wrote, and both are Ready — two kubelets on one machine,
// each in its own cgroup root. Like TestSingleNodeInit it runs only with
// KUBEBOOT_CLUSTER_INIT=1.
func TestKubeadmJoin(t *testing.T) {
	if os.Getenv("KUBEBOOT_CLUSTER_INIT") != "1" {
		t.Skip("set KUBEBOOT_CLUSTER_INIT=1 to run `kubeboot init` and `kubeadm join` in the harness (about 1 min)")
	}
	c := New(t, 2)
	k8sBin, kubeboot, imgs := Env(t, "KUBEBOOT_K8S_BIN"), Env(t, "KUBEBOOT_BIN"), Env(t, "KUBEBOOT_IMAGES")
	kb1, kb2 := c.Nodes[0], c.Nodes[1]
	if err := kb1.WriteFile("/etc/kubeboot/config.yaml", []byte(kubebootConfig(imgs)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := kb1.Boot(ctx, k8sBin, kubeboot, "init", "--config", "/etc/kubeboot/config.yaml"); err != nil {
		t.Fatal(err)
	}
	data, err := kb1.ReadFile("/var/lib/kubeboot/join-secret.json")
	if err != nil {
		t.Fatal(err)
	}
	secret, err := joinsecret.Parse("kb-1", data)
	if err != nil {
		t.Fatal(err)
	}
	worker, _ := secret.JoinCommands(true)

	// What an administrator prepares on a machine before kubeadm join:
	// forwarding, a CNI configuration (kubeboot's built-in network is
	// kubeboot's own), the sandbox image.
	if _, err := kb2.Run(ctx, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil {
		t.Fatal(err)
	}
	conflist := `{"cniVersion": "1.0.0", "name": "harness", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.99.0/24"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
`
	if err := kb2.WriteFile("/etc/cni/net.d/10-harness.conflist", []byte(conflist), 0o644); err != nil {
		t.Fatal(err)
	}
	pause, _ := filepath.Glob(filepath.Join(imgs, "pause_*.tar"))
	if err := kb2.ImportImages(ctx, pause...); err != nil {
		t.Fatal(err)
	}

	args := strings.Fields(worker)
	args[0] = filepath.Join(k8sBin, "kubeadm")
	args = append(args, "--ignore-preflight-errors=SystemVerification")
	start := time.Now()
	if _, err := kb2.Boot(ctx, k8sBin, args...); err != nil {
		t.Fatal(err)
	}
	joined := time.Since(start)
	cl, err := kb1.Clients()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		if err := WaitNodeReady(ctx, cl.Typed, n.Name, 3*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("BENCH kb-2: kubeadm join %s, node Ready %s after its start", joined.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for _, n := range c.Nodes {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", n.CgroupRoot(), "kubepods")); err != nil {
			t.Errorf("%s: kubelet's pods cgroup: %v", n.Name, err)
		}
	}
}
