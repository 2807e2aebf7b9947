// Package cluster runs several Kubernetes nodes on this machine for
// end-to-end tests. `make e2e-cluster` runs the test binary in an outer
// sandbox (private mount, network and UTS namespaces made by unshare);
// there New puts up a bridge and, for each node, an agent process (the test
// binary again) in its own network, mount and UTS namespaces, with a veth
// on the bridge, a private file system (tmpfs /run, overlays over
// /etc, /var, /opt, /root and /tmp, tmpfs over the directories kubeboot, the
// kubelet and containerd write), a hosts file naming every node, a
// resolv.conf naming the test process's NXDOMAIN-only DNS stub, its own
// sysfs and its own containerd. The test runs commands in a node with
// Node.Command, and kubeboot or kubeadm with Node.Boot, which starts the
// node's kubelet as systemd would. Teardown leaves nothing on the host.
//
// Measured facts behind the choices: ../../../shared/docs/environment.md,
// "Several nodes on one machine".
package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/images"
	"github.com/kubeboot/kubeboot/pkg/postinstall"
)

const (
	// SandboxEnv is set to 1 by `make e2e-cluster` inside the outer sandbox.
	SandboxEnv = "KUBEBOOT_CLUSTER_SANDBOX"
	// RunEnv names the run's cgroups (kbc-NUMBER); make passes it to the
	// sweep that follows the test binary. Default: kbc-PID.
	RunEnv = "KUBEBOOT_CLUSTER_RUN"
	// LogsEnv is where the nodes' logs go (LOGS/TEST/NODE/*.log);
	// default: the test's temporary directory.
	LogsEnv = "KUBEBOOT_CLUSTER_LOGS"
	// SweepEnv makes the test binary run Sweep for that run and exit.
	SweepEnv = "KUBEBOOT_CLUSTER_SWEEP"

	// Bridge is the outer sandbox's bridge, Gateway its address.
	Bridge  = "kbc0"
	Gateway = "10.251.0.1"
)

// IP is node i's address (1-based): 10.251.0.(10+i).
func IP(i int) string { return fmt.Sprintf("10.251.0.%d", 10+i) }

// InSandbox tells whether the process runs in the sandbox make made.
func InSandbox() bool { return os.Getenv(SandboxEnv) == "1" }

// Env returns a variable `make e2e-cluster` sets, failing the test without it.
func Env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run this test with `make e2e-cluster`", name)
	}
	return v
}

// overlays are the node's copy-on-write views of the host's directories:
// anything the node creates there stays in its memory, mount points
// included, so the harness creates nothing on the host's disk (and does not
// race test/node, which creates and removes missing mount points). /tmp
// is one of them, not a tmpfs: a checkout (and so the binaries under test)
// may live there.
var overlays = []string{"/etc", "/var", "/opt", "/root", "/tmp"}

// privateDirs start empty in each node (tmpfs; test/node's list, plus
// /opt/cni/bin). Everything under /run is the node's already.
var privateDirs = []string{
	"/etc/kubernetes", "/etc/containerd", "/etc/cni/net.d", "/etc/modules-load.d", "/etc/sysctl.d",
	"/etc/systemd/system/kubelet.service.d", "/etc/kubeboot",
	"/var/lib/kubelet", "/var/lib/etcd", "/var/lib/kubeboot", "/var/lib/containerd", "/var/lib/cni",
	"/var/log/pods", "/var/log/containers", "/var/log/kubernetes",
	"/usr/libexec/kubernetes", "/opt/cni/bin",
}

// hostKnobs are global (not per network namespace) kernel settings a
// kubelet changes at start; teardown puts back what was there.
var hostKnobs = []string{
	"/proc/sys/vm/overcommit_memory", "/proc/sys/vm/panic_on_oom",
	"/proc/sys/kernel/panic", "/proc/sys/kernel/panic_on_oops",
	"/proc/sys/kernel/keys/root_maxkeys", "/proc/sys/kernel/keys/root_maxbytes",
}

// Cluster is the bridge and its nodes.
type Cluster struct {
	Nodes []*Node
	Run   string // the run's top cgroup, e.g. kbc-4242
	Dir   string // the nodes' log directories are Dir/NAME

	t     *testing.T
	knobs map[string]string
	dns   io.Closer
}

