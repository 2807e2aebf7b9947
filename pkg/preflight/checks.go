package preflight

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/version"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// kubeadm 1.37's thresholds and ports (cmd/kubeadm/app/constants).
const (
	minNumCPU          = 2
	minMemMB           = 1700
	kubeletPort        = 10250
	schedulerPort      = 10259
	controllerMgrPort  = 10257
	etcdClientPort     = 2379
	etcdPeerPort       = 2380
	minExternalEtcd    = "3.5.24-0"
	kubeletVersionSkew = 3 // the oldest kubelet is three minors behind
	lookupHostTimeout  = 10 * time.Second
	defaultEtcdDataDir = config.DefaultEtcdDataDir
	ipv4Forward        = "/proc/sys/net/ipv4/ip_forward"
	ipv6Forward        = "/proc/sys/net/ipv6/conf/default/forwarding"
	bridgeNFIPTables   = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	bridgeNFIP6Tables  = "/proc/sys/net/bridge/bridge-nf-call-ip6tables"
	ipvsCheckName      = "RequiredIPVSKernelModulesAvailable"
	etcdCertsCheckName = "ExternalEtcdClientCertificates"
	kubeletUnit        = "kubelet"
	firewalldUnit      = "firewalld"
)

// requiredCommands are the executables the kubelet (and kubeboot) run on
// the host, checked as FileExisting-<name>. Missing ones are errors unless
// optional.
//
// From kubeadm 1.37: losetup (block volumes), mount (volume plugins), cp.
// conntrack is checked by kubeadm only below Kubernetes 1.32, which kubeboot
// cannot deploy. From the seed (kubeadm 1.12): iptables, which the kubelet
// still uses for its KUBE-FIREWALL and canary chains; a warning, since the
// kubelet runs without them. Dropped from the seed's list: crictl
// (kubeboot speaks CRI itself), and ip, nsenter, ebtables, ethtool, socat,
// tc and touch, which served dockershim and kubenet (both removed in 1.24;
// containerd forwards ports without socat).
var requiredCommands = []struct {
	name     string
	optional bool
}{
	{name: "losetup"},
	{name: "mount"},
	{name: "cp"},
	{name: "iptables", optional: true},
}

// ipvsModules are what kube-proxy's ipvs mode needs (the seed's list, with
// nf_conntrack for the old nf_conntrack_ipv4).
var ipvsModules = []string{"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack"}

