package node

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/cri"
	"github.com/kubeboot/kubeboot/pkg/images"
	"github.com/kubeboot/kubeboot/pkg/postinstall"
	"github.com/kubeboot/kubeboot/test/containerdconf"
	"github.com/kubeboot/kubeboot/test/probeimage"
)

const (
	nodeIP    = "10.250.0.2"
	gatewayIP = "10.250.0.1"
	nodeName  = "kb-node"
	probeRef  = probeimage.Ref
)

type node struct {
	t        *testing.T
	dir      string
	sandbox  Sandbox
	procs    []*exec.Cmd
	mu       sync.Mutex
	k8sBin   string
	kubeboot string
	images   string
}

func (n *node) start(name string, args []string, env []string) *exec.Cmd {
	log, err := os.Create(filepath.Join(n.dir, name+".log"))
	if err != nil {
		n.t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("start %s: %v", name, err)
	}
	n.mu.Lock()
	n.procs = append(n.procs, cmd)
	n.mu.Unlock()
	return cmd
}

func (n *node) tail(name string, lines int) string {
	data, _ := os.ReadFile(filepath.Join(n.dir, name+".log"))
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

func env(t *testing.T, name string) string {
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run this test with `make e2e-node`", name)
	}
	return v
}

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

// probeArchive writes the test workload's image archive.
func probeArchive(t *testing.T, dir, bin string) string {
	p, err := probeimage.Archive(dir, bin)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNode(t *testing.T) {
	if !InSandbox() {
		t.Skip("runs only inside the sandbox `make e2e-node` creates (private mount, network and UTS namespaces, as root)")
	}
	n := &node{t: t, dir: t.TempDir(), k8sBin: env(t, "KUBEBOOT_K8S_BIN"), kubeboot: env(t, "KUBEBOOT_BIN"), images: env(t, "KUBEBOOT_IMAGES")}
	probe := probeArchive(t, n.dir, env(t, "KUBEBOOT_PROBE"))
	hosts := filepath.Join(n.dir, "hosts")
	os.WriteFile(hosts, []byte(fmt.Sprintf("127.0.0.1 localhost\n%s %s\n", nodeIP, nodeName)), 0o644)
	if err := n.sandbox.Enter(hosts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.teardown)
	if err := syscall.Sethostname([]byte(nodeName)); err != nil {
		t.Fatal(err)
	}
	if err := Network(nodeIP, gatewayIP); err != nil {
		t.Fatal(err)
	}
	os.WriteFile("/etc/containerd/config.toml", []byte(containerdconf.Render(images.Pause(config.Defaults()), "/usr/lib/cni")), 0o644)
	n.start("containerd", []string{"containerd", "--config", "/etc/containerd/config.toml"}, nil)
	waitFor(t, 30*time.Second, "containerd socket", func() bool { _, err := os.Stat("/run/containerd/containerd.sock"); return err == nil })

	cfgFile := filepath.Join(n.dir, "config.yaml")
	os.WriteFile(cfgFile, []byte(kubebootConfig(n.images)), 0o600)

	path := n.k8sBin + ":" + os.Getenv("PATH")
	start := time.Now()
	n.initNode(cfgFile, path)
	joinSecretAt := time.Since(start)

	cs := clients(t)
	ctx := context.Background()
	n.waitReady(ctx, cs)
	readyAt := time.Since(start)
	waitFor(t, 5*time.Minute, "every kube-system pod Running and ready", func() bool { return allRunning(ctx, cs, "kube-system") })
	runningAt := time.Since(start)
	t.Logf("BENCH kubeboot start → join secret written %s, → node Ready %s, → all kube-system pods Running %s",
		joinSecretAt.Round(time.Millisecond), readyAt.Round(time.Millisecond), runningAt.Round(time.Millisecond))
	n.componentTimes(ctx)

	t.Run("control-plane labels and taint", func(t *testing.T) {
		nd, _ := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if _, ok := nd.Labels["node-role.kubernetes.io/control-plane"]; !ok {
			t.Errorf("labels %v", nd.Labels)
		}
		found := false
		for _, tn := range nd.Spec.Taints {
			found = found || tn.Key == "node-role.kubernetes.io/control-plane"
		}
		if !found {
			t.Errorf("taints %v", nd.Spec.Taints)
		}
		if nd.Status.Addresses[0].Address != nodeIP {
			t.Errorf("node address %v, want %s", nd.Status.Addresses, nodeIP)
		}
	})
	t.Run("readyz", func(t *testing.T) {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil || string(body) != "ok" {
			t.Errorf("/readyz: %q %v", body, err)
		}
	})
	t.Run("workloads", func(t *testing.T) {
		imp := cri.Containerd{Address: "/run/containerd/containerd.sock"}
		if _, err := imp.Import(ctx, probe); err != nil {
			t.Fatalf("import the probe image: %v", err)
		}
		n.workloads(ctx, cs)
	})
	t.Run("reset leaves nothing, and init works again", func(t *testing.T) {
		n.stopKubelet()
		out, err := exec.Command(n.kubeboot, "reset", "--config", cfgFile).CombinedOutput()
		if err != nil {
			t.Fatalf("kubeboot reset: %v\n%s", err, out)
		}
		t.Logf("kubeboot reset:\n%s", out)
		n.checkClean(ctx)
		n.initNode(cfgFile, path)
		n.waitReady(ctx, clients(t))
	})
}

// initNode runs `kubeboot init` for real and starts the kubelet when its
// files are written, as systemd would.
func (n *node) initNode(cfgFile, path string) {
	t := n.t
	var kubeletOnce sync.Once
	kb := exec.Command(n.kubeboot, "init", "--config", cfgFile, "-v", "1")
	kb.Env = append(os.Environ(), "PATH="+path)
	var out bytes.Buffer
	pr, pw := io.Pipe()
	kb.Stdout, kb.Stderr = pw, pw
	var outMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			outMu.Lock()
			out.WriteString(line + "\n")
			outMu.Unlock()
			// No systemd here: the harness is the kubelet's supervisor, and
			// starts it the moment kubelet-start has written its files.
			if strings.HasPrefix(line, "[kubelet-start]") {
				kubeletOnce.Do(func() { n.startKubelet(path) })
			}
		}
	}()
	if err := kb.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- kb.Wait(); pw.Close() }()
	select {
	case err := <-done:
		outMu.Lock()
		t.Logf("kubeboot init:\n%s", out.String())
		outMu.Unlock()
		if err != nil {
			t.Fatalf("kubeboot init failed: %v\nkubelet:\n%s", err, n.tail("kubelet", 30))
		}
	case <-time.After(10 * time.Minute):
		kb.Process.Kill()
		t.Fatalf("kubeboot init did not finish:\n%s", out.String())
	}
}

