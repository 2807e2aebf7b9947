package preflight

import (
	"context"
	"path"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// JoinChecks are kubeadm 1.37's `kubeadm join` checks, by the same names:
// the node checks, then, for a control-plane join, the control plane's
// ports, manifests and etcd directory. caCertPath is the join
// configuration's caCertPath, which a worker must not have yet. They run
// before discovery, so the cluster's version is not known: the kubelet is
// checked against kubeboot's own target version. discoveryEndpoint is
// token discovery's host:port ("" for file discovery): a proxy in the way
// of it is reported (HTTPProxy), as kubeadm does.
func JoinChecks(cfg *config.Config, controlPlane bool, caCertPath, discoveryEndpoint string) []Check {
	nr := cfg.Init.NodeRegistration
	v4, v6 := families(cfg)
	checks := []Check{
		privilegedUserCheck(),
		fileAvailableCheck("/etc/kubernetes/kubelet.conf"),
		fileAvailableCheck("/etc/kubernetes/bootstrap-kubelet.conf"),
		criCheck(nr.CRISocket),
		criVersionCheck(nr.CRISocket, cfg.Kubelet.CgroupDriver),
		swapCheck(cfg),
	}
	for _, c := range requiredCommands {
		checks = append(checks, inPathCheck(c.name, c.optional))
	}
	checks = append(checks,
		systemVerificationCheck(cfg),
		hostnameCheck(nr.Name),
		kubeletVersionCheck(cfg.Cluster.KubernetesVersion),
		serviceKubeletCheck(),
		portCheck(kubeletPort, "", ""),
	)
	if !controlPlane {
		checks = append(checks, fileAvailableCheck(caCertPath))
	}
	checks = append(checks,
		fileContentCheck(ipv4Forward, "1", v4, "IPv4"),
		fileContentCheck(bridgeNFIPTables, "1", v4, "IPv4"),
		fileContentCheck(ipv6Forward, "1", v6, "IPv6"),
		fileContentCheck(bridgeNFIP6Tables, "1", v6, "IPv6"),
	)
	if discoveryEndpoint != "" {
		checks = append(checks, httpProxyCheck(discoveryEndpoint))
	}
	if !controlPlane {
		return checks
	}
	ep := cfg.Init.LocalAPIEndpoint
	manifests := cfg.Kubelet.StaticPodPath
	if manifests == "" {
		manifests = config.DefaultManifestsDir
	}
	checks = append(checks,
		numCPUCheck(),
		memCheck(),
		firewalldCheck([]int{int(ep.BindPort), kubeletPort}),
		portCheck(int(ep.BindPort), "", ""),
		portCheck(schedulerPort, "", ""),
		portCheck(controllerMgrPort, "", ""),
	)
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
		checks = append(checks, fileAvailableCheck(path.Join(manifests, c+".yaml")))
	}
	return append(checks,
		portCheck(etcdClientPort, ep.AdvertiseAddress, ""),
		portCheck(etcdPeerPort, ep.AdvertiseAddress, ""),
		dirAvailableCheck(defaultEtcdDataDir, ""),
	)
}

// RunJoin runs the join checks with the command line's ignore list plus
// the join configuration's nodeRegistration.ignorePreflightErrors.
func RunJoin(ctx context.Context, cfg *config.Config, controlPlane bool, caCertPath, discoveryEndpoint string, env Env, ignore []string) (Report, error) {
	all := append(append([]string(nil), ignore...), cfg.Init.NodeRegistration.IgnorePreflightErrors...)
	return RunChecks(ctx, JoinChecks(cfg, controlPlane, caCertPath, discoveryEndpoint), env, all)
}