// New starts n nodes, kb-1 … kb-n at IP(1) … IP(n), with containerd
// answering in each, and registers their teardown. It skips the test
// outside the sandbox.
func New(t *testing.T, n int) *Cluster {
	t.Helper()
	if !InSandbox() {
		t.Skip("runs only inside the sandbox `make e2e-cluster` creates (private mount, network and UTS namespaces, as root)")
	}
	start := time.Now()
	c := &Cluster{t: t, Run: os.Getenv(RunEnv), knobs: map[string]string{}}
	if c.Run == "" {
		c.Run = fmt.Sprintf("kbc-%d", os.Getpid())
	}
	if !runName.MatchString(c.Run) {
		t.Fatalf("%s=%q: want kbc-NUMBER", RunEnv, c.Run)
	}
	if logs := os.Getenv(LogsEnv); logs != "" {
		c.Dir = filepath.Join(logs, regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_"))
		os.RemoveAll(c.Dir)
	} else {
		c.Dir = t.TempDir()
	}
	for _, k := range hostKnobs {
		if v, err := os.ReadFile(k); err == nil {
			c.knobs[k] = string(v)
		}
	}
	t.Cleanup(c.teardown)

	if err := c.bridge(); err != nil {
		t.Fatal(err)
	}
	dns, err := serveNXDOMAIN(Gateway + ":53")
	if err != nil {
		t.Fatal(err)
	}
	c.dns = dns
	ph, err := pidsHierarchy()
	if err != nil {
		t.Fatal(err)
	}
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&hosts, "%s kb-%d\n", IP(i), i)
	}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("kb-%d", i)
		nd := &Node{Name: name, IP: IP(i), Dir: filepath.Join(c.Dir, name), t: t,
			cgroup: "/" + c.Run + "/" + name, sups: map[string]*supervised{}}
		nd.procs = filepath.Join(ph, nd.cgroup, "cgroup.procs")
		c.Nodes = append(c.Nodes, nd)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, nd := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.startNode(nd, hosts.String())
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster: %d nodes up in %s (cgroups /%s/kb-N, logs in %s)", n, time.Since(start).Round(time.Millisecond), c.Run, c.Dir)
	return c
}

