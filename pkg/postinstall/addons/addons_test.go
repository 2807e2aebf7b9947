package addons

import (
	"encoding/json"
	"net"
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	sigsjson "sigs.k8s.io/json"

	"github.com/kubeboot/kubeboot/pkg/config"
)

const testServer = "https://192.0.2.10:6443"

// testConfig is a defaulted, resolved configuration, changed by edit.
func testConfig(t *testing.T, edit func(*config.Config)) *config.Config {
	t.Helper()
	cfg := config.Defaults()
	if edit != nil {
		edit(cfg)
	}
	if err := config.Resolve(cfg, config.StaticFacts{Host: "n1", IPs: []net.IP{net.ParseIP("192.0.2.10")}}); err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return cfg
}

func coreDNS(t *testing.T, cfg *config.Config) []runtime.Object {
	t.Helper()
	objs, err := CoreDNS(cfg)
	if err != nil {
		t.Fatalf("CoreDNS: %v", err)
	}
	return objs
}

func kubeProxy(t *testing.T, cfg *config.Config) []runtime.Object {
	t.Helper()
	objs, err := KubeProxy(cfg, testServer)
	if err != nil {
		t.Fatalf("KubeProxy: %v", err)
	}
	return objs
}

// find returns the only object of type T named name.
func find[T runtime.Object](t *testing.T, objs []runtime.Object, name string) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if x, ok := o.(T); ok && mustMeta(t, o).GetName() == name {
			found = append(found, x)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want one %T named %q, found %d", zero, name, len(found))
	}
	return found[0]
}

func mustMeta(t *testing.T, o runtime.Object) interface {
	GetName() string
	GetNamespace() string
} {
	t.Helper()
	m, err := meta.Accessor(o)
	if err != nil {
		t.Fatalf("%T: %v", o, err)
	}
	return m
}

type ref struct{ apiVersion, kind, namespace, name string }

func refs(t *testing.T, objs []runtime.Object) []ref {
	t.Helper()
	var out []ref
	for _, o := range objs {
		gvk := o.GetObjectKind().GroupVersionKind()
		m := mustMeta(t, o)
		out = append(out, ref{gvk.GroupVersion().String(), gvk.Kind, m.GetNamespace(), m.GetName()})
	}
	return out
}