// Checks returns every check for the configuration, in kubeadm's order.
// Checks that do not apply (local etcd checks with an external etcd, IPv6
// checks on an IPv4 cluster, IPVS when kube-proxy does not use it) are
// still listed and report themselves skipped.
func Checks(cfg *config.Config) []Check {
	ic, cc := &cfg.Init, &cfg.Cluster
	apiBind := lastArg(cc.APIServer.ExtraArgs, "bind-address")
	etcdAddr := ic.LocalAPIEndpoint.AdvertiseAddress
	if a := lastArg(cc.APIServer.ExtraArgs, "advertise-address"); a != "" {
		etcdAddr = a
	}
	manifests := cfg.Kubelet.StaticPodPath
	if manifests == "" {
		manifests = config.DefaultManifestsDir
	}
	v4, v6 := families(cfg)
	local := cc.Etcd.Local != nil
	dataDir := defaultEtcdDataDir
	if local && cc.Etcd.Local.DataDir != "" {
		dataDir = cc.Etcd.Local.DataDir
	}

	checks := []Check{
		privilegedUserCheck(),
		numCPUCheck(),
		memCheck(),
		kubernetesVersionCheck(cc.KubernetesVersion),
		firewalldCheck([]int{int(ic.LocalAPIEndpoint.BindPort), kubeletPort}),
		portCheck(int(ic.LocalAPIEndpoint.BindPort), apiBind, ""),
		portCheck(schedulerPort, lastArg(cc.Scheduler.ExtraArgs, "bind-address"), ""),
		portCheck(controllerMgrPort, lastArg(cc.ControllerManager.ExtraArgs, "bind-address"), ""),
	}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
		checks = append(checks, fileAvailableCheck(path.Join(manifests, c+".yaml")))
	}
	checks = append(checks,
		httpProxyCheck(ic.LocalAPIEndpoint.AdvertiseAddress),
		httpProxyCIDRCheck(cc.Networking.ServiceSubnet, cc.Networking.PodSubnet),
		criCheck(ic.NodeRegistration.CRISocket),
		criVersionCheck(ic.NodeRegistration.CRISocket, cfg.Kubelet.CgroupDriver),
		swapCheck(cfg),
	)
	for _, c := range requiredCommands {
		checks = append(checks, inPathCheck(c.name, c.optional))
	}
	checks = append(checks,
		systemVerificationCheck(cfg),
		hostnameCheck(ic.NodeRegistration.Name),
		kubeletVersionCheck(cc.KubernetesVersion),
		serviceKubeletCheck(),
		portCheck(kubeletPort, "", ""),
		fileContentCheck(ipv4Forward, "1", v4, "IPv4"),
		fileContentCheck(bridgeNFIPTables, "1", v4, "IPv4"),
		fileContentCheck(ipv6Forward, "1", v6, "IPv6"),
		fileContentCheck(bridgeNFIP6Tables, "1", v6, "IPv6"),
		externalEtcdVersionCheck(cc.Etcd.External),
	)
	notLocal := ""
	if !local {
		notLocal = "etcd is external"
	}
	checks = append(checks,
		portCheck(etcdClientPort, etcdAddr, notLocal),
		portCheck(etcdPeerPort, etcdAddr, notLocal),
		dirAvailableCheck(dataDir, notLocal),
		externalEtcdCertsCheck(cc.Etcd.External),
		ipvsCheck(cfg),
	)
	return checks
}

// lastArg is config.LastArg's value alone: "" when the argument is absent.
func lastArg(args []config.Arg, name string) string {
	v, _ := config.LastArg(args, name)
	return v
}

// families says whether the cluster uses IPv4 and IPv6: any service or pod
// subnet, or the advertise address, of that family (as kubeadm decides).
func families(cfg *config.Config) (v4, v6 bool) {
	for _, s := range []string{cfg.Cluster.Networking.ServiceSubnet, cfg.Cluster.Networking.PodSubnet} {
		for _, c := range strings.Split(s, ",") {
			if _, n, err := net.ParseCIDR(strings.TrimSpace(c)); err == nil {
				if n.IP.To4() != nil {
					v4 = true
				} else {
					v6 = true
				}
			}
		}
	}
	if ip := net.ParseIP(cfg.Init.LocalAPIEndpoint.AdvertiseAddress); ip != nil {
		if ip.To4() != nil {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6
}

// pathName turns a path into kubeadm's check-name form: /var/lib/etcd is
// -var-lib-etcd.
func pathName(p string) string { return strings.ReplaceAll(p, "/", "-") }

func privilegedUserCheck() Check {
	return Check{Name: "IsPrivilegedUser", Run: func(_ context.Context, env *Env) Finding {
		if env.Euid == nil {
			return skipf("no way to read the user ID here")
		}
		if uid := env.Euid(); uid != 0 {
			return errorf("user is not running as root (effective user ID %d)", uid)
		}
		return okf("running as root")
	}}
}

func numCPUCheck() Check {
	return Check{Name: "NumCPU", Run: func(_ context.Context, env *Env) Finding {
		if env.NumCPU == nil {
			return skipf("no way to count CPUs here")
		}
		n := env.NumCPU()
		if n < minNumCPU {
			return errorf("the number of available CPUs %d is less than the required %d", n, minNumCPU)
		}
		return okf("%d CPUs (%d required)", n, minNumCPU)
	}}
}

func memCheck() Check {
	return Check{Name: "Mem", Run: func(_ context.Context, env *Env) Finding {
		kb, err := memTotalKB(env)
		if err != nil {
			return errorf("failed to read the system's memory: %v", err)
		}
		mb := kb / 1024
		if mb < minMemMB {
			return errorf("the system RAM (%d MB) is less than the minimum %d MB", mb, minMemMB)
		}
		return okf("%d MB (%d MB required)", mb, minMemMB)
	}}
}

// memTotalKB reads MemTotal from /proc/meminfo.
func memTotalKB(env *Env) (uint64, error) {
	b, err := env.readFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			break
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/meminfo: MemTotal %q: %w", f[0], err)
		}
		if len(f) > 1 && f[1] != "kB" {
			return 0, fmt.Errorf("/proc/meminfo: MemTotal in unit %q, expected kB", f[1])
		}
		return n, nil
	}
	return 0, errors.New("/proc/meminfo has no MemTotal line")
}

