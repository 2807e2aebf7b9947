package postinstall

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
)

var (
	widgetGVK  = schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Widget"}
	gadgetGVK  = schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Gadget"}
	clusterGVK = schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "ClusterWidget"}
	nsGVK      = schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}
)

// discoveryMapper is a RESTMapper that learns kinds on Reset, as a
// discovery-backed one does once a CRD is established. Safe for the
// Applier's concurrent use.
type discoveryMapper struct {
	mu sync.Mutex
	meta.RESTMapper
	m *meta.DefaultRESTMapper
	// pending are learnt on the nth Reset (1-based).
	pending map[int][]schema.GroupVersionKind
	resets  int
	lookups []schema.GroupKind
}

func newDiscoveryMapper() *discoveryMapper {
	m := meta.NewDefaultRESTMapper(nil)
	m.Add(nsGVK, meta.RESTScopeRoot)
	m.Add(widgetGVK, meta.RESTScopeNamespace)
	m.Add(clusterGVK, meta.RESTScopeRoot)
	return &discoveryMapper{RESTMapper: m, m: m, pending: map[int][]schema.GroupVersionKind{}}
}

// learn makes gvk known (namespaced) from the nth Reset on.
func (d *discoveryMapper) learn(n int, gvk schema.GroupVersionKind) {
	d.pending[n] = append(d.pending[n], gvk)
}

func (d *discoveryMapper) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.resets++
	for _, gvk := range d.pending[d.resets] {
		d.m.Add(gvk, meta.RESTScopeNamespace)
	}
}

func (d *discoveryMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lookups = append(d.lookups, gk)
	return d.m.RESTMapping(gk, versions...)
}

func (d *discoveryMapper) counts() (resets, lookups int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.resets, len(d.lookups)
}

// applied is one apply request the fake API server saw.
type applied struct {
	resource, namespace, name, manager string
	force                              bool
}

// fakeServer answers server-side applies (the fake tracker's own apply
// needs the object to exist) and records them.
func fakeServer() (*dynamicfake.FakeDynamicClient, func() []applied) {
	c := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())
	var mu sync.Mutex
	var seen []applied
	c.PrependReactor("patch", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.PatchActionImpl)
		if p.GetPatchType() != types.ApplyPatchType {
			return false, nil, nil
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(p.GetPatch()); err != nil {
			return true, nil, err
		}
		u.SetResourceVersion("1")
		mu.Lock()
		defer mu.Unlock()
		force := p.PatchOptions.Force != nil && *p.PatchOptions.Force
		seen = append(seen, applied{p.GetResource().Resource, p.GetNamespace(), p.GetName(), p.PatchOptions.FieldManager, force})
		return true, u, nil
	})
	return c, func() []applied {
		mu.Lock()
		defer mu.Unlock()
		return append([]applied(nil), seen...)
	}
}

func object(gvk schema.GroupVersionKind, namespace, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(namespace)
	u.SetName(name)
	return u
}

