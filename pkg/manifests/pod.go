package manifests

import (
	"cmp"
	"fmt"
	"math"
	"net"
	"path"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// Component names: Pod, container and file names.
const (
	EtcdName              = "etcd"
	APIServerName         = "kube-apiserver"
	ControllerManagerName = "kube-controller-manager"
	SchedulerName         = "kube-scheduler"
)

// Ports and annotation keys kubeadm uses.
const (
	EtcdClientPort        = 2379
	EtcdPeerPort          = 2380
	EtcdMetricsPort       = 2381
	ControllerManagerPort = 10257
	SchedulerPort         = 10259

	APIServerEndpointAnnotation = "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"
	EtcdClientURLsAnnotation    = "kubeadm.kubernetes.io/etcd.advertise-client-urls"

	// KubernetesDir holds the components' kubeconfig files.
	KubernetesDir = "/etc/kubernetes"

	probePortName = "probe-port"
	// systemNodeCriticalPriority is the value of the system-node-critical
	// PriorityClass, which kubeadm writes next to the class name.
	systemNodeCriticalPriority = 2000001000
	manifestMode               = 0o600
)

// Path is where the manifest of a component goes.
func Path(cfg *config.Config, component string) string {
	dir := cfg.Kubelet.StaticPodPath
	if dir == "" {
		dir = config.DefaultManifestsDir
	}
	return path.Join(rootfs.Clean(dir), component+".yaml")
}

func componentPod(c corev1.Container, volumes []corev1.Volume, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        c.Name,
			Namespace:   metav1.NamespaceSystem,
			Labels:      map[string]string{"component": c.Name, "tier": "control-plane"},
			Annotations: annotations,
		},
		Spec: corev1.PodSpec{
			Containers:        []corev1.Container{c},
			Priority:          ptr.To[int32](systemNodeCriticalPriority),
			PriorityClassName: "system-node-critical",
			HostNetwork:       true,
			Volumes:           volumes,
			SecurityContext: &corev1.PodSecurityContext{
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
		},
	}
}

func manifestFile(cfg *config.Config, pod *corev1.Pod) (rootfs.File, error) {
	data, err := yaml.Marshal(pod)
	if err != nil {
		return rootfs.File{}, fmt.Errorf("manifests: %s: %w", pod.Name, err)
	}
	return rootfs.File{Path: Path(cfg, pod.Name), Mode: manifestMode, Data: data}, nil
}

func cpuRequest(cpu string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}
}

func probePort(port int32) []corev1.ContainerPort {
	return []corev1.ContainerPort{{Name: probePortName, ContainerPort: port, Protocol: corev1.ProtocolTCP}}
}

// The three probes, with kubeadm's timings. The startup probe's failure
// threshold covers the whole control-plane health-check timeout.
func livenessProbe(host, path string, scheme corev1.URIScheme) *corev1.Probe {
	return httpProbe(host, path, scheme, 10, 15, 8, 10)
}

func readinessProbe(host, path string, scheme corev1.URIScheme) *corev1.Probe {
	return httpProbe(host, path, scheme, 0, 15, 3, 1)
}

func startupProbe(host, path string, scheme corev1.URIScheme, timeout time.Duration) *corev1.Probe {
	const period = 10
	failures := int32(math.Ceil(timeout.Seconds() / period))
	return httpProbe(host, path, scheme, period, 15, failures, period)
}

func httpProbe(host, path string, scheme corev1.URIScheme, initialDelay, timeout, failures, period int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Host:   host,
			Path:   path,
			Port:   intstr.FromString(probePortName),
			Scheme: scheme,
		}},
		InitialDelaySeconds: initialDelay,
		TimeoutSeconds:      timeout,
		FailureThreshold:    failures,
		PeriodSeconds:       period,
	}
}

func healthCheckTimeout(cfg *config.Config) time.Duration {
	if t := cfg.Init.Timeouts; t != nil && t.ControlPlaneComponentHealthCheck != nil {
		return t.ControlPlaneComponentHealthCheck.Duration
	}
	return 4 * time.Minute
}

// probeHost is the address a probe uses for a component bound to addr: the
// unspecified addresses cannot be probed, so the kubelet's default (the
// Pod IP, here the node's) is used instead.
func probeHost(addr string) string {
	if addr == "0.0.0.0" || addr == "::" {
		return ""
	}
	return addr
}

// env merges environment lists, later lists winning by name, sorted by
// name as kubeadm sorts them.
func env(lists ...[]config.EnvVar) []corev1.EnvVar {
	byName := map[string]corev1.EnvVar{}
	for _, l := range lists {
		for _, e := range l {
			byName[e.Name] = e.EnvVar
		}
	}
	out := make([]corev1.EnvVar, 0, len(byName))
	for _, e := range byName {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b corev1.EnvVar) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func isIPv6(s string) bool {
	ip := net.ParseIP(s)
	return ip != nil && ip.To4() == nil
}

// loopback is the loopback address of the advertise address's family.
func loopback(advertise string) string {
	if isIPv6(advertise) {
		return "::1"
	}
	return "127.0.0.1"
}

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// checkResolved makes sure config.Resolve has run: the renderers need the
// advertise address, and etcd the node name.
func checkResolved(cfg *config.Config, component string) error {
	if cfg == nil {
		return fmt.Errorf("manifests: %s: no configuration", component)
	}
	if component == EtcdName && cfg.Init.NodeRegistration.Name == "" {
		return fmt.Errorf("manifests: %s: nodeRegistration.name is empty; resolve the configuration first", component)
	}
	adv := cfg.Init.LocalAPIEndpoint.AdvertiseAddress
	if net.ParseIP(adv) == nil {
		return fmt.Errorf("manifests: %s: localAPIEndpoint.advertiseAddress %q is not an IP address; resolve the configuration first", component, adv)
	}
	if p := cfg.Init.LocalAPIEndpoint.BindPort; p < 1 || p > 65535 {
		return fmt.Errorf("manifests: %s: localAPIEndpoint.bindPort %d is not a port", component, p)
	}
	return nil
}

const (
	directoryOrCreate = corev1.HostPathDirectoryOrCreate
	fileOrCreate      = corev1.HostPathFileOrCreate
)

func errorf(component, format string, args ...any) error {
	return fmt.Errorf("manifests: %s: %w", component, fmt.Errorf(format, args...))
}