func kubernetesVersionCheck(target string) Check {
	return Check{Name: "KubernetesVersion", Run: func(_ context.Context, _ *Env) Finding {
		v, err := version.ParseSemantic(target)
		if err != nil {
			return errorf("couldn't parse Kubernetes version %q: %v", target, err)
		}
		// kubeboot plays kubeadm's part: it deploys its own minor and the
		// one before it (config.MinKubernetesMinor..MaxKubernetesMinor).
		supported := fmt.Sprintf("kubeboot deploys v1.%d.x to v1.%d.x", config.MinKubernetesMinor, config.MaxKubernetesMinor)
		first := version.MustParseSemantic(fmt.Sprintf("1.%d.0-0", config.MaxKubernetesMinor+1))
		if v.AtLeast(first) {
			return warnf("Kubernetes version is greater than kubeboot's. Please consider to upgrade kubeboot. Kubernetes version: %s; %s", target, supported)
		}
		if v.Major() != 1 || v.Minor() < config.MinKubernetesMinor {
			return errorf("Kubernetes version %s is too old: %s", target, supported)
		}
		return okf("%s (%s)", target, supported)
	}}
}

var kubeletVersionRE = regexp.MustCompile(`^\s*Kubernetes v((0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)([-\w.+]*)?)\s*$`)

// kubeletVersion runs `kubelet --version` through env and parses it.
func kubeletVersion(ctx context.Context, env *Env) (*version.Version, error) {
	if env.KubeletVersion == nil {
		return nil, errors.New("no way to run the kubelet here")
	}
	out, err := env.KubeletVersion(ctx)
	if err != nil {
		return nil, err
	}
	m := kubeletVersionRE.FindStringSubmatch(strings.TrimSpace(out))
	if m == nil {
		return nil, fmt.Errorf("unable to parse output from the kubelet: %q", strings.TrimSpace(out))
	}
	return version.ParseSemantic(m[1])
}

func kubeletVersionCheck(target string) Check {
	return Check{Name: "KubeletVersion", Run: func(ctx context.Context, env *Env) Finding {
		kv, err := kubeletVersion(ctx, env)
		if err != nil {
			return errorf("couldn't get kubelet version: %v", err)
		}
		min := version.MajorMinor(1, config.MaxKubernetesMinor-kubeletVersionSkew)
		if kv.LessThan(min) {
			return errorf("kubelet version %q is lower than kubeboot can support (v%d.%d). Please upgrade the kubelet", kv, min.Major(), min.Minor())
		}
		cp, err := version.ParseSemantic(target)
		if err != nil {
			return errorf("couldn't parse Kubernetes version %q: %v", target, err)
		}
		if kv.Major() > cp.Major() || kv.Minor() > cp.Minor() {
			return errorf("the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: %q Control plane version: %q", kv, cp)
		}
		return okf("kubelet v%s (control plane %s; v%d.%d or newer required)", kv, target, min.Major(), min.Minor())
	}}
}

