package manifests

import (
	"path"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/images"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// APIServerAdditions are flags and volumes a kubeboot feature adds to the
// kube-apiserver (pkg/audit, pkg/encryption return them).
type APIServerAdditions struct {
	Args    []config.Arg
	Volumes []config.HostPathMount
}

// Options carry what the control-plane manifests need besides the
// configuration; the zero value is kubeadm on Debian without a proxy.
type Options struct {
	// APIServer are added to kubeadm's kube-apiserver defaults. A flag or
	// volume name may appear only once among kubeadm's defaults and all
	// additions; the user's extraArgs and extraVolumes still replace them.
	APIServer []APIServerAdditions
	// CACertDirs are the host trust directories mounted read-only into the
	// apiserver and the controller-manager next to /etc/ssl/certs. nil
	// means DefaultCACertDirs(); an empty, non-nil list mounts none.
	CACertDirs []string
	// ProxyEnv are the *_proxy variables of kubeboot's environment that
	// kubeadm would copy into the control-plane Pods; extraEnvs win.
	ProxyEnv []config.EnvVar
	// ExternalCA is true when ca.crt comes without ca.key: the
	// controller-manager then gets empty --cluster-signing-* flags, so its
	// CSR signer stays off.
	ExternalCA bool
}

// ControlPlane renders the manifests of kube-apiserver,
// kube-controller-manager and kube-scheduler, in that order.
func ControlPlane(cfg *config.Config, opts Options) ([]rootfs.File, error) {
	if err := checkResolved(cfg, "control-plane"); err != nil {
		return nil, err
	}
	api, err := apiServerPod(cfg, opts)
	if err != nil {
		return nil, err
	}
	var files []rootfs.File
	for _, pod := range []*corev1.Pod{api, controllerManagerPod(cfg, opts), schedulerPod(cfg, opts)} {
		f, err := manifestFile(cfg, pod)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

func (o Options) caCertDirs() []string {
	if o.CACertDirs == nil {
		return DefaultCACertDirs()
	}
	return o.CACertDirs
}

// trustMounts are the certificates directory and the trust store that the
// apiserver and the controller-manager share.
func trustMounts(cfg *config.Config, opts Options) mounts {
	m := mounts{}
	pki := cfg.Cluster.CertificatesDir
	m.add(certsVolume, pki, pki, true, directoryOrCreate)
	m.add(caCertsVolume, caCertsPath, caCertsPath, true, directoryOrCreate)
	for _, d := range opts.caCertDirs() {
		d = rootfs.Clean(d)
		m.add(caCertDirVolumeName(d), d, d, true, directoryOrCreate)
	}
	return m
}

func apiServerPod(cfg *config.Config, opts Options) (*corev1.Pod, error) {
	ep := cfg.Init.LocalAPIEndpoint
	api := cfg.Cluster.APIServer
	args := apiServerArgs(cfg)
	m := trustMounts(cfg, opts)
	if x := cfg.Cluster.Etcd.External; x != nil {
		covered := append([]string{cfg.Cluster.CertificatesDir, caCertsPath}, opts.caCertDirs()...)
		for i, d := range externalEtcdCertDirs(x, covered) {
			m.add("etcd-certs-"+strconv.Itoa(i), d, d, true, directoryOrCreate)
		}
	}
	argNames := map[string]bool{}
	for _, a := range args {
		argNames[a.Name] = true
	}
	for _, add := range opts.APIServer {
		for _, a := range add.Args {
			if argNames[a.Name] {
				return nil, errorf(APIServerName, "flag --%s is set more than once by kubeadm's defaults and the additions", a.Name)
			}
			argNames[a.Name] = true
			args = append(args, a)
		}
		for _, v := range add.Volumes {
			if _, ok := m[v.Name]; ok {
				return nil, errorf(APIServerName, "volume %q is set more than once by kubeadm's defaults and the additions", v.Name)
			}
			m[v.Name] = v
		}
	}
	m.addAll(api.ExtraVolumes)

	host := probeHost(ep.AdvertiseAddress)
	c := corev1.Container{
		Name:            APIServerName,
		Image:           images.Kubernetes(cfg, APIServerName),
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         command(APIServerName, args, api.ExtraArgs),
		VolumeMounts:    m.volumeMounts(),
		LivenessProbe:   livenessProbe(host, "/livez", corev1.URISchemeHTTPS),
		ReadinessProbe:  readinessProbe(host, "/readyz", corev1.URISchemeHTTPS),
		StartupProbe:    startupProbe(host, "/livez", corev1.URISchemeHTTPS, healthCheckTimeout(cfg)),
		Resources:       cpuRequest("250m"),
		Env:             env(opts.ProxyEnv, api.ExtraEnvs),
		Ports:           probePort(ep.BindPort),
	}
	endpoint := hostPort(ep.AdvertiseAddress, int(ep.BindPort))
	return componentPod(c, m.volumes(), map[string]string{APIServerEndpointAnnotation: endpoint}), nil
}

func apiServerArgs(cfg *config.Config) []config.Arg {
	cc := &cfg.Cluster
	ep := cfg.Init.LocalAPIEndpoint
	pki := cc.CertificatesDir
	args := []config.Arg{
		{Name: "advertise-address", Value: ep.AdvertiseAddress},
		{Name: "enable-admission-plugins", Value: "NodeRestriction"},
		{Name: "service-cluster-ip-range", Value: cc.Networking.ServiceSubnet},
		{Name: "service-account-key-file", Value: path.Join(pki, "sa.pub")},
		{Name: "service-account-signing-key-file", Value: path.Join(pki, "sa.key")},
		{Name: "service-account-issuer", Value: "https://kubernetes.default.svc." + cc.Networking.DNSDomain},
		{Name: "client-ca-file", Value: path.Join(pki, "ca.crt")},
		{Name: "tls-cert-file", Value: path.Join(pki, "apiserver.crt")},
		{Name: "tls-private-key-file", Value: path.Join(pki, "apiserver.key")},
		{Name: "kubelet-client-certificate", Value: path.Join(pki, "apiserver-kubelet-client.crt")},
		{Name: "kubelet-client-key", Value: path.Join(pki, "apiserver-kubelet-client.key")},
		{Name: "enable-bootstrap-token-auth", Value: "true"},
		{Name: "secure-port", Value: strconv.Itoa(int(ep.BindPort))},
		{Name: "allow-privileged", Value: "true"},
		{Name: "kubelet-preferred-address-types", Value: "InternalIP,ExternalIP,Hostname"},
		{Name: "requestheader-username-headers", Value: "X-Remote-User"},
		{Name: "requestheader-group-headers", Value: "X-Remote-Group"},
		{Name: "requestheader-extra-headers-prefix", Value: "X-Remote-Extra-"},
		{Name: "requestheader-client-ca-file", Value: path.Join(pki, "front-proxy-ca.crt")},
		{Name: "requestheader-allowed-names", Value: "front-proxy-client"},
		{Name: "proxy-client-cert-file", Value: path.Join(pki, "front-proxy-client.crt")},
		{Name: "proxy-client-key-file", Value: path.Join(pki, "front-proxy-client.key")},
	}
	if x := cc.Etcd.External; x != nil {
		args = setArg(args, "etcd-servers", strings.Join(x.Endpoints, ","))
		if x.CAFile != "" {
			args = setArg(args, "etcd-cafile", x.CAFile)
		}
		if x.CertFile != "" && x.KeyFile != "" {
			args = setArg(args, "etcd-certfile", x.CertFile)
			args = setArg(args, "etcd-keyfile", x.KeyFile)
		}
	} else {
		servers := "https://" + hostPort(loopback(ep.AdvertiseAddress), EtcdClientPort)
		if l := cc.Etcd.Local; l != nil {
			// The etcd member's advertised client URLs are where the
			// apiserver finds it.
			if v, ok := config.LastArg(l.ExtraArgs, "advertise-client-urls"); ok {
				servers = v
			}
		}
		args = setArg(args, "etcd-servers", servers)
		args = setArg(args, "etcd-cafile", path.Join(pki, "etcd/ca.crt"))
		args = setArg(args, "etcd-certfile", path.Join(pki, "apiserver-etcd-client.crt"))
		args = setArg(args, "etcd-keyfile", path.Join(pki, "apiserver-etcd-client.key"))
	}
	// A user's authorization-mode replaces this default anyway; a user's
	// structured authorization-config excludes the flag altogether.
	if _, ok := config.LastArg(cc.APIServer.ExtraArgs, "authorization-config"); !ok {
		args = setArg(args, "authorization-mode", "Node,RBAC")
	}
	return args
}

func controllerManagerPod(cfg *config.Config, opts Options) *corev1.Pod {
	kcm := cfg.Cluster.ControllerManager
	kubeconfig := path.Join(KubernetesDir, "controller-manager.conf")
	m := trustMounts(cfg, opts)
	m.add(kubeconfigVolume, kubeconfig, kubeconfig, true, fileOrCreate)
	m.addAll(kcm.ExtraVolumes)
	host := "127.0.0.1"
	if v, ok := config.LastArg(kcm.ExtraArgs, "bind-address"); ok {
		host = probeHost(v)
	}
	c := corev1.Container{
		Name:            ControllerManagerName,
		Image:           images.Kubernetes(cfg, ControllerManagerName),
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         command(ControllerManagerName, controllerManagerArgs(cfg, opts, kubeconfig), kcm.ExtraArgs),
		VolumeMounts:    m.volumeMounts(),
		LivenessProbe:   livenessProbe(host, "/healthz", corev1.URISchemeHTTPS),
		StartupProbe:    startupProbe(host, "/healthz", corev1.URISchemeHTTPS, healthCheckTimeout(cfg)),
		Resources:       cpuRequest("200m"),
		Env:             env(opts.ProxyEnv, kcm.ExtraEnvs),
		Ports:           probePort(ControllerManagerPort),
	}
	return componentPod(c, m.volumes(), nil)
}

func controllerManagerArgs(cfg *config.Config, opts Options, kubeconfig string) []config.Arg {
	cc := &cfg.Cluster
	pki := cc.CertificatesDir
	ca := path.Join(pki, "ca.crt")
	args := []config.Arg{
		{Name: "bind-address", Value: "127.0.0.1"},
		{Name: "leader-elect", Value: "true"},
		{Name: "kubeconfig", Value: kubeconfig},
		{Name: "authentication-kubeconfig", Value: kubeconfig},
		{Name: "authorization-kubeconfig", Value: kubeconfig},
		{Name: "client-ca-file", Value: ca},
		{Name: "requestheader-client-ca-file", Value: path.Join(pki, "front-proxy-ca.crt")},
		{Name: "root-ca-file", Value: ca},
		{Name: "service-account-private-key-file", Value: path.Join(pki, "sa.key")},
		{Name: "cluster-signing-cert-file", Value: ca},
		{Name: "cluster-signing-key-file", Value: path.Join(pki, "ca.key")},
		{Name: "use-service-account-credentials", Value: "true"},
		{Name: "controllers", Value: "*,bootstrapsigner,tokencleaner"},
	}
	if opts.ExternalCA {
		args = setArg(args, "cluster-signing-key-file", "")
		args = setArg(args, "cluster-signing-cert-file", "")
	}
	if n := cc.Networking; n.PodSubnet != "" {
		args = setArg(args, "allocate-node-cidrs", "true")
		args = setArg(args, "cluster-cidr", n.PodSubnet)
		if n.ServiceSubnet != "" {
			args = setArg(args, "service-cluster-ip-range", n.ServiceSubnet)
		}
	}
	if cc.ClusterName != "" {
		args = setArg(args, "cluster-name", cc.ClusterName)
	}
	return args
}

func schedulerPod(cfg *config.Config, opts Options) *corev1.Pod {
	s := cfg.Cluster.Scheduler
	kubeconfig := path.Join(KubernetesDir, "scheduler.conf")
	m := mounts{}
	m.add(kubeconfigVolume, kubeconfig, kubeconfig, true, fileOrCreate)
	m.addAll(s.ExtraVolumes)
	host := "127.0.0.1"
	if v, ok := config.LastArg(s.ExtraArgs, "bind-address"); ok {
		host = probeHost(v)
	}
	args := []config.Arg{
		{Name: "bind-address", Value: "127.0.0.1"},
		{Name: "leader-elect", Value: "true"},
		{Name: "kubeconfig", Value: kubeconfig},
		{Name: "authentication-kubeconfig", Value: kubeconfig},
		{Name: "authorization-kubeconfig", Value: kubeconfig},
	}
	c := corev1.Container{
		Name:            SchedulerName,
		Image:           images.Kubernetes(cfg, SchedulerName),
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         command(SchedulerName, args, s.ExtraArgs),
		VolumeMounts:    m.volumeMounts(),
		LivenessProbe:   livenessProbe(host, "/livez", corev1.URISchemeHTTPS),
		ReadinessProbe:  readinessProbe(host, "/readyz", corev1.URISchemeHTTPS),
		StartupProbe:    startupProbe(host, "/livez", corev1.URISchemeHTTPS, healthCheckTimeout(cfg)),
		Resources:       cpuRequest("100m"),
		Env:             env(opts.ProxyEnv, s.ExtraEnvs),
		Ports:           probePort(SchedulerPort),
	}
	return componentPod(c, m.volumes(), nil)
}
