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

	"k8s.io/utils/ptr"

	"github.com/kubeboot/kubeboot/pkg/config"
)

func TestChecks(t *testing.T) {
	type setup struct {
		cfg *config.Config
		env *Env
	}
	proxyEnv := func(vars map[string]string) func(s setup) {
		return func(s setup) { s.env.Getenv = func(k string) string { return vars[k] } }
	}
	external := func(s setup) {
		s.cfg.Cluster.Etcd.Local = nil
		s.cfg.Cluster.Etcd.External = &config.ExternalEtcd{
			Endpoints: []string{"https://10.0.0.2:2379"}, HTTPEndpoints: []string{"https://10.0.0.2:2379"},
			CAFile: "/etc/etcd/ca.crt", CertFile: "/etc/etcd/client.crt", KeyFile: "/etc/etcd/client.key",
		}
	}
	tests := []struct {
		name   string
		check  string
		tree   map[string]string
		setup  func(s setup)
		status Status
		detail string // a substring of the detail
	}{
		{name: "root", check: "IsPrivilegedUser", status: StatusOK, detail: "running as root"},
		{name: "not root", check: "IsPrivilegedUser", setup: func(s setup) { s.env.Euid = func() int { return 1000 } },
			status: StatusError, detail: "user is not running as root (effective user ID 1000)"},

		{name: "two CPUs", check: "NumCPU", status: StatusOK, detail: "2 CPUs (2 required)"},
		{name: "one CPU", check: "NumCPU", setup: func(s setup) { s.env.NumCPU = func() int { return 1 } },
			status: StatusError, detail: "the number of available CPUs 1 is less than the required 2"},

		{name: "enough memory", check: "Mem", status: StatusOK, detail: "3934 MB (1700 MB required)"},
		{name: "little memory", check: "Mem", tree: map[string]string{"/proc/meminfo": "MemTotal:  1024000 kB\n"},
			status: StatusError, detail: "the system RAM (1000 MB) is less than the minimum 1700 MB"},
		{name: "no MemTotal", check: "Mem", tree: map[string]string{"/proc/meminfo": "MemFree: 1 kB\n"},
			status: StatusError, detail: "no MemTotal line"},

		{name: "supported version", check: "KubernetesVersion", status: StatusOK, detail: "v1.37.2 (kubeboot deploys v1.36.x to v1.37.x)"},
		{name: "newer than kubeboot", check: "KubernetesVersion", setup: func(s setup) { s.cfg.Cluster.KubernetesVersion = "v1.38.0-alpha.1" },
			status: StatusWarning, detail: "Kubernetes version is greater than kubeboot's"},
		{name: "unparsable version", check: "KubernetesVersion", setup: func(s setup) { s.cfg.Cluster.KubernetesVersion = "stable" },
			status: StatusError, detail: `couldn't parse Kubernetes version "stable"`},

		{name: "kubelet same minor", check: "KubeletVersion", status: StatusOK, detail: "kubelet v1.37.2 (control plane v1.37.2"},
		{name: "kubelet older within skew", check: "KubeletVersion",
			setup: func(s setup) {
				s.env.KubeletVersion = func(context.Context) (string, error) { return "Kubernetes v1.34.9", nil }
			},
			status: StatusOK, detail: "kubelet v1.34.9"},
		{name: "kubelet too old", check: "KubeletVersion",
			setup: func(s setup) {
				s.env.KubeletVersion = func(context.Context) (string, error) { return "Kubernetes v1.33.0", nil }
			},
			status: StatusError, detail: `kubelet version "1.33.0" is lower than kubeboot can support (v1.34)`},
		{name: "kubelet newer than control plane", check: "KubeletVersion",
			setup: func(s setup) {
				s.cfg.Cluster.KubernetesVersion = "v1.36.4"
				s.env.KubeletVersion = func(context.Context) (string, error) { return "Kubernetes v1.37.2", nil }
			},
			status: StatusError, detail: "the kubelet version is higher than the control plane version"},
		{name: "kubelet missing", check: "KubeletVersion",
			setup: func(s setup) {
				s.env.KubeletVersion = func(context.Context) (string, error) {
					return "", errors.New("kubelet: executable file not found in $PATH")
				}
			},
			status: StatusError, detail: "couldn't get kubelet version: kubelet: executable file not found in $PATH"},
		{name: "kubelet garbage", check: "KubeletVersion",
			setup:  func(s setup) { s.env.KubeletVersion = func(context.Context) (string, error) { return "hello", nil } },
			status: StatusError, detail: `unable to parse output from the kubelet: "hello"`},

		{name: "no firewalld", check: "Firewalld", status: StatusOK, detail: "firewalld.service is not installed"},
		{name: "firewalld inactive", check: "Firewalld",
			setup: func(s setup) {
				s.env.Unit = func(context.Context, string) (UnitState, error) {
					return UnitState{Exists: true, Enabled: "disabled", Active: "inactive"}, nil
				}
			},
			status: StatusOK, detail: "firewalld.service is inactive"},
		{name: "firewalld active", check: "Firewalld",
			setup: func(s setup) {
				s.env.Unit = func(context.Context, string) (UnitState, error) {
					return UnitState{Exists: true, Enabled: "enabled", Active: "active"}, nil
				}
			},
			status: StatusWarning, detail: "firewalld is active, please ensure ports 6443 and 10250 are open"},
		{name: "firewalld without systemd", check: "Firewalld",
			setup: func(s setup) {
				s.env.Unit = func(context.Context, string) (UnitState, error) { return UnitState{}, &NoSystemdError{PID1: "init"} }
			},
			status: StatusWarning, detail: `systemd is not PID 1 (PID 1 is "init"): cannot check firewalld.service; if a firewall is active, ensure ports 6443 and 10250 are open`},
		{name: "firewalld with another bind port", check: "Firewalld",
			setup: func(s setup) {
				s.cfg.Init.LocalAPIEndpoint.BindPort = 8443
				s.env.Unit = func(context.Context, string) (UnitState, error) {
					return UnitState{Exists: true, Active: "active"}, nil
				}
			},
			status: StatusWarning, detail: "ports 8443 and 10250"},

		{name: "kubelet enabled", check: "Service-Kubelet", status: StatusOK, detail: "kubelet.service is enabled"},
		{name: "kubelet disabled", check: "Service-Kubelet",
			setup: func(s setup) {
				s.env.Unit = func(context.Context, string) (UnitState, error) {
					return UnitState{Exists: true, Enabled: "disabled", Active: "inactive"}, nil
				}
			},
			status: StatusWarning, detail: "kubelet service is not enabled (disabled)"},
		{name: "no kubelet unit", check: "Service-Kubelet",
			setup: func(s setup) {
				s.env.Unit = func(context.Context, string) (UnitState, error) { return UnitState{}, nil }
			},
			status: StatusWarning, detail: "kubelet service does not exist"},
		{name: "kubelet without systemd", check: "Service-Kubelet",
			setup: func(s setup) {
				s.env.Unit = func(context.Context, string) (UnitState, error) { return UnitState{}, &NoSystemdError{PID1: "sh"} }
			},
			status: StatusWarning, detail: `systemd is not PID 1 (PID 1 is "sh"): cannot check that kubelet.service is enabled`},

		{name: "port free", check: "Port-6443", status: StatusOK, detail: ":6443 is free"},
		{name: "port bound to the apiserver's bind-address", check: "Port-6443",
			setup: func(s setup) {
				s.cfg.Cluster.APIServer.ExtraArgs = []config.Arg{{Name: "bind-address", Value: "10.0.0.10"}}
			},
			status: StatusOK, detail: "10.0.0.10:6443 is free"},
		{name: "scheduler port", check: "Port-10259", status: StatusOK, detail: ":10259 is free"},
		{name: "controller-manager port", check: "Port-10257", status: StatusOK, detail: ":10257 is free"},
		{name: "kubelet port", check: "Port-10250", status: StatusOK, detail: ":10250 is free"},
		{name: "etcd ports on the advertise address", check: "Port-2379", status: StatusOK, detail: "10.0.0.10:2379 is free"},
		{name: "etcd peer port", check: "Port-2380", status: StatusOK, detail: "10.0.0.10:2380 is free"},
		{name: "etcd port on the apiserver's advertise-address", check: "Port-2380",
			setup: func(s setup) {
				s.cfg.Cluster.APIServer.ExtraArgs = []config.Arg{{Name: "advertise-address", Value: "10.0.0.99"}}
			},
			status: StatusOK, detail: "10.0.0.99:2380 is free"},
		{name: "etcd port with external etcd", check: "Port-2379", setup: external, status: StatusSkipped, detail: "etcd is external"},
		{name: "address not on this host", check: "Port-2379",
			setup: func(s setup) {
				s.env.Listen = func(network, addr string) (net.Listener, error) {
					return nil, &net.OpError{Op: "listen", Net: network, Err: errors.New("bind: cannot assign requested address")}
				}
			},
			status: StatusError, detail: "cannot bind port 2379"},

		{name: "no manifests", check: "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
			status: StatusOK, detail: "/etc/kubernetes/manifests/kube-apiserver.yaml does not exist"},
		{name: "apiserver manifest present", check: "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
			tree:   map[string]string{"/etc/kubernetes/manifests/kube-apiserver.yaml": "apiVersion: v1\n"},
			status: StatusError, detail: "/etc/kubernetes/manifests/kube-apiserver.yaml already exists"},
		{name: "controller-manager manifest present", check: "FileAvailable--etc-kubernetes-manifests-kube-controller-manager.yaml",
			tree: map[string]string{"/etc/kubernetes/manifests/kube-controller-manager.yaml": ""}, status: StatusError, detail: "already exists"},
		{name: "scheduler manifest present", check: "FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml",
			tree: map[string]string{"/etc/kubernetes/manifests/kube-scheduler.yaml": ""}, status: StatusError, detail: "already exists"},
		{name: "etcd manifest present", check: "FileAvailable--etc-kubernetes-manifests-etcd.yaml",
			tree: map[string]string{"/etc/kubernetes/manifests/etcd.yaml": ""}, status: StatusError, detail: "already exists"},
		{name: "manifests in the kubelet's staticPodPath", check: "FileAvailable--srv-manifests-etcd.yaml",
			tree:   map[string]string{"/srv/manifests/etcd.yaml": ""},
			setup:  func(s setup) { s.cfg.Kubelet.StaticPodPath = "/srv/manifests" },
			status: StatusError, detail: "/srv/manifests/etcd.yaml already exists"},

		{name: "no etcd data dir", check: "DirAvailable--var-lib-etcd", status: StatusOK, detail: "/var/lib/etcd does not exist"},
		{name: "empty etcd data dir", check: "DirAvailable--var-lib-etcd", tree: map[string]string{"/var/lib/etcd/": ""},
			status: StatusOK, detail: "/var/lib/etcd is empty"},
		{name: "etcd data dir in use", check: "DirAvailable--var-lib-etcd", tree: map[string]string{"/var/lib/etcd/member/snap/db": "x"},
			status: StatusError, detail: "/var/lib/etcd is not empty (it holds member"},
		{name: "etcd data dir is a file", check: "DirAvailable--var-lib-etcd", tree: map[string]string{"/var/lib/etcd": "x"},
			status: StatusError, detail: "unable to check if /var/lib/etcd is empty"},
		{name: "custom etcd data dir", check: "DirAvailable--data-etcd", tree: map[string]string{"/data/etcd/x": ""},
			setup: func(s setup) { s.cfg.Cluster.Etcd.Local.DataDir = "/data/etcd" }, status: StatusError, detail: "/data/etcd is not empty"},
		{name: "etcd data dir with external etcd", check: "DirAvailable--var-lib-etcd", setup: external,
			status: StatusSkipped, detail: "etcd is external"},

		{name: "ip_forward on", check: "FileContent--proc-sys-net-ipv4-ip_forward", status: StatusOK, detail: "/proc/sys/net/ipv4/ip_forward is 1"},
		{name: "ip_forward off", check: "FileContent--proc-sys-net-ipv4-ip_forward",
			tree:   map[string]string{"/proc/sys/net/ipv4/ip_forward": "0\n"},
			status: StatusError, detail: `/proc/sys/net/ipv4/ip_forward contents are not set to 1 (it is "0")`},
		{name: "bridge-nf on", check: "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables", status: StatusOK, detail: "is 1"},
		{name: "bridge-nf without br_netfilter", check: "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables",
			setup: func(s setup) {
				os.RemoveAll(filepath.Join(s.env.Root, "/proc/sys/net/bridge"))
			},
			status: StatusError, detail: "/proc/sys/net/bridge/bridge-nf-call-iptables does not exist"},
		{name: "IPv6 forwarding on an IPv4 cluster", check: "FileContent--proc-sys-net-ipv6-conf-default-forwarding",
			status: StatusSkipped, detail: "the cluster has no IPv6 subnet or address"},
		{name: "IPv6 forwarding off on a dual-stack cluster", check: "FileContent--proc-sys-net-ipv6-conf-default-forwarding",
			tree:   map[string]string{"/proc/sys/net/ipv6/conf/default/forwarding": "0"},
			setup:  func(s setup) { s.cfg.Cluster.Networking.PodSubnet = "10.244.0.0/16,fd00:10:244::/56" },
			status: StatusError, detail: "contents are not set to 1"},
		{name: "IPv6 advertise address", check: "FileContent--proc-sys-net-bridge-bridge-nf-call-ip6tables",
			setup:  func(s setup) { s.cfg.Init.LocalAPIEndpoint.AdvertiseAddress = "fd00::10" },
			status: StatusOK, detail: "is 1"},
		{name: "IPv4 forwarding on an IPv6-only cluster", check: "FileContent--proc-sys-net-ipv4-ip_forward",
			setup: func(s setup) {
				s.cfg.Cluster.Networking.ServiceSubnet = "fd00:10:96::/112"
				s.cfg.Cluster.Networking.PodSubnet = "fd00:10:244::/56"
				s.cfg.Init.LocalAPIEndpoint.AdvertiseAddress = "fd00::10"
			},
			status: StatusSkipped, detail: "no IPv4"},

		{name: "no proxy", check: "HTTPProxy", status: StatusOK, detail: "https://10.0.0.10 is reached without a proxy"},
		{name: "proxy catches the node", check: "HTTPProxy",
			setup:  proxyEnv(map[string]string{"HTTPS_PROXY": "http://user:secret@proxy.example:3128"}),
			status: StatusWarning, detail: `Connection to "https://10.0.0.10" uses proxy "http://user:xxxxx@proxy.example:3128"`},
		{name: "node in NO_PROXY", check: "HTTPProxy",
			setup:  proxyEnv(map[string]string{"https_proxy": "http://proxy.example:3128", "no_proxy": "10.0.0.10"}),
			status: StatusOK, detail: "without a proxy"},
		{name: "HTTP_PROXY alone does not catch https", check: "HTTPProxy",
			setup:  proxyEnv(map[string]string{"HTTP_PROXY": "http://proxy.example:3128"}),
			status: StatusOK, detail: "without a proxy"},

		{name: "no proxy for the subnets", check: "HTTPProxyCIDR", status: StatusOK,
			detail: "10.96.0.0/12, 10.244.0.0/16 reached without a proxy"},
		{name: "proxy catches both subnets", check: "HTTPProxyCIDR",
			setup:  proxyEnv(map[string]string{"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "localhost,10.0.0.0/24"}),
			status: StatusWarning, detail: `connection to "10.96.0.0/12" uses proxy "http://proxy.example:3128". This may lead to malfunctional cluster setup. Make sure that Pod and Services IP ranges specified correctly as exceptions in proxy configuration; connection to "10.244.0.0/16" uses proxy`},
		{name: "service subnet excepted, pod subnet not", check: "HTTPProxyCIDR",
			setup:  proxyEnv(map[string]string{"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "10.96.0.0/12"}),
			status: StatusWarning, detail: `connection to "10.244.0.0/16" uses proxy "http://proxy.example:3128". This may lead to malfunctional cluster setup. Make sure that Pod and Services IP ranges specified correctly as exceptions in proxy configuration; 10.96.0.0/12 reached without a proxy`},
		{name: "both subnets excepted by CIDR", check: "HTTPProxyCIDR",
			setup:  proxyEnv(map[string]string{"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "10.96.0.0/12,10.244.0.0/16"}),
			status: StatusOK, detail: "10.96.0.0/12, 10.244.0.0/16 reached without a proxy"},
		{name: "dual-stack subnets", check: "HTTPProxyCIDR",
			setup: func(s setup) {
				s.cfg.Cluster.Networking.ServiceSubnet = "10.96.0.0/12,fd00:10:96::/112"
				s.env.Getenv = func(k string) string {
					return map[string]string{"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "10.0.0.0/8"}[k]
				}
			},
			status: StatusWarning, detail: `connection to "fd00:10:96::/112" uses proxy`},

		{name: "runtime ready", check: "CRI", status: StatusOK, detail: "containerd v2.1.4 at unix:///var/run/containerd/containerd.sock is ready"},
		{name: "no runtime", check: "CRI",
			setup: func(s setup) {
				s.env.CRI = func(context.Context, string) (*CRIInfo, error) { return nil, errors.New("no runtime socket") }
			},
			status: StatusError, detail: "could not connect to the container runtime at unix:///var/run/containerd/containerd.sock: no runtime socket"},
		{name: "runtime not ready", check: "CRI",
			setup: func(s setup) {
				s.env.CRI = func(context.Context, string) (*CRIInfo, error) {
					return &CRIInfo{RuntimeName: "containerd", Reason: "Starting", Message: "loading plugins"}, nil
				}
			},
			status: StatusError, detail: `container runtime condition "RuntimeReady" is not true. reason: Starting, message: loading plugins`},
		{name: "runtime at the configured socket", check: "CRI",
			setup: func(s setup) {
				s.cfg.Init.NodeRegistration.CRISocket = "unix:///run/crio/crio.sock"
				s.env.CRI = func(_ context.Context, ep string) (*CRIInfo, error) {
					return &CRIInfo{RuntimeName: "cri-o", RuntimeVersion: "1.34.0", Ready: true, RuntimeConfig: true}, nil
				}
			},
			status: StatusOK, detail: "cri-o 1.34.0 at unix:///run/crio/crio.sock is ready"},

		{name: "containerd 2", check: "ContainerRuntimeVersion", status: StatusOK,
			detail: "containerd v2.1.4, CRI v1, RuntimeConfig supported (cgroup driver systemd)"},
		{name: "containerd 1.6", check: "ContainerRuntimeVersion",
			setup: func(s setup) {
				s.env.CRI = func(context.Context, string) (*CRIInfo, error) {
					return &CRIInfo{RuntimeName: "containerd", RuntimeVersion: "1.6.20~ds1", RuntimeAPIVersion: "v1", Ready: true}, nil
				}
			},
			status: StatusWarning, detail: "You must update your container runtime to a version that supports the CRI method RuntimeConfig"},
		{name: "containerd 1.x support ends", check: "ContainerRuntimeVersion",
			setup: func(s setup) {
				s.env.CRI = func(context.Context, string) (*CRIInfo, error) {
					return &CRIInfo{RuntimeName: "containerd", RuntimeVersion: "1.7.24", Ready: true}, nil
				}
			},
			status: StatusWarning, detail: "containerd 1.7.24: Kubernetes 1.38 drops support for containerd 1.x"},
		{name: "cgroup driver differs", check: "ContainerRuntimeVersion",
			setup: func(s setup) {
				s.env.CRI = func(context.Context, string) (*CRIInfo, error) {
					return &CRIInfo{RuntimeName: "containerd", RuntimeVersion: "2.1.4", Ready: true, RuntimeConfig: true, CgroupDriver: "cgroupfs"}, nil
				}
			},
			status: StatusWarning, detail: "the runtime's cgroup driver is cgroupfs and the KubeletConfiguration says systemd"},
		{name: "RuntimeConfig fails", check: "ContainerRuntimeVersion",
			setup: func(s setup) {
				s.env.CRI = func(context.Context, string) (*CRIInfo, error) {
					return &CRIInfo{RuntimeName: "containerd", RuntimeVersion: "2.1.4", RuntimeConfigErr: errors.New("deadline exceeded")}, nil
				}
			},
			status: StatusError, detail: "could not check if the runtime config is available: deadline exceeded"},
		{name: "no runtime for the version", check: "ContainerRuntimeVersion",
			setup: func(s setup) {
				s.env.CRI = func(context.Context, string) (*CRIInfo, error) { return nil, errors.New("connection refused") }
			},
			status: StatusError, detail: "could not connect to the container runtime"},

		{name: "no swap", check: "Swap", status: StatusOK, detail: "swap is off"},
		{name: "no /proc/swaps", check: "Swap", setup: func(s setup) { os.Remove(filepath.Join(s.env.Root, "/proc/swaps")) },
			status: StatusOK, detail: "no /proc/swaps"},
		{name: "swap on, kubelet refuses", check: "Swap",
			tree:   map[string]string{"/proc/swaps": "Filename Type Size Used Priority\n/swapfile file 2097148 0 -2\n"},
			status: StatusError, detail: "swap is on (/swapfile) and the kubelet refuses to start with swap (failSwapOn is true)"},
		{name: "swap on, kubelet allows it on cgroup v2", check: "Swap",
			tree:   map[string]string{"/proc/swaps": "Filename Type Size Used Priority\n/dev/vda2 partition 2097148 0 -2\n"},
			setup:  func(s setup) { s.cfg.Kubelet.FailSwapOn = ptr.To(false) },
			status: StatusOK, detail: "swap is on (/dev/vda2); the KubeletConfiguration allows it (failSwapOn: false, swapBehavior: NoSwap)"},
		{name: "swap on, kubelet allows it on cgroup v1", check: "Swap",
			tree: map[string]string{
				"/proc/swaps":  "Filename Type Size Used Priority\n/dev/vda2 partition 2097148 0 -2\n",
				"/proc/mounts": hybridMounts, "/sys/fs/cgroup/memory/": "",
			},
			setup:  func(s setup) { s.cfg.Kubelet.FailSwapOn = ptr.To(false) },
			status: StatusWarning, detail: "swap is supported for cgroup v2 only"},

		{name: "losetup present", check: "FileExisting-losetup", status: StatusOK, detail: "/usr/bin/losetup"},
		{name: "mount missing", check: "FileExisting-mount",
			setup: func(s setup) {
				s.env.LookPath = func(f string) (string, error) { return "", errors.New("not found") }
			},
			status: StatusError, detail: "mount not found in system path"},
		{name: "cp missing", check: "FileExisting-cp",
			setup:  func(s setup) { s.env.LookPath = func(f string) (string, error) { return "", errors.New("not found") } },
			status: StatusError, detail: "cp not found in system path"},
		{name: "iptables missing is a warning", check: "FileExisting-iptables",
			setup:  func(s setup) { s.env.LookPath = func(f string) (string, error) { return "", errors.New("not found") } },
			status: StatusWarning, detail: "iptables not found in system path"},

		{name: "hostname resolves", check: "Hostname", status: StatusOK, detail: "node1 resolves to 10.0.0.10"},
		{name: "hostname does not resolve", check: "Hostname", setup: func(s setup) { s.cfg.Init.NodeRegistration.Name = "node2" },
			status: StatusWarning, detail: `hostname "node2" could not be reached: lookup node2: no such host`},
		{name: "hostname not DNS-1123", check: "Hostname", setup: func(s setup) { s.cfg.Init.NodeRegistration.Name = "Node_1" },
			status: StatusWarning, detail: `invalid node name format "Node_1": a lowercase RFC 1123 subdomain`},

		{name: "kube-proxy not ipvs", check: "RequiredIPVSKernelModulesAvailable", status: StatusSkipped, detail: "kube-proxy mode is nftables, not ipvs"},
		{name: "kube-proxy disabled", check: "RequiredIPVSKernelModulesAvailable",
			setup: func(s setup) { s.cfg.Cluster.Proxy.Disabled = true }, status: StatusSkipped, detail: "kube-proxy is disabled"},
		{name: "ipvs modules loaded", check: "RequiredIPVSKernelModulesAvailable",
			tree: map[string]string{
				"/proc/modules": "ip_vs_sh 12288 0 - Live 0x0\nip_vs_wrr 12288 0 - Live 0x0\nip_vs_rr 12288 0 - Live 0x0\n" +
					"ip_vs 200704 6 ip_vs_sh,ip_vs_wrr,ip_vs_rr, Live 0x0\nnf_conntrack 192512 1 ip_vs, Live 0x0\n",
			},
			setup:  func(s setup) { s.cfg.KubeProxy.Mode = "ipvs" },
			status: StatusWarning, detail: "kube-proxy's ipvs mode is deprecated in 1.37 (off by default in 1.40, removed in 1.43); migrate to nftables; ip_vs, ip_vs_rr, ip_vs_wrr, ip_vs_sh, nf_conntrack present"},
		{name: "ipvs modules built in", check: "RequiredIPVSKernelModulesAvailable",
			tree: map[string]string{
				"/lib/modules/6.1.0-28-amd64/modules.builtin": "kernel/net/netfilter/ipvs/ip_vs.ko\nkernel/net/netfilter/ipvs/ip_vs_rr.ko\n" +
					"kernel/net/netfilter/ipvs/ip_vs_wrr.ko\nkernel/net/netfilter/ipvs/ip_vs_sh.ko\n",
				"/sys/module/nf_conntrack/": "",
			},
			setup:  func(s setup) { s.cfg.KubeProxy.Mode = "ipvs" },
			status: StatusWarning, detail: "present"},
		{name: "ipvs modules missing", check: "RequiredIPVSKernelModulesAvailable",
			tree:   map[string]string{"/proc/modules": "ip_vs 200704 0 - Live 0x0\nnf_conntrack 192512 1 ip_vs, Live 0x0\n"},
			setup:  func(s setup) { s.cfg.KubeProxy.Mode = "ipvs" },
			status: StatusError, detail: "the IPVS proxier needs kernel modules that are not loaded: ip_vs_rr, ip_vs_wrr, ip_vs_sh"},

		{name: "etcd version with local etcd", check: "ExternalEtcdVersion", status: StatusSkipped, detail: "etcd is local"},
		{name: "etcd certs with local etcd", check: "ExternalEtcdClientCertificates", status: StatusSkipped, detail: "etcd is local"},
		{name: "etcd certs missing", check: "ExternalEtcdClientCertificates", setup: external,
			status: StatusError, detail: "/etc/etcd/ca.crt doesn't exist; /etc/etcd/client.crt doesn't exist; /etc/etcd/client.key doesn't exist"},
		{name: "etcd certs not PEM", check: "ExternalEtcdClientCertificates", setup: external,
			tree:   map[string]string{"/etc/etcd/ca.crt": "hello", "/etc/etcd/client.crt": "x", "/etc/etcd/client.key": "y"},
			status: StatusError, detail: "/etc/etcd/ca.crt holds no PEM data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			env := fakeEnv(t, tt.tree)
			if tt.setup != nil {
				tt.setup(setup{cfg: cfg, env: &env})
			}
			got := runCheck(t, cfg, env, tt.check)
			if got.Status != tt.status || !strings.Contains(got.Detail, tt.detail) {
				t.Errorf("%s: got %s %q\nwant %s containing %q", tt.check, got.Status, got.Detail, tt.status, tt.detail)
			}
			if got.Detail == "" {
				t.Errorf("%s: empty detail", tt.check)
			}
		})
	}
}

// A port held by a real listener fails its check; the check's own bind
// goes through the real net.Listen.
func TestPortHeldByListener(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()

	cfg := testConfig(t)
	env := fakeEnv(t, nil)
	env.Listen = func(network, addr string) (net.Listener, error) {
		switch addr {
		case ":6443":
			return net.Listen(network, held.Addr().String())
		default:
			return net.Listen(network, freeAddr)
		}
	}
	if got := runCheck(t, cfg, env, "Port-6443"); got.Status != StatusError || !strings.Contains(got.Detail, "Port 6443 is in use") {
		t.Errorf("held port: %s %q", got.Status, got.Detail)
	}
	if got := runCheck(t, cfg, env, "Port-10259"); got.Status != StatusOK {
		t.Errorf("free port: %s %q", got.Status, got.Detail)
	}
}

func TestExternalEtcdVersion(t *testing.T) {
	caPEM, certPEM, keyPEM := testCerts(t)
	tree := map[string]string{"/etc/etcd/ca.crt": caPEM, "/etc/etcd/client.crt": certPEM, "/etc/etcd/client.key": keyPEM}
	ext := func(cfg *config.Config) {
		cfg.Cluster.Etcd.Local = nil
		cfg.Cluster.Etcd.External = &config.ExternalEtcd{
			Endpoints:     []string{"https://10.0.0.2:2379", "https://10.0.0.3:2379"},
			HTTPEndpoints: []string{"https://10.0.0.2:2379", "https://10.0.0.3:2379/"},
			CAFile:        "/etc/etcd/ca.crt", CertFile: "/etc/etcd/client.crt", KeyFile: "/etc/etcd/client.key",
		}
	}
	tests := []struct {
		name     string
		versions map[string]string // URL → version, missing = unreachable
		status   Status
		detail   string
	}{
		{name: "supported", versions: map[string]string{"https://10.0.0.2:2379/version": "3.6.4", "https://10.0.0.3:2379/version": "3.5.24"},
			status: StatusOK, detail: "https://10.0.0.2:2379: etcd 3.6.4, https://10.0.0.3:2379/: etcd 3.5.24"},
		{name: "too old", versions: map[string]string{"https://10.0.0.2:2379/version": "3.6.4", "https://10.0.0.3:2379/version": "3.4.30"},
			status: StatusError, detail: "this version of kubeboot only supports external etcd version >= 3.5.24-0. Current version: 3.4.30"},
		{name: "unreachable", versions: map[string]string{"https://10.0.0.2:2379/version": "3.6.4"},
			status: StatusError, detail: "https://10.0.0.3:2379/version: connection refused"},
		{name: "garbage", versions: map[string]string{"https://10.0.0.2:2379/version": "banana", "https://10.0.0.3:2379/version": "3.6.0"},
			status: StatusError, detail: `couldn't parse external etcd version "banana"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			ext(cfg)
			env := fakeEnv(t, tree)
			env.EtcdVersion = func(_ context.Context, url string, c *tls.Config) (string, error) {
				if c == nil || c.RootCAs == nil || len(c.Certificates) != 1 {
					t.Errorf("TLS config without CA or client certificate: %+v", c)
				}
				if v, ok := tt.versions[url]; ok {
					return v, nil
				}
				return "", errors.New("connection refused")
			}
			got := runCheck(t, cfg, env, "ExternalEtcdVersion")
			if got.Status != tt.status || !strings.Contains(got.Detail, tt.detail) {
				t.Errorf("got %s %q, want %s containing %q", got.Status, got.Detail, tt.status, tt.detail)
			}
			if got := runCheck(t, cfg, env, "ExternalEtcdClientCertificates"); got.Status != StatusOK {
				t.Errorf("certificates: %s %q", got.Status, got.Detail)
			}
		})
	}
	t.Run("bad key pair", func(t *testing.T) {
		cfg := testConfig(t)
		ext(cfg)
		env := fakeEnv(t, map[string]string{"/etc/etcd/ca.crt": caPEM, "/etc/etcd/client.crt": certPEM, "/etc/etcd/client.key": caPEM})
		got := runCheck(t, cfg, env, "ExternalEtcdVersion")
		if got.Status != StatusError || !strings.Contains(got.Detail, "couldn't load external etcd's certificate and key pair") {
			t.Errorf("got %s %q", got.Status, got.Detail)
		}
	})
}

// Every check of the default configuration, with kubeadm's names.
func TestCheckNames(t *testing.T) {
	var got []string
	for _, c := range Checks(testConfig(t)) {
		got = append(got, c.Name)
	}
	want := []string{
		"IsPrivilegedUser", "NumCPU", "Mem", "KubernetesVersion", "Firewalld", "Port-6443", "Port-10259", "Port-10257",
		"FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
		"FileAvailable--etc-kubernetes-manifests-kube-controller-manager.yaml",
		"FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml",
		"FileAvailable--etc-kubernetes-manifests-etcd.yaml",
		"HTTPProxy", "HTTPProxyCIDR", "CRI", "ContainerRuntimeVersion", "Swap",
		"FileExisting-losetup", "FileExisting-mount", "FileExisting-cp", "FileExisting-iptables",
		"SystemVerification", "Hostname", "KubeletVersion", "Service-Kubelet", "Port-10250",
		"FileContent--proc-sys-net-ipv4-ip_forward", "FileContent--proc-sys-net-bridge-bridge-nf-call-iptables",
		"FileContent--proc-sys-net-ipv6-conf-default-forwarding", "FileContent--proc-sys-net-bridge-bridge-nf-call-ip6tables",
		"ExternalEtcdVersion", "Port-2379", "Port-2380", "DirAvailable--var-lib-etcd", "ExternalEtcdClientCertificates",
		"RequiredIPVSKernelModulesAvailable",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("check names:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// On the healthy fake machine every check passes or is skipped.
func TestHealthyMachine(t *testing.T) {
	rep, err := Run(context.Background(), testConfig(t), fakeEnv(t, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Status != StatusOK && r.Status != StatusSkipped {
			t.Errorf("%s: %s %q", r.Name, r.Status, r.Detail)
		}
	}
}

// A nil Env function skips the checks that need it instead of crashing.
func TestEmptyEnv(t *testing.T) {
	rep, _ := Run(context.Background(), testConfig(t), Env{Root: t.TempDir()}, nil)
	for _, r := range rep.Results {
		if r.Detail == "" {
			t.Errorf("%s: empty detail", r.Name)
		}
	}
	for _, name := range []string{"IsPrivilegedUser", "NumCPU", "CRI", "Service-Kubelet", "Port-6443", "HTTPProxy"} {
		if r := find(rep, name); r.Status != StatusSkipped {
			t.Errorf("%s: %s %q, want skipped", name, r.Status, r.Detail)
		}
	}
}

func find(rep Report, name string) Result {
	for _, r := range rep.Results {
		if r.Name == name {
			return r
		}
	}
	return Result{}
}