func firewalldCheck(ports []int) Check {
	list := make([]string, len(ports))
	for i, p := range ports {
		list[i] = strconv.Itoa(p)
	}
	portText := strings.Join(list, " and ")
	return Check{Name: "Firewalld", Run: func(ctx context.Context, env *Env) Finding {
		if env.Unit == nil {
			return skipf("no way to ask systemd here")
		}
		st, err := env.Unit(ctx, firewalldUnit)
		var nosd *NoSystemdError
		switch {
		case errors.As(err, &nosd):
			return warnf("%v: cannot check firewalld.service; if a firewall is active, ensure ports %s are open", nosd, portText)
		case err != nil:
			return warnf("cannot check firewalld.service: %v; if a firewall is active, ensure ports %s are open", err, portText)
		case !st.Exists:
			return okf("firewalld.service is not installed")
		case st.Active == "active":
			return warnf("firewalld is active, please ensure ports %s are open or your cluster may not function correctly", portText)
		}
		return okf("firewalld.service is %s", st.Active)
	}}
}

// enabledStates are the unit file states `systemctl is-enabled` accepts.
var enabledStates = map[string]bool{
	"enabled": true, "enabled-runtime": true, "static": true, "alias": true,
	"indirect": true, "generated": true, "transient": true,
}

func serviceKubeletCheck() Check {
	return Check{Name: "Service-Kubelet", Run: func(ctx context.Context, env *Env) Finding {
		if env.Unit == nil {
			return skipf("no way to ask systemd here")
		}
		st, err := env.Unit(ctx, kubeletUnit)
		var nosd *NoSystemdError
		switch {
		case errors.As(err, &nosd):
			return warnf("%v: cannot check that kubelet.service is enabled; the kubelet must be started by other means", nosd)
		case err != nil:
			return warnf("cannot check kubelet.service: %v", err)
		case !st.Exists:
			return warnf("kubelet service does not exist (no kubelet.service unit)")
		case !enabledStates[st.Enabled]:
			return warnf("kubelet service is not enabled (%s); the kubelet-start phase enables it, or run 'systemctl enable kubelet.service'", st.Enabled)
		}
		return okf("kubelet.service is %s (%s)", st.Enabled, st.Active)
	}}
}

// portCheck binds address:port and lets it go. skip, when set, says why
// the port does not matter for this configuration.
func portCheck(port int, address, skip string) Check {
	return Check{Name: fmt.Sprintf("Port-%d", port), Run: func(_ context.Context, env *Env) Finding {
		if skip != "" {
			return skipf("%s", skip)
		}
		if env.Listen == nil {
			return skipf("no way to bind ports here")
		}
		addr := ":" + strconv.Itoa(port)
		if address != "" {
			addr = net.JoinHostPort(address, strconv.Itoa(port))
		}
		ln, err := env.Listen("tcp", addr)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return errorf("Port %d is in use (%v)", port, err)
			}
			return errorf("cannot bind port %d: %v", port, err)
		}
		if err := ln.Close(); err != nil {
			return warnf("when closing port %d, encountered %v", port, err)
		}
		return okf("%s is free", addr)
	}}
}

func fileAvailableCheck(p string) Check {
	return Check{Name: "FileAvailable-" + pathName(p), Run: func(_ context.Context, env *Env) Finding {
		if _, err := os.Lstat(env.path(p)); err == nil {
			return errorf("%s already exists", p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return errorf("cannot check %s: %v", p, err)
		}
		return okf("%s does not exist", p)
	}}
}

func dirAvailableCheck(p, skip string) Check {
	return Check{Name: "DirAvailable-" + pathName(p), Run: func(_ context.Context, env *Env) Finding {
		if skip != "" {
			return skipf("%s", skip)
		}
		f, err := os.Open(env.path(p))
		if errors.Is(err, os.ErrNotExist) {
			return okf("%s does not exist", p)
		}
		if err != nil {
			return errorf("unable to check if %s is empty: %v", p, err)
		}
		defer f.Close()
		names, err := f.Readdirnames(1)
		if err == io.EOF {
			return okf("%s is empty", p)
		}
		if err != nil {
			return errorf("unable to check if %s is empty: %v", p, err)
		}
		return errorf("%s is not empty (it holds %s, ...); an earlier etcd's data would be reused", p, names[0])
	}}
}

// fileContentCheck wants the file to start with content. family names the
// IP family that needs it; apply is false when the cluster has none.
func fileContentCheck(p, content string, apply bool, family string) Check {
	return Check{Name: "FileContent-" + pathName(p), Run: func(_ context.Context, env *Env) Finding {
		if !apply {
			return skipf("the cluster has no %s subnet or address", family)
		}
		b, err := env.readFile(p)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return errorf("%s does not exist", p)
			}
			return errorf("%s could not be read: %v", p, err)
		}
		if !bytes.HasPrefix(b, []byte(content)) {
			return errorf("%s contents are not set to %s (it is %q)", p, content, strings.TrimSpace(string(b)))
		}
		return okf("%s is %s", p, content)
	}}
}

