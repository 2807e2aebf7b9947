package addons

import (
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/clientcmd"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/pkg/config"
)

func TestKubeProxyImage(t *testing.T) {
	for _, tc := range []struct {
		name, repo, version, want string
	}{
		{"default", "", "", "registry.k8s.io/kube-proxy:v1.37.2"},
		{"custom repository", "mirror.example/k8s", "", "mirror.example/k8s/kube-proxy:v1.37.2"},
		// Unlike CoreDNS, kube-proxy has no per-addon repository and no
		// coredns-style path rule on the default registry.
		{"version with build metadata", "", "v1.37.2+build.1", "registry.k8s.io/kube-proxy:v1.37.2_build.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, func(c *config.Config) {
				if tc.repo != "" {
					c.Cluster.ImageRepository = tc.repo
				}
				if tc.version != "" {
					c.Cluster.KubernetesVersion = tc.version
				}
				c.Cluster.DNS.ImageRepository = "ignored.example"
			})
			ds := find[*appsv1.DaemonSet](t, kubeProxy(t, cfg), "kube-proxy")
			if got := ds.Spec.Template.Spec.Containers[0].Image; got != tc.want {
				t.Errorf("image = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestKubeProxyConfigConf(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*config.Config)
	}{
		{"defaults", nil},
		{"custom", func(c *config.Config) {
			c.Cluster.Networking.PodSubnet = "10.244.0.0/16"
			c.KubeProxy.ClusterCIDR = "10.244.0.0/16"
			c.KubeProxy.Mode = "iptables"
			c.KubeProxy.FeatureGates = map[string]bool{"SomeGate": true}
			c.KubeProxy.IPTables.MasqueradeBit = ptr.To[int32](14)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, tc.edit)
			cm := find[*corev1.ConfigMap](t, kubeProxy(t, cfg), "kube-proxy")
			if want := map[string]string{"app": "kube-proxy"}; !reflect.DeepEqual(cm.Labels, want) {
				t.Errorf("labels = %v, want %v", cm.Labels, want)
			}
			if len(cm.Data) != 2 {
				t.Errorf("keys = %v, want config.conf and kubeconfig.conf", cm.Data)
			}
			conf := cm.Data["config.conf"]
			var got kubeproxyv1alpha1.KubeProxyConfiguration
			if err := yaml.UnmarshalStrict([]byte(conf), &got); err != nil {
				t.Fatalf("config.conf does not decode strictly: %v\n%s", err, conf)
			}
			if got.APIVersion != "kubeproxy.config.k8s.io/v1alpha1" || got.Kind != "KubeProxyConfiguration" {
				t.Errorf("config.conf is %s %s", got.APIVersion, got.Kind)
			}
			if !equality.Semantic.DeepEqual(got, cfg.KubeProxy) {
				t.Errorf("config.conf differs from the configuration:\n%s", conf)
			}
			if got.ClientConnection.Kubeconfig != "/var/lib/kube-proxy/kubeconfig.conf" {
				t.Errorf("clientConnection.kubeconfig = %q: kube-proxy would not find the kubeconfig.conf the ConfigMap mounts", got.ClientConnection.Kubeconfig)
			}
		})
	}
}

func TestKubeProxyKubeconfig(t *testing.T) {
	for _, server := range []string{testServer, "https://[2001:db8::10]:6443", "https://cp.example:443"} {
		t.Run(server, func(t *testing.T) {
			objs, err := KubeProxy(testConfig(t, nil), server)
			if err != nil {
				t.Fatal(err)
			}
			cm := find[*corev1.ConfigMap](t, objs, "kube-proxy")
			kc, err := clientcmd.Load([]byte(cm.Data["kubeconfig.conf"]))
			if err != nil {
				t.Fatalf("kubeconfig.conf: %v\n%s", err, cm.Data["kubeconfig.conf"])
			}
			ctx := kc.Contexts[kc.CurrentContext]
			if ctx == nil {
				t.Fatalf("no current context %q", kc.CurrentContext)
			}
			cluster, user := kc.Clusters[ctx.Cluster], kc.AuthInfos[ctx.AuthInfo]
			if cluster == nil || user == nil {
				t.Fatalf("context %q names a missing cluster or user", kc.CurrentContext)
			}
			for _, c := range []struct{ what, got, want string }{
				{"server", cluster.Server, server},
				{"certificate-authority", cluster.CertificateAuthority, "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"},
				{"tokenFile", user.TokenFile, "/var/run/secrets/kubernetes.io/serviceaccount/token"},
				{"namespace", ctx.Namespace, "default"},
			} {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
				}
			}
			if len(cluster.CertificateAuthorityData) > 0 || user.Token != "" || len(user.ClientCertificateData) > 0 {
				t.Error("kubeconfig.conf embeds credentials; it must only point at the service account's files")
			}
		})
	}
}

