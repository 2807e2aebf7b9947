package preflight

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// joinConfig is what the join flow's preflight sees: a join configuration
// composed before discovery (defaults for the cluster's part), node1.
func joinConfig(t *testing.T, yaml string) (*config.Config, *config.JoinConfig) {
	t.Helper()
	j, err := config.LoadJoin("join.yaml", []byte(`apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: 10.0.0.2:6443
    token: abcdef.0123456789abcdef
    caCertHashes: [sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef]
`+yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := config.ResolveJoin(j, config.StaticFacts{Host: "node1", IPs: []net.IP{net.ParseIP("10.0.0.10")}}); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.ForJoin(j, "", nil, nil, "10.0.0.10")
	if err != nil {
		t.Fatal(err)
	}
	return cfg, j
}

// kubeadm 1.37's join checks, by name and in order: JoinNodeChecks (the
// kubelet's kubeconfigs, addCommonChecks, then a worker's CA file), then
// for a control plane InitNodeChecks with isSecondaryControlPlane.
// kubeboot adds FileExisting-iptables and the bridge-nf-call checks, as
// its init does, and leaves out what needs the cluster's configuration,
// which preflight runs before: KubernetesVersion, HTTPProxy (the
// discovery endpoint and the advertise address) and HTTPProxyCIDR.
var (
	joinNodeChecks = []string{
		"IsPrivilegedUser",
		"FileAvailable--etc-kubernetes-kubelet.conf",
		"FileAvailable--etc-kubernetes-bootstrap-kubelet.conf",
		"CRI", "ContainerRuntimeVersion", "Swap",
		"FileExisting-losetup", "FileExisting-mount", "FileExisting-cp", "FileExisting-iptables",
		"SystemVerification", "Hostname", "KubeletVersion", "Service-Kubelet", "Port-10250",
	}
	joinNetworkChecks = []string{
		"FileContent--proc-sys-net-ipv4-ip_forward", "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables",
		"FileContent--proc-sys-net-ipv6-conf-default-forwarding", "FileContent--proc-sys-net-bridge-bridge-nf-call-ip6tables",
	}
	// With token discovery (every case here), after the network checks.
	joinDiscoveryChecks    = []string{"HTTPProxy"}
	joinControlPlaneChecks = []string{
		"NumCPU", "Mem", "Firewalld", "Port-6443", "Port-10259", "Port-10257",
		"FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
		"FileAvailable--etc-kubernetes-manifests-kube-controller-manager.yaml",
		"FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml",
		"FileAvailable--etc-kubernetes-manifests-etcd.yaml",
		"Port-2379", "Port-2380", "DirAvailable--var-lib-etcd",
	}
)

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func TestJoinCheckNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"worker", "", concat(joinNodeChecks, []string{"FileAvailable--etc-kubernetes-pki-ca.crt"}, joinNetworkChecks, joinDiscoveryChecks)},
		{"worker with its own caCertPath", "caCertPath: /etc/pki/cluster/ca.crt\n",
			concat(joinNodeChecks, []string{"FileAvailable--etc-pki-cluster-ca.crt"}, joinNetworkChecks, joinDiscoveryChecks)},
		// A control plane downloads the CA: the file is expected, not checked.
		{"control plane", "controlPlane: {}\n", concat(joinNodeChecks, joinNetworkChecks, joinDiscoveryChecks, joinControlPlaneChecks)},
		{"control plane on another port", "controlPlane: {localAPIEndpoint: {bindPort: 7443}}\n",
			concat(joinNodeChecks, joinNetworkChecks, joinDiscoveryChecks, []string{"NumCPU", "Mem", "Firewalld", "Port-7443"}, joinControlPlaneChecks[4:])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, j := joinConfig(t, tc.yaml)
			var got []string
			for _, c := range JoinChecks(cfg, j.Join.ControlPlane != nil, j.Join.CACertPath, j.Join.Discovery.BootstrapToken.APIServerEndpoint) {
				got = append(got, c.Name)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("check names:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// A machine that already has kubelet credentials or a cluster CA is not
// fresh: the join checks say which file is in the way. A control plane's
// manifest directory is checked at the kubelet's staticPodPath.
func TestJoinChecksOnMachine(t *testing.T) {
	for _, tc := range []struct {
		name   string
		yaml   string
		tree   map[string]string
		failed []string // every error, by check name
	}{
		{"fresh worker", "", nil, nil},
		{"worker with a cluster CA", "", map[string]string{"/etc/kubernetes/pki/ca.crt": "x"},
			[]string{"FileAvailable--etc-kubernetes-pki-ca.crt"}},
		{"worker already joined", "", map[string]string{"/etc/kubernetes/kubelet.conf": "x", "/etc/kubernetes/bootstrap-kubelet.conf": "x"},
			[]string{"FileAvailable--etc-kubernetes-kubelet.conf", "FileAvailable--etc-kubernetes-bootstrap-kubelet.conf"}},
		{"control plane with a CA already there", "controlPlane: {}\n", map[string]string{"/etc/kubernetes/pki/ca.crt": "x"}, nil},
		{"control plane with an etcd manifest", "controlPlane: {}\n", map[string]string{"/etc/kubernetes/manifests/etcd.yaml": "x"},
			[]string{"FileAvailable--etc-kubernetes-manifests-etcd.yaml"}},
		{"control plane with etcd data", "controlPlane: {}\n", map[string]string{"/var/lib/etcd/member/snap/db": "x"},
			[]string{"DirAvailable--var-lib-etcd"}},
		{"control plane with another staticPodPath", "controlPlane: {}\n---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: /run/static\n",
			map[string]string{"/etc/kubernetes/manifests/etcd.yaml": "x", "/run/static/kube-apiserver.yaml": "x"},
			[]string{"FileAvailable--run-static-kube-apiserver.yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, j := joinConfig(t, tc.yaml)
			rep, _ := RunJoin(context.Background(), cfg, j.Join.ControlPlane != nil, j.Join.CACertPath, "10.0.0.2:6443", fakeEnv(t, tc.tree), nil)
			var failed []string
			for _, r := range rep.Results {
				if r.Status == StatusError {
					failed = append(failed, r.Name)
				}
			}
			if strings.Join(failed, " ") != strings.Join(tc.failed, " ") {
				t.Errorf("errors in %v, want %v", failed, tc.failed)
			}
		})
	}
}

// The join configuration's ignorePreflightErrors and the command line's
// are both honoured.
func TestRunJoinIgnores(t *testing.T) {
	cfg, j := joinConfig(t, "nodeRegistration: {ignorePreflightErrors: [FileAvailable--etc-kubernetes-pki-ca.crt]}\n")
	env := fakeEnv(t, map[string]string{"/etc/kubernetes/pki/ca.crt": "x", "/etc/kubernetes/kubelet.conf": "x"})
	if _, err := RunJoin(context.Background(), cfg, false, j.Join.CACertPath, "10.0.0.2:6443", env, []string{"FileAvailable--etc-kubernetes-kubelet.conf"}); err != nil {
		t.Errorf("both failures ignored, yet: %v", err)
	}
	if _, err := RunJoin(context.Background(), cfg, false, j.Join.CACertPath, "10.0.0.2:6443", env, nil); err == nil || !strings.Contains(err.Error(), "kubelet.conf") {
		t.Errorf("only the configuration's ignore applied: %v", err)
	}
}