func TestApplierMapper(t *testing.T) {
	cmGVK := schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}
	for _, tc := range []struct {
		name      string
		obj       *unstructured.Unstructured
		noMapper  bool
		setup     func(m *discoveryMapper)
		want      applied
		wantErr   string
		resets    int // at least
		noLookups bool
	}{
		{name: "custom kind in its namespace", obj: object(widgetGVK, "apps", "w"),
			want: applied{resource: "widgets", namespace: "apps", name: "w"}},
		{name: "namespaced kind without a namespace goes to default", obj: object(widgetGVK, "", "w"),
			want: applied{resource: "widgets", namespace: "default", name: "w"}},
		{name: "cluster-scoped kind", obj: object(clusterGVK, "", "cw"),
			want: applied{resource: "clusterwidgets", name: "cw"}},
		{name: "namespace", obj: object(nsGVK, "", "cni"),
			want: applied{resource: "namespaces", name: "cni"}},
		{name: "kubeboot's own kinds skip discovery", obj: object(cmGVK, "kube-system", "c"),
			want: applied{resource: "configmaps", namespace: "kube-system", name: "c"}, noLookups: true},
		{name: "own kind without a namespace goes to default", obj: object(cmGVK, "", "c"),
			want: applied{resource: "configmaps", namespace: "default", name: "c"}, noLookups: true},
		{name: "kind served once its CRD is established", obj: object(gadgetGVK, "apps", "g"),
			setup: func(m *discoveryMapper) { m.learn(1, gadgetGVK) },
			want:  applied{resource: "gadgets", namespace: "apps", name: "g"}, resets: 1},
		{name: "kind served after a few rediscoveries", obj: object(gadgetGVK, "apps", "g"),
			setup: func(m *discoveryMapper) { m.learn(3, gadgetGVK) },
			want:  applied{resource: "gadgets", namespace: "apps", name: "g"}, resets: 3},
		{name: "kind never served: retried until the timeout", obj: object(gadgetGVK, "apps", "g"),
			wantErr: "apply Gadget apps/g: gave up after 400ms: the API server serves no example.com/v1, Kind=Gadget", resets: 2},
		{name: "no mapper: only kubeboot's own kinds", obj: object(widgetGVK, "apps", "w"), noMapper: true,
			wantErr: "apply Widget apps/w: kind Widget not known to kubeboot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, seen := fakeServer()
			m := newDiscoveryMapper()
			if tc.setup != nil {
				tc.setup(m)
			}
			a := Applier{Client: client, Timeout: 400 * time.Millisecond, Mapper: m}
			if tc.noMapper {
				a.Mapper = nil
			}
			start := time.Now()
			res, err := a.Apply(context.Background(), tc.obj)
			resets, lookups := m.counts()
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				if tc.noMapper && time.Since(start) > 200*time.Millisecond {
					t.Errorf("an unknown kind without a mapper is final, yet it was retried for %s", time.Since(start))
				}
			case err != nil:
				t.Fatal(err)
			default:
				tc.want.manager, tc.want.force = FieldManager, true
				if got := seen(); len(got) != 1 || got[0] != tc.want {
					t.Errorf("applied %+v, want %+v", got, tc.want)
				}
				if !res[0].Changed || res[0].Name != tc.obj.GetName() {
					t.Errorf("result %+v", res[0])
				}
			}
			if resets < tc.resets {
				t.Errorf("%d resets, want at least %d", resets, tc.resets)
			}
			if tc.noLookups && lookups > 0 {
				t.Errorf("%d discovery lookups for a kind in kubeboot's table", lookups)
			}
		})
	}
}

// TestApplierConcurrentRediscovery: many objects of a new kind, applied
// at once, all find it after the resets they trigger (run with -race).
func TestApplierConcurrentRediscovery(t *testing.T) {
	client, seen := fakeServer()
	m := newDiscoveryMapper()
	m.learn(2, gadgetGVK)
	var objs []runtime.Object
	for i := range 20 {
		objs = append(objs, object(gadgetGVK, "apps", "g"+string(rune('a'+i))))
	}
	a := Applier{Client: client, Timeout: 2 * time.Second, Mapper: m}
	if _, err := a.Apply(context.Background(), objs...); err != nil {
		t.Fatal(err)
	}
	if n := len(seen()); n != len(objs) {
		t.Errorf("%d applied, want %d", n, len(objs))
	}
}

// The Get before each apply tells unchanged objects from changed ones.
func TestApplierUnchanged(t *testing.T) {
	client, _ := fakeServer()
	cur := object(widgetGVK, "apps", "w")
	cur.SetResourceVersion("1")
	gvr := schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
	client.PrependReactor("get", "widgets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, cur.DeepCopy(), nil
	})
	a := Applier{Client: client, Timeout: time.Second, Mapper: newDiscoveryMapper()}
	res, err := a.Apply(context.Background(), object(widgetGVK, "apps", "w"))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Changed {
		t.Errorf("same resourceVersion reported as changed")
	}
	if _, err := client.Resource(gvr).Namespace("apps").Get(context.Background(), "w", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
}
