package cluster

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestSandbox proves the harness: three nodes, each with its own hostname,
// containerd, network namespace, sysfs and files, that reach each other by
// name over the bridge.
func TestSandbox(t *testing.T) {
	start := time.Now()
	c := New(t, 3)
	t.Logf("BENCH sandbox with 3 nodes up in %s", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kb1, kb2 := c.Node("kb-1"), c.Node("kb-2")

	t.Run("containerd and hostname", func(t *testing.T) {
		for _, n := range c.Nodes {
			out, err := n.Run(ctx, "ctr", "--address", "/run/containerd/containerd.sock", "version")
			if err != nil || !strings.Contains(out, "Server:") {
				t.Errorf("%s: ctr version: %v\n%s", n.Name, err, out)
			}
			if out, err := n.Run(ctx, "hostname"); err != nil || strings.TrimSpace(out) != n.Name {
				t.Errorf("%s: hostname %q %v", n.Name, out, err)
			}
		}
	})
	t.Run("names resolve", func(t *testing.T) {
		start := time.Now()
		out, err := kb1.Run(ctx, "getent", "hosts", "kb-2")
		if err != nil || strings.Fields(out)[0] != kb2.IP {
			t.Errorf("getent hosts kb-2 in kb-1: %q %v", out, err)
		}
		// Other names fail at once (the stub's NXDOMAIN), not after a timeout.
		if out, err := kb1.Run(ctx, "getent", "hosts", "nowhere.example"); err == nil {
			t.Errorf("getent hosts nowhere.example: %q", out)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("two lookups took %s", d)
		}
	})
	t.Run("TCP and ICMP between nodes", func(t *testing.T) {
		probe := Env(t, "KUBEBOOT_PROBE")
		if err := kb2.Start("probe", []string{probe, "serve"}, nil); err != nil {
			t.Fatal(err)
		}
		defer kb2.Stop("probe")
		want := "hello from kb-2"
		// From kb-1, by name, with bash's /dev/tcp (no client needed).
		get := `exec 3<>/dev/tcp/kb-2/8080 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3`
		var out string
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if out, err = kb1.Run(ctx, "bash", "-c", get); err == nil && strings.Contains(out, want) {
				break
			}
		}
		if !strings.Contains(out, want) {
			t.Errorf("kb-1 → kb-2:8080: %v\n%s\nprobe:\n%s", err, out, kb2.Tail("probe", 5))
		}
		// From the test process, over the bridge.
		resp, err := http.Get("http://" + kb2.IP + ":8080/")
		if err != nil {
			t.Fatalf("test process → kb-2: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), want) {
			t.Errorf("test process → kb-2: %q", body)
		}
		if _, err := exec.LookPath("busybox"); err != nil {
			t.Log("no busybox here: ICMP not checked")
			return
		}
		if out, err := kb1.Run(ctx, "busybox", "ping", "-c", "1", "-W", "2", c.Node("kb-3").IP); err != nil {
			t.Errorf("ping kb-3 from kb-1: %v\n%s", err, out)
		}
	})
	t.Run("CNI plugins in /opt/cni/bin", func(t *testing.T) {
		for _, n := range c.Nodes {
			if _, err := n.Run(ctx, "test", "-x", "/opt/cni/bin/bridge"); err != nil {
				t.Error(err)
			}
		}
	})
	t.Run("sysfs shows the node's links only", func(t *testing.T) {
		for _, n := range c.Nodes {
			sys, err := n.Run(ctx, "ls", "/sys/class/net")
			if err != nil {
				t.Fatal(err)
			}
			links, err := n.Run(ctx, "ip", "-o", "link", "show")
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, l := range strings.Split(strings.TrimSpace(links), "\n") {
				f := strings.Fields(l)
				want = append(want, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
			}
			got := strings.Fields(sys)
			sort.Strings(got)
			sort.Strings(want)
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("%s: /sys/class/net %v, netlink %v", n.Name, got, want)
			}
			for _, host := range []string{Bridge, "kbc-" + n.Name} {
				if strings.Contains(" "+strings.Join(got, " ")+" ", " "+host+" ") {
					t.Errorf("%s: /sys/class/net shows %s of the outer namespace", n.Name, host)
				}
			}
			mac, _ := n.Run(ctx, "cat", "/sys/class/net/eth0/address")
			if !strings.Contains(links, strings.TrimSpace(mac)) || strings.TrimSpace(mac) == "" {
				t.Errorf("%s: eth0's address in sysfs %q is not its netlink one", n.Name, mac)
			}
		}
	})
	t.Run("files are private", func(t *testing.T) {
		for _, p := range []string{"/etc/kubernetes/harness-probe", "/etc/harness-probe", "/var/lib/harness-probe", "/opt/cni/bin/harness-probe", "/run/harness-probe", "/root/harness-probe"} {
			if _, err := kb1.Run(ctx, "sh", "-c", "echo kb-1 > "+p); err != nil {
				t.Fatal(err)
			}
			if data, err := kb1.ReadFile(p); err != nil || string(data) != "kb-1\n" {
				t.Errorf("kb-1 %s through the agent's root: %q %v", p, data, err)
			}
			if out, err := kb2.Run(ctx, "cat", p); err == nil {
				t.Errorf("kb-2 sees kb-1's %s: %q", p, out)
			}
			// The test process sees the host's file system.
			if _, err := os.Stat(p); err == nil {
				t.Errorf("the host sees kb-1's %s", p)
			}
		}
	})
	t.Run("cgroups", func(t *testing.T) {
		for _, n := range c.Nodes {
			out, err := n.Run(ctx, "cat", "/proc/self/cgroup")
			if err != nil || !strings.Contains(out, "pids:"+n.CgroupRoot()+"\n") {
				t.Errorf("%s: a command's cgroups: %v\n%s", n.Name, err, out)
			}
			for _, h := range []string{"cpu", "memory", "pids", "systemd"} {
				if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", h, n.CgroupRoot())); err != nil {
					t.Errorf("%s: the kubelet's cgroup root: %v", n.Name, err)
				}
			}
		}
	})
}
