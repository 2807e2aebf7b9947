package addons

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// kubeadm 1.37's Corefile for cluster.local, as its ConfigMap holds it.
const defaultCorefile = `.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
`

func TestCorefile(t *testing.T) {
	for _, tc := range []struct {
		domain string
		want   string
	}{
		{"cluster.local", defaultCorefile},
		{"corp.example", strings.ReplaceAll(defaultCorefile, "cluster.local", "corp.example")},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			cfg := testConfig(t, func(c *config.Config) { c.Cluster.Networking.DNSDomain = tc.domain })
			cm := find[*corev1.ConfigMap](t, coreDNS(t, cfg), "coredns")
			if len(cm.Data) != 1 {
				t.Errorf("ConfigMap keys = %v, want only Corefile", cm.Data)
			}
			got := cm.Data["Corefile"]
			if got != tc.want {
				t.Errorf("Corefile:\n%s\nwant:\n%s", got, tc.want)
			}
			for _, line := range []string{
				"kubernetes " + tc.domain + " in-addr.arpa ip6.arpa {",
				"disable success " + tc.domain,
				"disable denial " + tc.domain,
			} {
				if !strings.Contains(got, line) {
					t.Errorf("Corefile lacks %q", line)
				}
			}
			if tc.domain != "cluster.local" && strings.Contains(got, "cluster.local") {
				t.Errorf("Corefile still names cluster.local:\n%s", got)
			}
		})
	}
}

func TestDNSService(t *testing.T) {
	for _, tc := range []struct {
		name, subnet, want string
	}{
		{"default", "", "10.96.0.10"},
		{"custom", "10.100.0.0/16", "10.100.0.10"},
		{"ipv6", "fd00:10:96::/112", "fd00:10:96::a"},
		// kubeadm sets only clusterIP, from the first subnet; the API server
		// makes the Service SingleStack in that family.
		{"dual-stack", "10.100.0.0/16,fd00:10:96::/112", "10.100.0.10"},
		{"dual-stack ipv6 first", "fd00:10:96::/112,10.100.0.0/16", "fd00:10:96::a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, func(c *config.Config) {
				if tc.subnet != "" {
					c.Cluster.Networking.ServiceSubnet = tc.subnet
				}
			})
			svc := find[*corev1.Service](t, coreDNS(t, cfg), "kube-dns")
			if svc.Spec.ClusterIP != tc.want {
				t.Errorf("clusterIP = %q, want %q", svc.Spec.ClusterIP, tc.want)
			}
			if svc.Spec.ClusterIPs != nil || svc.Spec.IPFamilies != nil || svc.Spec.IPFamilyPolicy != nil {
				t.Errorf("clusterIPs %v, ipFamilies %v, ipFamilyPolicy %v: want them left to the API server as kubeadm does",
					svc.Spec.ClusterIPs, svc.Spec.IPFamilies, svc.Spec.IPFamilyPolicy)
			}
		})
	}
}

func TestDNSServiceShape(t *testing.T) {
	svc := find[*corev1.Service](t, coreDNS(t, testConfig(t, nil)), "kube-dns")
	wantLabels := map[string]string{"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}
	wantAnnotations := map[string]string{"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}
	wantPorts := []corev1.ServicePort{
		{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
		{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
		{Name: "metrics", Port: 9153, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9153)},
	}
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"labels", svc.Labels, wantLabels},
		{"annotations", svc.Annotations, wantAnnotations},
		{"ports", svc.Spec.Ports, wantPorts},
		{"selector", svc.Spec.Selector, map[string]string{"k8s-app": "kube-dns"}},
		{"type", svc.Spec.Type, corev1.ServiceType("")},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestCoreDNSImage(t *testing.T) {
	for _, tc := range []struct {
		name      string
		repo      string // imageRepository; "" keeps the default
		dnsRepo   string
		dnsTag    string
		wantImage string
	}{
		{"default", "", "", "", "registry.k8s.io/coredns/coredns:v1.14.6"},
		{"custom repository", "mirror.example/k8s", "", "", "mirror.example/k8s/coredns:v1.14.6"},
		{"dns repository", "mirror.example/k8s", "dns.example/dns", "", "dns.example/dns/coredns:v1.14.6"},
		{"dns repository is the default registry", "mirror.example/k8s", "registry.k8s.io", "", "registry.k8s.io/coredns/coredns:v1.14.6"},
		{"dns tag", "", "", "v1.99.0", "registry.k8s.io/coredns/coredns:v1.99.0"},
		{"dns repository and tag", "", "dns.example", "v1.99.0", "dns.example/coredns:v1.99.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, func(c *config.Config) {
				if tc.repo != "" {
					c.Cluster.ImageRepository = tc.repo
				}
				c.Cluster.DNS.ImageRepository = tc.dnsRepo
				c.Cluster.DNS.ImageTag = tc.dnsTag
			})
			d := find[*appsv1.Deployment](t, coreDNS(t, cfg), "coredns")
			if got := d.Spec.Template.Spec.Containers[0].Image; got != tc.wantImage {
				t.Errorf("image = %q, want %q", got, tc.wantImage)
			}
		})
	}
}