func TestObjectsInApplyOrder(t *testing.T) {
	cfg := testConfig(t, nil)
	for _, tc := range []struct {
		name   string
		render func() ([]runtime.Object, error)
		want   []ref
	}{
		{"coredns", func() ([]runtime.Object, error) { return CoreDNS(cfg) }, []ref{
			{"v1", "ServiceAccount", "kube-system", "coredns"},
			{"rbac.authorization.k8s.io/v1", "ClusterRole", "", "system:coredns"},
			{"rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", "system:coredns"},
			{"v1", "ConfigMap", "kube-system", "coredns"},
			{"apps/v1", "Deployment", "kube-system", "coredns"},
			{"v1", "Service", "kube-system", "kube-dns"},
			{"policy/v1", "PodDisruptionBudget", "kube-system", "coredns"},
		}},
		{"kube-proxy", func() ([]runtime.Object, error) { return KubeProxy(cfg, testServer) }, []ref{
			{"v1", "ServiceAccount", "kube-system", "kube-proxy"},
			{"rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", "kubeadm:node-proxier"},
			{"rbac.authorization.k8s.io/v1", "Role", "kube-system", "kube-proxy"},
			{"rbac.authorization.k8s.io/v1", "RoleBinding", "kube-system", "kube-proxy"},
			{"v1", "ConfigMap", "kube-system", "kube-proxy"},
			{"apps/v1", "DaemonSet", "kube-system", "kube-proxy"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := tc.render()
			if err != nil {
				t.Fatal(err)
			}
			if got := refs(t, objs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("objects:\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

// testScheme knows the kinds the renderers may return.
func testScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(corev1.AddToScheme(s))
	utilruntime.Must(appsv1.AddToScheme(s))
	utilruntime.Must(rbacv1.AddToScheme(s))
	utilruntime.Must(policyv1.AddToScheme(s))
	return s
}

// TestJSONRoundTrip checks what the caller does with each object: it
// serialises it to JSON for server-side apply. The JSON must carry the
// scheme's apiVersion and kind, decode strictly into the same typed struct
// and come back equal, and carry nothing the server owns.
func TestJSONRoundTrip(t *testing.T) {
	scheme := testScheme()
	for _, tc := range []struct {
		name string
		edit func(*config.Config)
	}{
		{"defaults", nil},
		{"custom", func(c *config.Config) {
			c.Cluster.Networking.ServiceSubnet = "10.100.0.0/16,fd00:10:100::/108"
			c.Cluster.Networking.DNSDomain = "corp.example"
			c.Cluster.ImageRepository = "mirror.example/k8s"
			c.Cluster.DNS.ImageTag = "v1.99.0"
			c.KubeProxy.FeatureGates = map[string]bool{"SomeGate": true}
		}},
	} {
		cfg := testConfig(t, tc.edit)
		for _, o := range append(coreDNS(t, cfg), kubeProxy(t, cfg)...) {
			m := mustMeta(t, o)
			t.Run(tc.name+"/"+reflect.TypeOf(o).Elem().Name()+"/"+m.GetName(), func(t *testing.T) {
				gvks, _, err := scheme.ObjectKinds(o)
				if err != nil {
					t.Fatal(err)
				}
				if got := o.GetObjectKind().GroupVersionKind(); got != gvks[0] {
					t.Errorf("TypeMeta = %v, want %v", got, gvks[0])
				}
				data, err := json.Marshal(o)
				if err != nil {
					t.Fatal(err)
				}
				back := reflect.New(reflect.TypeOf(o).Elem()).Interface().(runtime.Object)
				strict, err := sigsjson.UnmarshalStrict(data, back)
				if err != nil || len(strict) > 0 {
					t.Fatalf("strict decode: %v %v\n%s", err, strict, data)
				}
				if !equality.Semantic.DeepEqual(o, back) {
					t.Errorf("round trip changed the object:\n%s", data)
				}

				var raw struct {
					APIVersion string `json:"apiVersion"`
					Kind       string `json:"kind"`
					Metadata   map[string]any
				}
				if err := json.Unmarshal(data, &raw); err != nil {
					t.Fatal(err)
				}
				if raw.APIVersion == "" || raw.Kind == "" {
					t.Errorf("JSON lacks apiVersion or kind: %s", data)
				}
				for _, k := range []string{"resourceVersion", "creationTimestamp", "uid", "generation", "managedFields"} {
					if _, ok := raw.Metadata[k]; ok {
						t.Errorf("metadata.%s is set", k)
					}
				}
				if st := reflect.ValueOf(o).Elem().FieldByName("Status"); st.IsValid() && !st.IsZero() {
					t.Errorf("status is set: %+v", st.Interface())
				}
			})
		}
	}
}

func TestDisabled(t *testing.T) {
	cfg := testConfig(t, func(c *config.Config) {
		c.Cluster.DNS.Disabled = true
		c.Cluster.Proxy.Disabled = true
	})
	for _, tc := range []struct {
		name   string
		render func() ([]runtime.Object, error)
	}{
		{"coredns", func() ([]runtime.Object, error) { return CoreDNS(cfg) }},
		// Disabled wins over an unusable URL: nothing is rendered.
		{"kube-proxy", func() ([]runtime.Object, error) { return KubeProxy(cfg, "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := tc.render()
			if err != nil || objs != nil {
				t.Errorf("got %v, %v; want nil, nil", objs, err)
			}
		})
	}
}

// TestPure renders twice, changes the first result, and checks the second
// did not change with it and that the configuration was not touched.
func TestPure(t *testing.T) {
	cfg := testConfig(t, nil)
	before, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	a := append(coreDNS(t, cfg), kubeProxy(t, cfg)...)
	b := append(coreDNS(t, cfg), kubeProxy(t, cfg)...)
	if !equality.Semantic.DeepEqual(a, b) {
		t.Fatal("two renders differ")
	}
	for _, o := range a {
		m, _ := meta.Accessor(o)
		m.SetLabels(map[string]string{"changed": "yes"})
	}
	find[*appsv1.Deployment](t, a, "coredns").Spec.Selector.MatchLabels["k8s-app"] = "changed"
	find[*corev1.ConfigMap](t, a, "kube-proxy").Data["config.conf"] = "changed"
	c := append(coreDNS(t, cfg), kubeProxy(t, cfg)...)
	if !equality.Semantic.DeepEqual(b, c) {
		t.Error("changing one render's objects changed the next render")
	}
	after, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Error("rendering changed the configuration")
	}
}