func (n *node) waitReady(ctx context.Context, cs kubernetes.Interface) {
	waitFor(n.t, 3*time.Minute, "node Ready", func() bool {
		nd, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range nd.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	})
}

func (n *node) startKubelet(path string) {
	env, _ := os.ReadFile("/var/lib/kubelet/kubeadm-flags.env")
	flags := strings.Trim(strings.TrimPrefix(strings.TrimSpace(string(env)), "KUBELET_KUBEADM_ARGS="), `"`)
	// The command line of kubelet.service with kubeboot's drop-in.
	args := []string{filepath.Join(n.k8sBin, "kubelet"),
		"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf", "--kubeconfig=/etc/kubernetes/kubelet.conf",
		"--config=/var/lib/kubelet/config.yaml"}
	args = append(args, strings.Fields(flags)...)
	n.start("kubelet", args, []string{"PATH=" + path})
}

func clients(t *testing.T) kubernetes.Interface {
	c, err := postinstall.NewClients("/etc/kubernetes/admin.conf")
	if err != nil {
		t.Fatal(err)
	}
	return c.Typed
}

func allRunning(ctx context.Context, cs kubernetes.Interface, ns string) bool {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) == 0 {
		return false
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning {
			return false
		}
		for _, c := range p.Status.ContainerStatuses {
			if !c.Ready {
				return false
			}
		}
	}
	return true
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s", what, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func probePod(name string, labels map[string]string, args ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			Tolerations:   []corev1.Toleration{{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "probe", Image: probeRef, ImagePullPolicy: corev1.PullNever, Args: args}},
		},
	}
}

