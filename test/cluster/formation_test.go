package cluster

import (
	"context"
	"errors"
	"filippo.io/age"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubeboot/kubeboot/firstboot"
	"github.com/kubeboot/kubeboot/pkg/etcdmember"
	"github.com/kubeboot/kubeboot/pkg/joinsecret"
	"github.com/kubeboot/kubeboot/pkg/rendezvous/rendezvoustest"
	"github.com/kubeboot/kubeboot/test/probeimage"
)

// formationConfig is what every machine boots: the same bytes on each.
// Only the cgroup v1 allowances of this host differ from a production
// configuration (../shared/docs/environment.md).
func formationConfig(rendezvousURL, images string, id *age.X25519Identity) string {
	return fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  ignorePreflightErrors: [SystemVerification]
timeouts:
  controlPlaneComponentHealthCheck: 6m
  kubeletHealthCheck: 6m
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
uploadCerts: true
manifests: [/etc/kubeboot/addons]
# Sealed: the rendezvous store (and whoever reads it) sees only age's
# ciphertext; every machine holds the identity that opens it.
joinSecret:
  recipients: [%s]
join:
  identity: %s
cluster:
  rendezvous:
    url: %s
    controlPlaneReplicas: 2
    leaseDuration: 3m
`, images, id.Recipient(), id, rendezvousURL)
}

const configPath = "/etc/kubeboot/config.yaml"

type booted struct {
	node *Node
	role string // init, control-plane or worker
	out  string
	err  error
	took time.Duration
}

var roleLine = regexp.MustCompile(`\[rendezvous\] (?:.* running (init)|joining as (control-plane|worker))`)

// TestFormation boots three machines from one configuration with a
// rendezvous store, then checks the cluster they formed, joins a fourth
// machine with real kubeadm, and kills joining nodes at every phase
// boundary to see them converge.
func TestFormation(t *testing.T) {
	c := New(t, 4)
	k8sBin, kubeboot := Env(t, "KUBEBOOT_K8S_BIN"), Env(t, "KUBEBOOT_BIN")
	images, addons := Env(t, "KUBEBOOT_IMAGES"), Env(t, "KUBEBOOT_ADDONS")
	// In the log directory: the nodes see it (their /tmp is their own).
	probe, err := probeimage.Archive(c.Dir, Env(t, "KUBEBOOT_PROBE"))
	if err != nil {
		t.Fatal(err)
	}
	store := rendezvoustest.NewStore()
	url, stop, err := store.Serve(Gateway + ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	cfg := formationConfig(url+"/cluster-a", images, id)
	flannel, err := os.ReadFile(filepath.Join(addons, "flannel.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	machines := c.Nodes[:3]
	for _, n := range machines {
		if err := n.WriteFile(configPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := n.WriteFile("/etc/kubeboot/addons/flannel.yaml", flannel, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	start := time.Now()
	results := make([]*booted, len(machines))
	var wg sync.WaitGroup
	for i, n := range machines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := &booted{node: n}
			began := time.Now()
			b.out, b.err = n.Boot(ctx, k8sBin, kubeboot, "init", "--config", configPath)
			b.took = time.Since(began)
			if m := roleLine.FindStringSubmatch(b.out); m != nil {
				b.role = m[1] + m[2]
			}
			results[i] = b
		}()
	}
	wg.Wait()
	formed := time.Since(start)
	byRole := map[string][]*booted{}
	for _, b := range results {
		if b.err != nil {
			t.Fatalf("%s (%s): %v", b.node.Name, b.role, b.err)
		}
		byRole[b.role] = append(byRole[b.role], b)
	}
	if len(byRole["init"]) != 1 || len(byRole["control-plane"]) != 1 || len(byRole["worker"]) != 1 {
		t.Fatalf("roles: want one init, one control-plane join and one worker join, got %v", roles(results))
	}
	first, second, worker := byRole["init"][0].node, byRole["control-plane"][0].node, byRole["worker"][0].node
	t.Logf("roles: init %s, control plane %s, worker %s", first.Name, second.Name, worker.Name)

	admin, err := first.Clients()
	if err != nil {
		t.Fatal(err)
	}
	cs := admin.Typed
	for _, n := range machines {
		if err := WaitNodeReady(ctx, cs, n.Name, 5*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	allReady := time.Since(start)
	t.Logf("BENCH identical boot of 3 machines: all kubeboot runs done %s, all 3 nodes Ready %s", formed.Round(time.Millisecond), allReady.Round(time.Millisecond))
	for _, b := range results {
		t.Logf("BENCH %s (%s): kubeboot init → done (node Ready) %s; %s", b.node.Name, b.role, b.took.Round(time.Millisecond), phaseTimes(b.out))
	}

	t.Run("the rendezvous holds the join secret sealed", func(t *testing.T) {
		doc, ok := store.Object("/cluster-a/join-secret")
		if !ok {
			t.Fatal("no join secret at the rendezvous")
		}
		if !joinsecret.IsSealed(doc) || strings.Contains(string(doc), "token") {
			t.Errorf("the join secret at the rendezvous is not sealed:\n%.200s", doc)
		}
		if _, err := joinsecret.Open("rendezvous", doc, []age.Identity{id}); err != nil {
			t.Errorf("the identity does not open it: %v", err)
		}
	})
	t.Run("etcd has two voting members", func(t *testing.T) { checkEtcd(t, ctx, first, []string{first.Name, second.Name}) })
	t.Run("both API servers healthy; the second serves with the first stopped", func(t *testing.T) {
		checkAPIServers(t, ctx, first, second)
	})
	t.Run("pods on different nodes reach each other and a ClusterIP service over flannel", func(t *testing.T) {
		for _, n := range machines {
			if out, err := n.Run(ctx, "ctr", "--address", "/run/containerd/containerd.sock", "-n", "k8s.io", "images", "import", probe); err != nil {
				t.Fatalf("%s: import the probe image: %v\n%s", n.Name, err, out)
			}
		}
		checkPodNetwork(t, ctx, cs, worker.Name, second.Name)
	})
	t.Run("real kubeadm join of a fourth machine", func(t *testing.T) {
		kubeadmJoin(t, ctx, c.Nodes[3], first, cs, k8sBin, images, id)
	})
	t.Run("a worker killed at every phase boundary converges", func(t *testing.T) {
		rejoinWithKills(t, ctx, worker, k8sBin, kubeboot, cs, firstboot.JoinPhases(false))
	})
	t.Run("worker join with images present, for the benchmark", func(t *testing.T) {
		resetNode(t, ctx, worker, kubeboot, cs)
		start := time.Now()
		out, err := worker.Boot(ctx, k8sBin, kubeboot, "init", "--config", configPath)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		t.Logf("BENCH kubeboot worker join (images present) %s: start → done (node Ready) %s; %s", worker.Name, time.Since(start).Round(time.Millisecond), phaseTimes(out))
	})
	t.Run("a control plane killed at every phase boundary converges", func(t *testing.T) {
		rejoinWithKills(t, ctx, second, k8sBin, kubeboot, cs, firstboot.JoinPhases(true))
		checkEtcd(t, ctx, first, []string{first.Name, second.Name})
	})
}

func roles(bs []*booted) map[string]string {
	m := map[string]string{}
	for _, b := range bs {
		m[b.node.Name] = b.role
	}
	return m
}

// phaseTimes picks the flow's total and its slow phases from kubeboot's
// timeline (the join flow's starts after the rendezvous).
func phaseTimes(out string) string {
	var parts []string
	if m := regexp.MustCompile(`(?m)^total\s+(\S+)`).FindStringSubmatch(out); m != nil {
		parts = append(parts, "flow total "+m[1])
	}
	re := regexp.MustCompile(`(?m)^(\S+)\s+(\d+(?:\.\d+)?(?:ms|s|m\d+(?:\.\d+)?s))\s+done`)
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		if d, err := time.ParseDuration(m[2]); err == nil && d >= 300*time.Millisecond {
			parts = append(parts, m[1]+" "+m[2])
		}
	}
	return strings.Join(parts, ", ")
}

// etcdClient talks to the cluster's etcd with the first node's API
// server client certificate.
func etcdClient(t *testing.T, n *Node) etcdmember.Client {
	tls, err := etcdmember.ClientTLS(n.Path("/etc/kubernetes/pki/etcd/ca.crt"),
		n.Path("/etc/kubernetes/pki/apiserver-etcd-client.crt"), n.Path("/etc/kubernetes/pki/apiserver-etcd-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	return etcdmember.Client{Endpoints: []string{"https://" + n.IP + ":2379"}, TLS: tls}
}

// checkEtcd: exactly these members, all started voters (no learner left
// behind, no member that never started).
func checkEtcd(t *testing.T, ctx context.Context, n *Node, names []string) {
	var got []string
	var last []etcdmember.MemberStatus
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ms, err := etcdClient(t, n).Members(ctx)
		if err == nil {
			last, got = ms, nil
			ok := true
			for _, m := range ms {
				got = append(got, m.Name)
				ok = ok && m.Started && !m.Learner
			}
			sort.Strings(got)
			want := slices.Clone(names)
			sort.Strings(want)
			if ok && slices.Equal(got, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd members %v (%v), want voters %v", last, err, names)
		}
		time.Sleep(time.Second)
	}
}

// nodeClient talks to one node's API server with the admin identity.
func nodeClient(t *testing.T, admin *Node, target *Node) *kubernetes.Clientset {
	c, err := admin.Clients()
	if err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(c.Config)
	cfg.Host = "https://" + target.IP + ":6443"
	cfg.Timeout = 10 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func readyz(ctx context.Context, cs *kubernetes.Clientset) error {
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return err
	}
	if string(body) != "ok" {
		return fmt.Errorf("/readyz: %s", body)
	}
	return nil
}

func waitUntil(t *testing.T, timeout time.Duration, what string, ok func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := ok()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func checkAPIServers(t *testing.T, ctx context.Context, first, second *Node) {
	one, two := nodeClient(t, first, first), nodeClient(t, first, second)
	for _, c := range []*kubernetes.Clientset{one, two} {
		waitUntil(t, 3*time.Minute, "/readyz", func() error { return readyz(ctx, c) })
	}
	manifest, parked := "/etc/kubernetes/manifests/kube-apiserver.yaml", "/etc/kubernetes/kube-apiserver.yaml.parked"
	if err := os.Rename(first.Path(manifest), first.Path(parked)); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := os.Rename(first.Path(parked), first.Path(manifest)); err != nil {
			t.Error(err)
		}
		waitUntil(t, 3*time.Minute, first.Name+"'s API server back", func() error { return readyz(ctx, one) })
	}()
	waitUntil(t, 2*time.Minute, first.Name+"'s API server stopped", func() error {
		if readyz(ctx, one) == nil {
			return errors.New("still serving")
		}
		return nil
	})
	cms := two.CoreV1().ConfigMaps("default")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "written-without-the-first"}, Data: map[string]string{"by": second.Name}}
	waitUntil(t, time.Minute, "write through "+second.Name, func() error {
		_, err := cms.Create(ctx, cm, metav1.CreateOptions{})
		return err
	})
	got, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
	if err != nil || got.Data["by"] != second.Name {
		t.Fatalf("read back through %s: %v %v", second.Name, got, err)
	}
	if nodes, err := two.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil || len(nodes.Items) < 3 {
		t.Fatalf("list nodes through %s: %v", second.Name, err)
	}
}

func probePod(name, node string, args ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeName:      node,
			Tolerations:   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "probe", Image: probeimage.Ref, ImagePullPolicy: corev1.PullNever, Args: args}},
		},
	}
}

func checkPodNetwork(t *testing.T, ctx context.Context, cs kubernetes.Interface, serverNode, clientNode string) {
	pods := cs.CoreV1().Pods("default")
	if _, err := pods.Create(ctx, probePod("server", serverNode, "serve"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "probe"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "server"},
		Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
	}}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var ip string
	waitUntil(t, 3*time.Minute, "server pod Running", func() error {
		p, err := pods.Get(ctx, "server", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			return fmt.Errorf("phase %s", p.Status.Phase)
		}
		ip = p.Status.PodIP
		return nil
	})
	for _, c := range []struct{ name, url string }{
		{"pod-to-pod", "http://" + ip + ":8080/"},
		{"service", "http://probe.default.svc.cluster.local/"},
	} {
		if _, err := pods.Create(ctx, probePod("client-"+c.name, clientNode, "get", c.url), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		want := "200 hello from server"
		waitUntil(t, 3*time.Minute, c.name+" from "+clientNode+" to "+serverNode, func() error {
			b, err := pods.GetLogs("client-"+c.name, &corev1.PodLogOptions{}).DoRaw(ctx)
			if err != nil {
				return err
			}
			if !strings.Contains(string(b), want) {
				return fmt.Errorf("log %q", b)
			}
			return nil
		})
	}
}

// kubeadmJoin joins n with real kubeadm, with the token and CA hash of
// kubeboot's join secret: kubeboot clusters are kubeadm clusters.
func kubeadmJoin(t *testing.T, ctx context.Context, n, first *Node, cs kubernetes.Interface, k8sBin, images string, id age.Identity) {
	doc, err := first.ReadFile("/var/lib/kubeboot/join-secret.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := joinsecret.Open("first node", doc, []age.Identity{id})
	if err != nil {
		t.Fatal(err)
	}
	// What kubeboot's host and images phases do on the others, by hand, as
	// a kubeadm user does it.
	if out, err := n.Run(ctx, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward; echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null; true"); err != nil {
		t.Fatalf("sysctls: %v\n%s", err, out)
	}
	archives, _ := filepath.Glob(filepath.Join(images, "*.tar"))
	for _, a := range archives {
		if out, err := n.Run(ctx, "ctr", "--address", "/run/containerd/containerd.sock", "-n", "k8s.io", "images", "import", a); err != nil {
			t.Fatalf("import %s: %v\n%s", path.Base(a), err, out)
		}
	}
	start := time.Now()
	out, err := n.Boot(ctx, k8sBin, filepath.Join(k8sBin, "kubeadm"), "join", s.APIServerEndpoint, "--token", s.Token,
		"--discovery-token-ca-cert-hash", s.CACertHashes[0], "--ignore-preflight-errors", "SystemVerification,FileExisting-crictl,FileExisting-conntrack", "--node-name", n.Name)
	if err != nil {
		t.Fatalf("kubeadm join: %v\n%s", err, out)
	}
	done := time.Since(start)
	if err := WaitNodeReady(ctx, cs, n.Name, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("BENCH real kubeadm join (worker) %s: kubeadm join → done %s, → node Ready %s", n.Name, done.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// kubeadm reads kubeboot's kube-system/kubeadm-certs with the join
	// secret's certificate key, as a kubeadm control-plane join would.
	out, err = n.Run(ctx, filepath.Join(k8sBin, "kubeadm"), "join", "phase", "control-plane-prepare", "download-certs", s.APIServerEndpoint,
		"--control-plane", "--certificate-key", s.CertificateKey, "--token", s.Token, "--discovery-token-ca-cert-hash", s.CACertHashes[0])
	if err != nil {
		t.Fatalf("kubeadm join phase control-plane-prepare download-certs: %v\n%s", err, out)
	}
	for _, f := range []string{"ca.key", "sa.key", "front-proxy-ca.key", "etcd/ca.key"} {
		got, err1 := n.ReadFile("/etc/kubernetes/pki/" + f)
		want, err2 := first.ReadFile("/etc/kubernetes/pki/" + f)
		if err1 != nil || err2 != nil || string(got) != string(want) {
			t.Errorf("kubeadm's download of %s from kubeboot's upload differs from the first node's (%v, %v)", f, err1, err2)
		}
	}
}

// rejoinWithKills resets a joined node, then joins it again through the
// same `kubeboot init` and rendezvous, killing kubeboot (SIGKILL) after
// each phase of its flow in turn, each run resuming the last: every
// boundary is crossed once by a killed run. The last run must complete
// and the node be Ready.
func rejoinWithKills(t *testing.T, ctx context.Context, n *Node, k8sBin, kubeboot string, cs kubernetes.Interface, phases []firstboot.Phase) {
	resetNode(t, ctx, n, kubeboot, cs)
	start := time.Now()
	killed := 0
	for _, p := range phases {
		out, err := n.Boot(ctx, k8sBin, "env", firstboot.FaultEnv+"="+p.Name, kubeboot, "init", "--config", configPath)
		var ee *exec.ExitError
		switch {
		case err == nil:
			// The phase is not in this run's flow (or ran before): nothing killed.
		case errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
			killed++
		default:
			t.Fatalf("run killed after %s: %v\n%s", p.Name, err, out)
		}
	}
	out, err := n.Boot(ctx, k8sBin, kubeboot, "init", "--config", configPath)
	if err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}
	if err := WaitNodeReady(ctx, cs, n.Name, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if killed < len(phases)/2 {
		t.Errorf("only %d of %d runs were killed: the fault injection did not reach the join flow", killed, len(phases))
	}
	t.Logf("%s: %d runs killed at a phase boundary, then converged in %s", n.Name, killed, time.Since(start).Round(time.Millisecond))
}

// resetNode takes a joined node out: its kubelet stopped (the harness is
// its supervisor), `kubeboot reset`, and, as after kubeadm reset, its Node
// object deleted, or the old Ready condition would answer for the next
// kubelet.
func resetNode(t *testing.T, ctx context.Context, n *Node, kubeboot string, cs kubernetes.Interface) {
	n.Stop("kubelet")
	out, err := n.Run(ctx, kubeboot, "reset", "--config", configPath)
	if err != nil {
		t.Fatalf("kubeboot reset: %v\n%s", err, out)
	}
	t.Logf("%s: kubeboot reset:\n%s", n.Name, out)
	if err := cs.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}