func inPathCheck(name string, optional bool) Check {
	return Check{Name: "FileExisting-" + pathName(name), Run: func(_ context.Context, env *Env) Finding {
		if env.LookPath == nil {
			return skipf("no way to search the PATH here")
		}
		p, err := env.LookPath(name)
		if err != nil {
			if optional {
				return warnf("%s not found in system path", name)
			}
			return errorf("%s not found in system path", name)
		}
		return okf("%s", p)
	}}
}

func hostnameCheck(nodeName string) Check {
	return Check{Name: "Hostname", Run: func(ctx context.Context, env *Env) Finding {
		var f Finding
		if nodeName == "" {
			return errorf("the node name is empty")
		}
		for _, msg := range validation.IsDNS1123Subdomain(nodeName) {
			f.Warnings = append(f.Warnings, fmt.Sprintf("invalid node name format %q: %s", nodeName, msg))
		}
		if env.LookupHost == nil {
			f.Note = "no way to resolve names here"
			f.Skipped = len(f.Warnings) == 0
			return f
		}
		ctx, cancel := context.WithTimeout(ctx, lookupHostTimeout)
		defer cancel()
		addrs, err := env.LookupHost(ctx, nodeName)
		switch {
		case err != nil:
			f.Warnings = append(f.Warnings, fmt.Sprintf("hostname %q could not be reached: %v (the kubelet stalls on every registration step when its node name does not resolve; add it to /etc/hosts)", nodeName, err))
		case len(addrs) == 0:
			f.Warnings = append(f.Warnings, fmt.Sprintf("hostname %q could not be reached: no addresses", nodeName))
		default:
			f.Note = fmt.Sprintf("%s resolves to %s", nodeName, strings.Join(addrs, ", "))
		}
		return f
	}}
}

func swapCheck(cfg *config.Config) Check {
	failSwapOn := cfg.Kubelet.FailSwapOn == nil || *cfg.Kubelet.FailSwapOn
	behavior := cfg.Kubelet.MemorySwap.SwapBehavior
	if behavior == "" {
		behavior = "NoSwap"
	}
	return Check{Name: "Swap", Run: func(_ context.Context, env *Env) Finding {
		b, err := env.readFile("/proc/swaps")
		if errors.Is(err, os.ErrNotExist) {
			return okf("no /proc/swaps: no swap")
		}
		if err != nil {
			return warnf("error reading /proc/swaps: %v", err)
		}
		var devices []string
		sc := bufio.NewScanner(bytes.NewReader(b))
		for first := true; sc.Scan(); first = false {
			if f := strings.Fields(sc.Text()); !first && len(f) > 0 {
				devices = append(devices, f[0])
			}
		}
		if len(devices) == 0 {
			return okf("swap is off")
		}
		on := fmt.Sprintf("swap is on (%s)", strings.Join(devices, ", "))
		if failSwapOn {
			return errorf("%s and the kubelet refuses to start with swap (failSwapOn is true); disable swap (swapoff -a, and remove it from /etc/fstab) or set failSwapOn: false in the KubeletConfiguration, see https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory", on)
		}
		if cg, err := detectCgroups(env); err == nil && !cg.v2 {
			return warnf("%s: swap is supported for cgroup v2 only, and this host has cgroup v1", on)
		}
		return okf("%s; the KubeletConfiguration allows it (failSwapOn: false, swapBehavior: %s)", on, behavior)
	}}
}