// Node returns the node called name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// bridge sets up the outer sandbox's network: lo, the bridge with the
// gateway address, forwarding (this network namespace's own setting).
func (c *Cluster) bridge() error {
	exec.Command("ip", "link", "del", Bridge).Run() // a previous test's, in this process
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", Bridge, "type", "bridge"},
		{"addr", "add", Gateway + "/24", "dev", Bridge},
		{"link", "set", Bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
}

// startNode starts the node's agent, wires its network namespace to the
// bridge, and waits until its containerd answers.
func (c *Cluster) startNode(n *Node, hosts string) error {
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return err
	}
	if err := makeCgroup(n.cgroup); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	params, _ := json.Marshal(agentParams{
		Name: n.Name, Hosts: hosts, Resolv: "nameserver " + Gateway + "\n", Cgroup: filepath.Dir(n.procs), Cni: "/usr/lib/cni",
		Pause: images.Pause(config.Defaults()), Overlays: overlays, Tmpfs: privateDirs,
	})
	agentLog, err := os.Create(filepath.Join(n.Dir, "agent.log"))
	if err != nil {
		return err
	}
	defer agentLog.Close()
	ctrLog, err := os.Create(filepath.Join(n.Dir, "containerd.log"))
	if err != nil {
		return err
	}
	defer ctrLog.Close()
	cmd := exec.Command("unshare", "--net", "--mount", "--uts", "--propagation", "private", self)
	cmd.Env = append(os.Environ(), AgentEnv+"="+string(params))
	cmd.Stderr = agentLog
	cmd.ExtraFiles = []*os.File{ctrLog}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if n.agentIn, err = cmd.StdinPipe(); err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start the agent: %w", n.Name, err)
	}
	n.agent, n.agentDone = cmd, make(chan struct{})
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		n.agentErr = cmd.Wait()
		close(n.agentDone)
	}()
	expect := func(want string) error {
		select {
		case l, ok := <-lines:
			if ok && l == want {
				return nil
			}
			return fmt.Errorf("%s: agent said %q, want %q:\n%s", n.Name, l, want, n.Tail("agent", 20))
		case <-time.After(90 * time.Second):
			return fmt.Errorf("%s: agent: no %q within 90 s:\n%s", n.Name, want, n.Tail("agent", 20))
		}
	}
	if err := expect(agentInNamespaces); err != nil {
		return err
	}
	// The node's end is eth0, moved into the agent's network namespace.
	veth := "kbc-" + n.Name
	pid := strconv.Itoa(n.PID())
	// A previous test's node of the same name may linger: the kernel frees
	// a dead network namespace (and its end of the veth) asynchronously.
	exec.Command("ip", "link", "del", veth).Run()
	for _, args := range [][]string{
		{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", pid},
		{"link", "set", veth, "master", Bridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: ip %s: %v: %s", n.Name, strings.Join(args, " "), err, out)
		}
	}
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"addr", "add", n.IP + "/24", "dev", "eth0"},
		{"link", "set", "eth0", "up"},
		{"route", "add", "default", "via", Gateway},
	} {
		nsArgs := append([]string{"-t", pid, "-n", "ip"}, args...)
		if out, err := exec.Command("nsenter", nsArgs...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: ip %s: %v: %s", n.Name, strings.Join(args, " "), err, out)
		}
	}
	if err := expect(agentReady); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, err := n.Run(ctx, "ctr", "--address", "/run/containerd/containerd.sock", "version")
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: containerd does not answer: %w\n%s", n.Name, err, n.Tail("containerd", 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// teardown: logs when the test failed, every node shut down (kubelet,
// containers, shims, containerd, agent), the run's cgroups swept and
// removed, the bridge deleted, the kubelet's global kernel settings put
// back.
func (c *Cluster) teardown() {
	t := c.t
	if t.Failed() {
		for _, n := range c.Nodes {
			for _, name := range []string{"kubelet", "containerd", "agent"} {
				if _, err := os.Stat(filepath.Join(n.Dir, name+".log")); err == nil {
					t.Logf("---- %s %s (last lines)\n%s", n.Name, name, n.Tail(name, 40))
				}
			}
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.shutdown(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if killed, err := Sweep(c.Run); err != nil {
		t.Errorf("teardown: %v", err)
	} else if killed > 0 {
		t.Errorf("teardown: %d processes were still in /%s after the agents exited", killed, c.Run)
	}
	if c.dns != nil {
		c.dns.Close()
	}
	for _, n := range c.Nodes {
		exec.Command("ip", "link", "del", "kbc-"+n.Name).Run()
	}
	exec.Command("ip", "link", "del", Bridge).Run()
	for k, v := range c.knobs {
		if now, err := os.ReadFile(k); err == nil && string(now) != v {
			if err := os.WriteFile(k, []byte(v), 0o644); err != nil {
				t.Errorf("teardown: restore %s to %s: %v", k, strings.TrimSpace(v), err)
			}
		}
	}
	t.Logf("cluster: torn down in %s", time.Since(start).Round(time.Millisecond))
}

// Clients returns API clients of the node's /etc/kubernetes/admin.conf
// (its server is a node address, reachable over the bridge).
func (n *Node) Clients() (*postinstall.Clients, error) {
	return postinstall.NewClients(n.Path("/etc/kubernetes/admin.conf"))
}

// WaitNodeReady waits until the Node called name is Ready.
func WaitNodeReady(ctx context.Context, cs kubernetes.Interface, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last string
	for {
		nd, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			last = "no Ready condition"
			for _, cond := range nd.Status.Conditions {
				if cond.Type == corev1.NodeReady {
					if cond.Status == corev1.ConditionTrue {
						return nil
					}
					last = fmt.Sprintf("Ready=%s: %s", cond.Status, cond.Message)
				}
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not Ready within %s: %s", name, timeout, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// serveNXDOMAIN answers every DNS query over UDP with "no such name": the
// nodes' resolver (and CoreDNS's upstream, through it) gets an answer at
// once for names not in /etc/hosts. The host's nameserver is out of the
// sandbox's reach, and the ICMP errors that would say so are rate-limited:
// lookups then cost a 5 s timeout each (glibc asks for AAAA records even of
// names /etc/hosts has).
func serveNXDOMAIN(addr string) (io.Closer, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("dns stub: %w", err)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			// Header (12 bytes), then the question: a name, type and class.
			end := 12
			for end < n && buf[end] != 0 {
				end += int(buf[end]) + 1
			}
			end += 5
			if n < 12 || end > n {
				continue
			}
			resp := append([]byte(nil), buf[:end]...)
			resp[2] = 0x80 | buf[2]&0x79 // a response; opcode and RD kept
			resp[3] = 0x80 | 3           // RA, NXDOMAIN
			clear(resp[6:12])            // no answer, authority or additional records
			pc.WriteTo(resp, from)
		}
	}()
	return pc, nil
}
