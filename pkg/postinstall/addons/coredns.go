package addons

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/images"
)

// Names of kubeadm 1.37's CoreDNS objects.
const (
	coreDNSName        = "coredns" // Deployment, ConfigMap, ServiceAccount (and our PDB)
	coreDNSRoleName    = "system:coredns"
	coreDNSServiceName = "kube-dns"
	coreDNSImageName   = "coredns"
	coreDNSReplicas    = 2
	corefileKey        = "Corefile"
	coreDNSConfigDir   = "/etc/coredns"
	coreDNSVolume      = "config-volume"
)

func coreDNSLabels() map[string]string { return map[string]string{"k8s-app": "kube-dns"} }

// CoreDNS returns the objects kubeadm 1.37's CoreDNS addon creates, in apply
// order: ServiceAccount, ClusterRole, ClusterRoleBinding, ConfigMap,
// Deployment, Service, and a PodDisruptionBudget kubeadm does not create.
// With dns.disabled it returns nil.
func CoreDNS(cfg *config.Config) ([]runtime.Object, error) {
	cc := &cfg.Cluster
	if cc.DNS.Disabled {
		return nil, nil
	}
	domain := cc.Networking.DNSDomain
	if domain == "" {
		return nil, errors.New("addons: coredns: networking.dnsDomain is empty")
	}
	dnsIP, err := config.DNSIP(cc.Networking.ServiceSubnet)
	if err != nil {
		return nil, fmt.Errorf("addons: coredns: service IP from networking.serviceSubnet %q: %w", cc.Networking.ServiceSubnet, err)
	}
	if cc.ImageRepository == "" && cc.DNS.ImageRepository == "" {
		return nil, errors.New("addons: coredns: image: imageRepository is empty")
	}
	image := images.CoreDNS(cfg)
	return []runtime.Object{
		&corev1.ServiceAccount{
			TypeMeta:   kindServiceAccount,
			ObjectMeta: objectMeta(namespace, coreDNSName, nil),
		},
		coreDNSClusterRole(),
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   kindClusterRoleBinding,
			ObjectMeta: objectMeta("", coreDNSRoleName, nil),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: coreDNSRoleName},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: coreDNSName, Namespace: namespace}},
		},
		&corev1.ConfigMap{
			TypeMeta:   kindConfigMap,
			ObjectMeta: objectMeta(namespace, coreDNSName, nil),
			Data:       map[string]string{corefileKey: corefile(domain)},
		},
		coreDNSDeployment(image),
		coreDNSService(dnsIP.String()),
		coreDNSPodDisruptionBudget(),
	}, nil
}

// corefile is kubeadm 1.37's default Corefile for a cluster domain,
// byte for byte, so that `kubeadm upgrade` recognises it as the default and
// migrates it rather than keeping it as a user's.
func corefile(domain string) string {
	var b strings.Builder
	line := func(depth int, s string) {
		// kubeadm indents blocks by 4 spaces and their contents by 3 more.
		b.WriteString(strings.Repeat(" ", []int{0, 4, 7}[depth]) + s + "\n")
	}
	line(0, ".:53 {")
	line(1, "errors")
	line(1, "health {")
	line(2, "lameduck 5s")
	line(1, "}")
	line(1, "ready")
	line(1, "kubernetes "+domain+" in-addr.arpa ip6.arpa {")
	line(2, "pods insecure")
	line(2, "fallthrough in-addr.arpa ip6.arpa")
	line(2, "ttl 30")
	line(1, "}")
	line(1, "prometheus :9153")
	line(1, "forward . /etc/resolv.conf {")
	line(2, "max_concurrent 1000")
	line(1, "}")
	line(1, "cache 30 {")
	line(2, "disable success "+domain)
	line(2, "disable denial "+domain)
	line(1, "}")
	line(1, "loop")
	line(1, "reload")
	line(1, "loadbalance")
	line(0, "}")
	return b.String()
}

func coreDNSClusterRole() *rbacv1.ClusterRole {
	listWatch := []string{"list", "watch"}
	return &rbacv1.ClusterRole{
		TypeMeta:   kindClusterRole,
		ObjectMeta: objectMeta("", coreDNSRoleName, nil),
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: listWatch},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: slices.Clone(listWatch)},
		},
	}
}