// workloads: CoreDNS answers the API service's name from a pod, and a
// ClusterIP Service reaches a pod through kube-proxy (nftables mode).
func (n *node) workloads(ctx context.Context, cs kubernetes.Interface) {
	t := n.t
	pods := cs.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, probePod("server", map[string]string{"app": "probe"}, "serve"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "probe"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "probe"},
		Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
	}}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "server pod Running", func() bool {
		p, err := pods.Get(ctx, "server", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning
	})
	for _, c := range []struct {
		name, want string
		args       []string
	}{
		{"dns", "10.96.0.1", []string{"dns", "kubernetes.default.svc.cluster.local"}},
		{"service", "200 hello from server", []string{"get", "http://probe.default.svc.cluster.local/"}},
	} {
		if _, err := pods.Create(ctx, probePod("client-"+c.name, nil, c.args...), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var log string
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			b, err := pods.GetLogs("client-"+c.name, &corev1.PodLogOptions{}).DoRaw(ctx)
			if err == nil && len(b) > 0 {
				log = string(b)
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if !strings.Contains(log, c.want) {
			t.Errorf("%s from a pod: got %q, want %q", c.name, log, c.want)
		}
	}
}

func (n *node) teardown() {
	n.mu.Lock()
	procs := n.procs
	n.mu.Unlock()
	if n.t.Failed() {
		for _, name := range []string{"kubelet", "containerd"} {
			n.t.Logf("---- %s (last lines)\n%s", name, n.tail(name, 40))
		}
	}
	// kubelet first (it would restart what we stop), then every container,
	// then containerd.
	for _, p := range procs {
		if strings.HasSuffix(p.Path, "kubelet") {
			syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			p.Wait()
		}
	}
	if out, err := exec.Command("sh", "-c", `for t in $(ctr -n k8s.io tasks ls -q); do ctr -n k8s.io tasks kill -s SIGKILL "$t"; done; sleep 1; for t in $(ctr -n k8s.io tasks ls -q); do ctr -n k8s.io tasks rm -f "$t"; done; ctr -n k8s.io containers rm $(ctr -n k8s.io containers ls -q) 2>/dev/null; true`).CombinedOutput(); err != nil {
		n.t.Logf("container cleanup: %v %s", err, out)
	}
	// Shims outlive containerd; they are in this test's process group tree
	// only through containerd, so find them by their socket directory.
	exec.Command("pkill", "-9", "-f", "containerd-shim-runc-v2 -namespace k8s.io").Run()
	for _, p := range procs {
		syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
	}
	for _, p := range procs {
		p.Wait()
	}
	CleanCgroups()
	n.sandbox.Leave()
}

func (n *node) stopKubelet() {
	n.mu.Lock()
	defer n.mu.Unlock()
	kept := n.procs[:0]
	for _, p := range n.procs {
		if strings.HasSuffix(p.Path, "kubelet") {
			syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			p.Wait()
			continue
		}
		kept = append(kept, p)
	}
	n.procs = kept
}

// checkClean asserts that reset left no kubeboot file, container, rule or
// bridge behind.
func (n *node) checkClean(ctx context.Context) {
	t := n.t
	c, err := cri.Dial(ctx, "unix:///run/containerd/containerd.sock")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if sbs, err := c.Sandboxes(ctx); err != nil || len(sbs) != 0 {
		t.Errorf("pod sandboxes after reset: %v %v", sbs, err)
	}
	filepath.Walk("/etc/kubernetes", func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			t.Errorf("left after reset: %s", p)
		}
		return nil
	})
	// Mount points (here: the sandbox's tmpfs) are emptied, not removed.
	for _, d := range []string{"/var/lib/etcd", "/var/lib/kubeboot"} {
		if entries, _ := os.ReadDir(d); len(entries) > 0 {
			t.Errorf("left after reset: %s holds %d entries", d, len(entries))
		}
	}
	for _, p := range []string{"/var/lib/kubelet/config.yaml", "/var/lib/kubelet/kubeadm-flags.env",
		"/etc/cni/net.d/10-kubeboot-bridge.conflist", "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("left after reset: %s", p)
		}
	}
	if out, _ := exec.Command("nft", "list", "tables").Output(); strings.Contains(string(out), "kube-proxy") {
		t.Errorf("nftables after reset:\n%s", out)
	}
	for _, table := range []string{"filter", "nat"} {
		if out, _ := exec.Command("iptables", "-t", table, "-S").Output(); strings.Contains(string(out), "KUBE-") {
			t.Errorf("iptables %s after reset:\n%s", table, out)
		}
	}
	if out, _ := exec.Command("ip", "link", "show", "cni0").CombinedOutput(); !strings.Contains(string(out), "does not exist") {
		t.Errorf("cni0 after reset: %s", out)
	}
}

// componentTimes logs each control-plane container's creation relative to
// the first one, from the runtime, for the benchmark record.
func (n *node) componentTimes(ctx context.Context) {
	c, err := cri.Dial(ctx, "unix:///run/containerd/containerd.sock")
	if err != nil {
		return
	}
	defer c.Close()
	var first time.Time
	times := map[string]time.Time{}
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "coredns", "kube-proxy"} {
		cs, err := c.Containers(ctx, name)
		if err != nil || len(cs) == 0 {
			continue
		}
		at := cs[len(cs)-1].CreatedAt
		times[name] = at
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	var parts []string
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "coredns", "kube-proxy"} {
		if at, ok := times[name]; ok {
			parts = append(parts, fmt.Sprintf("%s +%s", name, at.Sub(first).Round(time.Millisecond)))
		}
	}
	n.t.Logf("BENCH container created (from the first): %s", strings.Join(parts, ", "))
}
