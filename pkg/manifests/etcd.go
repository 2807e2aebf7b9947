package manifests

import (
	"net/url"
	"path"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/images"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// Etcd renders the local etcd member's manifest, a new single-member
// cluster as `kubeadm init phase etcd local` writes it. With external etcd
// there is nothing to render.
func Etcd(cfg *config.Config) ([]rootfs.File, error) {
	return etcdManifest(cfg, "")
}

// EtcdMember is the manifest of a member joining an existing etcd cluster:
// initialCluster lists every member (name=peerURL, this one included) and
// the cluster state is "existing", as kubeadm join writes it.
func EtcdMember(cfg *config.Config, initialCluster string) ([]rootfs.File, error) {
	if initialCluster == "" {
		return nil, errorf(EtcdName, "joining etcd needs the initial cluster")
	}
	return etcdManifest(cfg, initialCluster)
}

func etcdManifest(cfg *config.Config, initialCluster string) ([]rootfs.File, error) {
	if cfg != nil && cfg.Cluster.Etcd.External != nil {
		return nil, nil
	}
	if err := checkResolved(cfg, EtcdName); err != nil {
		return nil, err
	}
	if cfg.Cluster.Etcd.Local == nil {
		return nil, errorf(EtcdName, "etcd has neither local nor external settings; default the configuration first")
	}
	f, err := manifestFile(cfg, etcdPod(cfg, initialCluster))
	if err != nil {
		return nil, err
	}
	return []rootfs.File{f}, nil
}

func etcdPod(cfg *config.Config, initialCluster string) *corev1.Pod {
	local := cfg.Cluster.Etcd.Local
	certsDir := path.Join(cfg.Cluster.CertificatesDir, "etcd")
	dir := directoryOrCreate
	host, port, scheme := etcdProbeEndpoint(local, loopback(cfg.Init.LocalAPIEndpoint.AdvertiseAddress))
	timeout := healthCheckTimeout(cfg)
	c := corev1.Container{
		Name:            EtcdName,
		Image:           images.Etcd(cfg),
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         command("etcd", etcdArgs(cfg, initialCluster), local.ExtraArgs),
		// kubeadm lists the data directory first, not sorted.
		VolumeMounts: []corev1.VolumeMount{
			{Name: "etcd-data", MountPath: local.DataDir},
			{Name: "etcd-certs", MountPath: certsDir},
		},
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: resource.MustParse("100Mi"),
		}},
		// kubeadm#3039: /livez for liveness, /readyz for readiness and startup.
		LivenessProbe:  livenessProbe(host, "/livez", scheme),
		ReadinessProbe: readinessProbe(host, "/readyz", scheme),
		StartupProbe:   startupProbe(host, "/readyz", scheme, timeout),
		Env:            env(local.ExtraEnvs),
		Ports:          probePort(port),
	}
	volumes := []corev1.Volume{
		hostPathVolume("etcd-certs", certsDir, dir),
		hostPathVolume("etcd-data", local.DataDir, dir),
	}
	return componentPod(c, volumes, map[string]string{EtcdClientURLsAnnotation: etcdClientURL(cfg)})
}

func etcdArgs(cfg *config.Config, initialCluster string) []config.Arg {
	adv := cfg.Init.LocalAPIEndpoint.AdvertiseAddress
	lo := loopback(adv)
	pki := cfg.Cluster.CertificatesDir
	name := cfg.Init.NodeRegistration.Name
	clientURL := etcdClientURL(cfg)
	peerURL := EtcdPeerURL(cfg)
	args := []config.Arg{
		{Name: "name", Value: name},
		{Name: "listen-client-urls", Value: "https://" + hostPort(lo, EtcdClientPort) + "," + clientURL},
		{Name: "advertise-client-urls", Value: clientURL},
		{Name: "listen-peer-urls", Value: peerURL},
		{Name: "initial-advertise-peer-urls", Value: peerURL},
		{Name: "data-dir", Value: cfg.Cluster.Etcd.Local.DataDir},
		{Name: "cert-file", Value: path.Join(pki, "etcd/server.crt")},
		{Name: "key-file", Value: path.Join(pki, "etcd/server.key")},
		{Name: "trusted-ca-file", Value: path.Join(pki, "etcd/ca.crt")},
		{Name: "client-cert-auth", Value: "true"},
		{Name: "peer-cert-file", Value: path.Join(pki, "etcd/peer.crt")},
		{Name: "peer-key-file", Value: path.Join(pki, "etcd/peer.key")},
		{Name: "peer-trusted-ca-file", Value: path.Join(pki, "etcd/ca.crt")},
		{Name: "peer-client-cert-auth", Value: "true"},
		{Name: "snapshot-count", Value: "10000"},
		{Name: "listen-metrics-urls", Value: "http://" + hostPort(lo, EtcdMetricsPort)},
		{Name: "feature-gates", Value: "InitialCorruptCheck=true"},
		{Name: "watch-progress-notify-interval", Value: "5s"},
		{Name: "initial-cluster", Value: name + "=" + peerURL},
	}
	if initialCluster != "" {
		args[len(args)-1].Value = initialCluster
		args = append(args, config.Arg{Name: "initial-cluster-state", Value: "existing"})
	}
	return args
}

// EtcdPeerURL is this node's etcd peer URL (--initial-advertise-peer-urls).
func EtcdPeerURL(cfg *config.Config) string {
	return "https://" + hostPort(cfg.Init.LocalAPIEndpoint.AdvertiseAddress, EtcdPeerPort)
}

func etcdClientURL(cfg *config.Config) string {
	return "https://" + hostPort(cfg.Init.LocalAPIEndpoint.AdvertiseAddress, EtcdClientPort)
}

// etcdProbeEndpoint probes the first of the listen-metrics-urls a user set,
// else http on the loopback address and the metrics port.
func etcdProbeEndpoint(local *config.LocalEtcd, lo string) (string, int32, corev1.URIScheme) {
	v, ok := config.LastArg(local.ExtraArgs, "listen-metrics-urls")
	if !ok {
		return lo, EtcdMetricsPort, corev1.URISchemeHTTP
	}
	u, err := url.Parse(strings.Split(v, ",")[0])
	if err != nil {
		return lo, EtcdMetricsPort, corev1.URISchemeHTTP
	}
	scheme := corev1.URISchemeHTTP
	if u.Scheme == "https" {
		scheme = corev1.URISchemeHTTPS
	}
	host := u.Hostname()
	if host == "" {
		host = lo
	}
	port := int32(EtcdMetricsPort)
	if p, err := strconv.ParseUint(u.Port(), 10, 16); err == nil && p > 0 {
		port = int32(p)
	}
	return host, port, scheme
}