func TestKubeProxyDaemonSet(t *testing.T) {
	ds := find[*appsv1.DaemonSet](t, kubeProxy(t, testConfig(t, nil)), "kube-proxy")
	ps := ds.Spec.Template.Spec
	c := ps.Containers[0]
	kp := map[string]string{"k8s-app": "kube-proxy"}
	for _, tc := range []struct {
		what      string
		got, want any
	}{
		{"labels", ds.Labels, kp},
		{"selector", ds.Spec.Selector.MatchLabels, kp},
		{"pod labels", ds.Spec.Template.Labels, kp},
		{"updateStrategy", ds.Spec.UpdateStrategy, appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType}},
		{"command", c.Command, []string{"/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf", "--hostname-override=$(NODE_NAME)"}},
		{"env", c.Env, []corev1.EnvVar{{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}}},
		{"privileged", *c.SecurityContext.Privileged, true},
		{"volumeMounts", c.VolumeMounts, []corev1.VolumeMount{
			{Name: "kube-proxy", MountPath: "/var/lib/kube-proxy"},
			{Name: "xtables-lock", MountPath: "/run/xtables.lock"},
			{Name: "lib-modules", MountPath: "/lib/modules", ReadOnly: true},
		}},
		{"volumes", ps.Volumes, []corev1.Volume{
			{Name: "kube-proxy", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-proxy"}}}},
			{Name: "xtables-lock", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/run/xtables.lock", Type: ptr.To(corev1.HostPathFileOrCreate)}}},
			{Name: "lib-modules", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/lib/modules"}}},
		}},
		{"hostNetwork", ps.HostNetwork, true},
		{"priorityClassName", ps.PriorityClassName, "system-node-critical"},
		{"serviceAccountName", ps.ServiceAccountName, "kube-proxy"},
		{"tolerations", ps.Tolerations, []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
		{"nodeSelector", ps.NodeSelector, map[string]string{"kubernetes.io/os": "linux"}},
		{"imagePullPolicy", c.ImagePullPolicy, corev1.PullIfNotPresent},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.what, tc.got, tc.want)
		}
	}
}

func TestKubeProxyRBAC(t *testing.T) {
	objs := kubeProxy(t, testConfig(t, nil))
	crb := find[*rbacv1.ClusterRoleBinding](t, objs, "kubeadm:node-proxier")
	role := find[*rbacv1.Role](t, objs, "kube-proxy")
	rb := find[*rbacv1.RoleBinding](t, objs, "kube-proxy")
	for _, tc := range []struct {
		what      string
		got, want any
	}{
		{"node-proxier roleRef", crb.RoleRef, rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:node-proxier"}},
		{"node-proxier subjects", crb.Subjects, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "kube-proxy", Namespace: "kube-system"}}},
		{"role rules", role.Rules, []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"kube-proxy"}}}},
		{"rolebinding roleRef", rb.RoleRef, rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "kube-proxy"}},
		{"rolebinding subjects", rb.Subjects, []rbacv1.Subject{{Kind: "Group", Name: "system:bootstrappers:kubeadm:default-node-token"}}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.what, tc.got, tc.want)
		}
	}
}

func TestKubeProxyErrors(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		edit      func(*config.Config)
		want      string
	}{
		{"empty URL", "", nil, `addons: kube-proxy: API server URL "": not an https:// URL`},
		{"http", "http://192.0.2.10:6443", nil, "not an https:// URL"},
		{"no scheme", "192.0.2.10:6443", nil, `API server URL "192.0.2.10:6443"`},
		{"no host", "https://:6443", nil, "no host"},
		{"path", "https://192.0.2.10:6443/api", nil, "want only https://host:port"},
		{"no repository", testServer, func(c *config.Config) { c.Cluster.ImageRepository = "" }, "addons: kube-proxy: image: imageRepository is empty"},
		{"no version", testServer, func(c *config.Config) { c.Cluster.KubernetesVersion = "" }, "addons: kube-proxy: image: kubernetesVersion is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, nil)
			if tc.edit != nil {
				tc.edit(cfg)
			}
			objs, err := KubeProxy(cfg, tc.url)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
			if objs != nil {
				t.Errorf("objects returned with an error: %v", objs)
			}
		})
	}
}