func TestCoreDNSDeployment(t *testing.T) {
	d := find[*appsv1.Deployment](t, coreDNS(t, testConfig(t, nil)), "coredns")
	ps := d.Spec.Template.Spec
	c := ps.Containers[0]
	kubeDNS := map[string]string{"k8s-app": "kube-dns"}
	for _, tc := range []struct {
		what      string
		got, want any
	}{
		{"labels", d.Labels, kubeDNS},
		{"selector", d.Spec.Selector.MatchLabels, kubeDNS},
		{"pod labels", d.Spec.Template.Labels, kubeDNS},
		{"replicas", *d.Spec.Replicas, int32(2)},
		{"strategy", d.Spec.Strategy.Type, appsv1.RollingUpdateDeploymentStrategyType},
		{"maxUnavailable", d.Spec.Strategy.RollingUpdate.MaxUnavailable.String(), "1"},
		{"priorityClassName", ps.PriorityClassName, "system-cluster-critical"},
		{"serviceAccountName", ps.ServiceAccountName, "coredns"},
		{"dnsPolicy", ps.DNSPolicy, corev1.DNSDefault},
		{"nodeSelector", ps.NodeSelector, map[string]string{"kubernetes.io/os": "linux"}},
		{"tolerations", ps.Tolerations, []corev1.Toleration{
			{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
			{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule},
		}},
		{"anti-affinity", ps.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector.MatchExpressions[0].Values, []string{"kube-dns"}},
		{"anti-affinity topology", ps.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey, "kubernetes.io/hostname"},
		{"containers", len(ps.Containers), 1},
		{"args", c.Args, []string{"-conf", "/etc/coredns/Corefile"}},
		{"limits", c.Resources.Limits.Memory().String(), "170Mi"},
		{"requests cpu", c.Resources.Requests.Cpu().String(), "100m"},
		{"requests memory", c.Resources.Requests.Memory().String(), "70Mi"},
		{"liveness", []any{c.LivenessProbe.HTTPGet.Path, c.LivenessProbe.HTTPGet.Port.String()}, []any{"/health", "liveness-probe"}},
		{"readiness", []any{c.ReadinessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Port.String()}, []any{"/ready", "readiness-probe"}},
		{"allowPrivilegeEscalation", *c.SecurityContext.AllowPrivilegeEscalation, false},
		{"readOnlyRootFilesystem", *c.SecurityContext.ReadOnlyRootFilesystem, true},
		{"capabilities", *c.SecurityContext.Capabilities, corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}, Drop: []corev1.Capability{"ALL"}}},
		{"volume", ps.Volumes[0].ConfigMap.Name, "coredns"},
		{"volume items", ps.Volumes[0].ConfigMap.Items, []corev1.KeyToPath{{Key: "Corefile", Path: "Corefile"}}},
		{"volume mount", c.VolumeMounts, []corev1.VolumeMount{{Name: "config-volume", MountPath: "/etc/coredns", ReadOnly: true}}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.what, tc.got, tc.want)
		}
	}
	ports := map[string]string{}
	for _, p := range c.Ports {
		ports[p.Name] = fmt.Sprintf("%d/%s", p.ContainerPort, p.Protocol)
	}
	wantPorts := map[string]string{"dns": "53/UDP", "dns-tcp": "53/TCP", "metrics": "9153/TCP", "liveness-probe": "8080/TCP", "readiness-probe": "8181/TCP"}
	if !reflect.DeepEqual(ports, wantPorts) {
		t.Errorf("ports = %v, want %v", ports, wantPorts)
	}
}

func TestCoreDNSRBAC(t *testing.T) {
	objs := coreDNS(t, testConfig(t, nil))
	role := find[*rbacv1.ClusterRole](t, objs, "system:coredns")
	wantRules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
	}
	if !reflect.DeepEqual(role.Rules, wantRules) {
		t.Errorf("rules = %v, want %v", role.Rules, wantRules)
	}
	b := find[*rbacv1.ClusterRoleBinding](t, objs, "system:coredns")
	wantRef := rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:coredns"}
	wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "coredns", Namespace: "kube-system"}}
	if b.RoleRef != wantRef || !reflect.DeepEqual(b.Subjects, wantSubjects) {
		t.Errorf("binding = %v %v, want %v %v", b.RoleRef, b.Subjects, wantRef, wantSubjects)
	}
}

func TestCoreDNSPodDisruptionBudget(t *testing.T) {
	pdb := find[*policyv1.PodDisruptionBudget](t, coreDNS(t, testConfig(t, nil)), "coredns")
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.String() != "1" || pdb.Spec.MinAvailable != nil {
		t.Errorf("maxUnavailable %v, minAvailable %v; want 1 and unset", pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
	}
	if want := map[string]string{"k8s-app": "kube-dns"}; !reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, want) {
		t.Errorf("selector = %v, want %v", pdb.Spec.Selector.MatchLabels, want)
	}
}

func TestCoreDNSErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*config.Config)
		want string
	}{
		{"bad service subnet", func(c *config.Config) { c.Cluster.Networking.ServiceSubnet = "10.96.0.0/33" }, `addons: coredns: service IP from networking.serviceSubnet "10.96.0.0/33"`},
		{"subnet too small", func(c *config.Config) { c.Cluster.Networking.ServiceSubnet = "10.96.0.0/29" }, "has no address number 10"},
		{"no domain", func(c *config.Config) { c.Cluster.Networking.DNSDomain = "" }, "addons: coredns: networking.dnsDomain is empty"},
		{"no repository", func(c *config.Config) { c.Cluster.ImageRepository = "" }, "addons: coredns: image: imageRepository is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, nil)
			tc.edit(cfg)
			objs, err := CoreDNS(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
			if objs != nil {
				t.Errorf("objects returned with an error: %v", objs)
			}
		})
	}
}
