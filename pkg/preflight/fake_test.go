package preflight

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// healthyTree is a fake root of a machine every check is happy with:
// cgroup v2, a supported kernel with its config in /boot, no swap,
// forwarding on.
var healthyTree = map[string]string{
	"/proc/meminfo":                 "MemTotal:        4028580 kB\nMemFree:         1000000 kB\n",
	"/proc/swaps":                   "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
	"/proc/sys/net/ipv4/ip_forward": "1\n",
	"/proc/sys/net/bridge/bridge-nf-call-iptables":  "1\n",
	"/proc/sys/net/bridge/bridge-nf-call-ip6tables": "1\n",
	"/proc/sys/net/ipv6/conf/default/forwarding":    "1\n",
	"/proc/sys/kernel/osrelease":                    "6.1.0-28-amd64\n",
	"/proc/mounts": "sysfs /sys sysfs rw 0 0\n" +
		"cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n",
	"/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
	"/boot/config-6.1.0-28-amd64":       goodKernelConfig,
}

const goodKernelConfig = `# Linux kernel config
CONFIG_NAMESPACES=y
CONFIG_NET_NS=y
CONFIG_PID_NS=y
CONFIG_IPC_NS=y
CONFIG_UTS_NS=y
CONFIG_CPUSETS=y
CONFIG_MEMCG=y
CONFIG_INET=y
CONFIG_EXT4_FS=m
CONFIG_PROC_FS=y
CONFIG_IP_NF_TARGET_REDIRECT=m
CONFIG_NETFILTER_XT_MATCH_COMMENT=m
CONFIG_FAIR_GROUP_SCHED=y
CONFIG_CGROUPS=y
CONFIG_CGROUP_CPUACCT=y
CONFIG_CGROUP_DEVICE=y
CONFIG_CGROUP_FREEZER=y
CONFIG_CGROUP_PIDS=y
CONFIG_CGROUP_SCHED=y
CONFIG_CGROUP_BPF=y
CONFIG_OVERLAY_FS=m
CONFIG_CFS_BANDWIDTH=y
CONFIG_SECCOMP=y
CONFIG_SECCOMP_FILTER=y
CONFIG_CGROUP_HUGETLB=y
`

// writeTree writes files under root; a name ending in / is a directory.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type fakeListener struct{ net.Listener }

func (fakeListener) Close() error { return nil }

// fakeEnv is a healthy machine: root tree, root user, 2 CPUs, containerd
// 2 ready, kubelet v1.37.2 installed and enabled, no firewalld, no proxy.
func fakeEnv(t *testing.T, extra map[string]string) Env {
	t.Helper()
	root := t.TempDir()
	writeTree(t, root, healthyTree)
	writeTree(t, root, extra)
	return Env{
		Root:   root,
		Listen: func(network, address string) (net.Listener, error) { return fakeListener{}, nil },
		LookupHost: func(_ context.Context, host string) ([]string, error) {
			if host == "node1" {
				return []string{"10.0.0.10"}, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		},
		LookPath: func(file string) (string, error) { return "/usr/bin/" + file, nil },
		Unit: func(_ context.Context, name string) (UnitState, error) {
			if name == "kubelet" {
				return UnitState{Exists: true, Enabled: "enabled", Active: "inactive"}, nil
			}
			return UnitState{}, nil
		},
		CRI: func(_ context.Context, endpoint string) (*CRIInfo, error) {
			return &CRIInfo{RuntimeName: "containerd", RuntimeVersion: "v2.1.4", RuntimeAPIVersion: "v1",
				Ready: true, RuntimeConfig: true, CgroupDriver: "systemd"}, nil
		},
		Euid:           func() int { return 0 },
		NumCPU:         func() int { return 2 },
		KubeletVersion: func(context.Context) (string, error) { return "Kubernetes v1.37.2\n", nil },
		Getenv:         func(string) string { return "" },
		EtcdVersion: func(context.Context, string, *tls.Config) (string, error) {
			return "", errors.New("no etcd in this test")
		},
	}
}

// testConfig is the default configuration of node1 at 10.0.0.10 with a
// pod subnet.
func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Defaults()
	cfg.Cluster.Networking.PodSubnet = "10.244.0.0/16"
	if err := config.Resolve(cfg, config.StaticFacts{Host: "node1", IPs: []net.IP{net.ParseIP("10.0.0.10")}}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runCheck runs the one check of that name for the configuration.
func runCheck(t *testing.T, cfg *config.Config, env Env, name string) Result {
	t.Helper()
	for _, c := range Checks(cfg) {
		if c.Name == name {
			rep, _ := RunChecks(context.Background(), []Check{c}, env, nil)
			return rep.Results[0]
		}
	}
	t.Fatalf("no check named %s", name)
	return Result{}
}