func coreDNSDeployment(image string) *appsv1.Deployment {
	const (
		livenessPort  = "liveness-probe"
		readinessPort = "readiness-probe"
	)
	return &appsv1.Deployment{
		TypeMeta:   kindDeployment,
		ObjectMeta: objectMeta(namespace, coreDNSName, coreDNSLabels()),
		Spec: appsv1.DeploymentSpec{
			// kubeadm keeps the replica count of a Deployment that already
			// exists; a forced server-side apply of this object sets it back
			// to 2.
			Replicas: ptr.To[int32](coreDNSReplicas),
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: ptr.To(intstr.FromInt32(1))},
			},
			Selector: &metav1.LabelSelector{MatchLabels: coreDNSLabels()},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: coreDNSLabels()},
				Spec: corev1.PodSpec{
					PriorityClassName:  "system-cluster-critical",
					ServiceAccountName: coreDNSName,
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
							Weight: 100,
							PodAffinityTerm: corev1.PodAffinityTerm{
								LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
									Key: "k8s-app", Operator: metav1.LabelSelectorOpIn, Values: []string{"kube-dns"},
								}}},
								TopologyKey: corev1.LabelHostname,
							},
						}},
					}},
					Tolerations: []corev1.Toleration{
						{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
						{Key: controlPlaneTaintKey, Effect: corev1.TaintEffectNoSchedule},
					},
					NodeSelector: map[string]string{osLabel: "linux"},
					Containers: []corev1.Container{{
						Name:            coreDNSImageName,
						Image:           image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Resources: corev1.ResourceRequirements{
							Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("170Mi")},
							Requests: corev1.ResourceList{
								corev1.ResourceCPU:    resource.MustParse("100m"),
								corev1.ResourceMemory: resource.MustParse("70Mi"),
							},
						},
						Args:         []string{"-conf", coreDNSConfigDir + "/" + corefileKey},
						VolumeMounts: []corev1.VolumeMount{{Name: coreDNSVolume, MountPath: coreDNSConfigDir, ReadOnly: true}},
						Ports: []corev1.ContainerPort{
							{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
							{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
							{Name: "metrics", ContainerPort: 9153, Protocol: corev1.ProtocolTCP},
							{Name: livenessPort, ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
							{Name: readinessPort, ContainerPort: 8181, Protocol: corev1.ProtocolTCP},
						},
						LivenessProbe: &corev1.Probe{
							ProbeHandler:        httpGet("/health", livenessPort),
							InitialDelaySeconds: 60,
							TimeoutSeconds:      5,
							SuccessThreshold:    1,
							FailureThreshold:    5,
						},
						ReadinessProbe: &corev1.Probe{ProbeHandler: httpGet("/ready", readinessPort)},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							Capabilities: &corev1.Capabilities{
								Add:  []corev1.Capability{"NET_BIND_SERVICE"},
								Drop: []corev1.Capability{"ALL"},
							},
							ReadOnlyRootFilesystem: ptr.To(true),
						},
					}},
					DNSPolicy: corev1.DNSDefault,
					Volumes: []corev1.Volume{{
						Name: coreDNSVolume,
						VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: coreDNSName},
							Items:                []corev1.KeyToPath{{Key: corefileKey, Path: corefileKey}},
						}},
					}},
				},
			},
		},
	}
}

func httpGet(path, port string) corev1.ProbeHandler {
	return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
		Path: path, Port: intstr.FromString(port), Scheme: corev1.URISchemeHTTP,
	}}
}

// coreDNSService is kube-dns. kubeadm sets only clusterIP, the 10th address
// of the first service subnet, also on a dual-stack cluster: the API server
// then makes it a SingleStack Service of that address's family.
// kubeadm's manifest also carries resourceVersion "0" so that its Update
// works; server-side apply needs none.
func coreDNSService(clusterIP string) *corev1.Service {
	labels := coreDNSLabels()
	labels["kubernetes.io/cluster-service"] = "true"
	labels["kubernetes.io/name"] = "CoreDNS"
	meta := objectMeta(namespace, coreDNSServiceName, labels)
	meta.Annotations = map[string]string{
		"prometheus.io/port":   "9153",
		"prometheus.io/scrape": "true",
	}
	return &corev1.Service{
		TypeMeta:   kindService,
		ObjectMeta: meta,
		Spec: corev1.ServiceSpec{
			ClusterIP: clusterIP,
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
				{Name: "metrics", Port: 9153, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9153)},
			},
			Selector: coreDNSLabels(),
		},
	}
}

// coreDNSPodDisruptionBudget is kubeboot's addition: kubeadm 1.37 creates no
// PodDisruptionBudget for CoreDNS, so a node drain may evict both replicas
// at once. This keeps at least one running, matching the Deployment's
// maxUnavailable of 1.
func coreDNSPodDisruptionBudget() *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   kindPDB,
		ObjectMeta: objectMeta(namespace, coreDNSName, coreDNSLabels()),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: coreDNSLabels()},
		},
	}
}
