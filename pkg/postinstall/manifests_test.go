package postinstall

import (
	"strings"
	"testing"
	"testing/fstest"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

const (
	cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: kube-system}\n"
	ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n"
)

func doc(format, name string) string { return strings.Replace(format, "%s", name, 1) }

// names lists objects as Kind/name, in order.
func names(objs []runtime.Object) string {
	var out []string
	for _, o := range objs {
		u := o.(*unstructured.Unstructured)
		out = append(out, u.GetKind()+"/"+u.GetName())
	}
	return strings.Join(out, " ")
}

func TestReadManifests(t *testing.T) {
	crd := "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\n"
	fsys := fstest.MapFS{
		// A directory: *.yaml, *.yml and *.json in name order; nothing else.
		"etc/kubeboot/manifests/20-b.yaml":       {Data: []byte(doc(cm, "b"))},
		"etc/kubeboot/manifests/10-a.yml":        {Data: []byte(doc(cm, "a"))},
		"etc/kubeboot/manifests/30-c.json":       {Data: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"kube-system"}}`)},
		"etc/kubeboot/manifests/README.md":       {Data: []byte("# not a manifest\n")},
		"etc/kubeboot/manifests/00-x.yaml.orig":  {Data: []byte("not: yaml: at all: [")},
		"etc/kubeboot/manifests/sub/nested.yaml": {Data: []byte(doc(cm, "nested"))},
		// Multi-document YAML with empty and comment-only documents.
		"etc/kubeboot/multi.yaml": {Data: []byte("---\n" + doc(cm, "one") + "---\n---\n# just a comment\n---\n" + doc(cm, "two"))},
		// A JSON stream of two objects.
		"etc/kubeboot/stream.json": {Data: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"j1","namespace":"kube-system"}}
{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"j2","namespace":"kube-system"}}`)},
		// kubectl's List wrapper, YAML and JSON.
		"etc/kubeboot/list.yaml": {Data: []byte("apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(doc(cm, "l1"), "\n", "\n  ") + "\n- " + strings.ReplaceAll(doc(cm, "l2"), "\n", "\n  ") + "\n")},
		"etc/kubeboot/list.json": {Data: []byte(`{"apiVersion":"v1","kind":"ConfigMapList","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"jl","namespace":"kube-system"}}]}`)},
		// A CNI add-on as shipped: its namespace and CRD after what uses them.
		"etc/kubeboot/cni.yaml": {Data: []byte(doc(cm, "cni-config") + "---\n" + doc(ns, "cni") + "---\n" +
			"apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: cni}\n---\n" + crd)},
	}
	for _, tc := range []struct {
		name    string
		entries []string
		want    string
	}{
		{"directory in name order", []string{"/etc/kubeboot/manifests"}, "ConfigMap/a ConfigMap/b ConfigMap/c"},
		{"directory with a trailing slash", []string{"/etc/kubeboot/manifests/"}, "ConfigMap/a ConfigMap/b ConfigMap/c"},
		{"multi-document YAML", []string{"/etc/kubeboot/multi.yaml"}, "ConfigMap/one ConfigMap/two"},
		{"JSON stream", []string{"/etc/kubeboot/stream.json"}, "ConfigMap/j1 ConfigMap/j2"},
		{"List unpacked", []string{"/etc/kubeboot/list.yaml"}, "ConfigMap/l1 ConfigMap/l2"},
		{"typed List unpacked", []string{"/etc/kubeboot/list.json"}, "ConfigMap/jl"},
		{"entries in the order given", []string{"/etc/kubeboot/stream.json", "/etc/kubeboot/multi.yaml"}, "ConfigMap/j1 ConfigMap/j2 ConfigMap/one ConfigMap/two"},
		{"namespaces and CRDs first, the rest in file order", []string{"/etc/kubeboot/multi.yaml", "/etc/kubeboot/cni.yaml"},
			"Namespace/cni CustomResourceDefinition/widgets.example.com ConfigMap/one ConfigMap/two ConfigMap/cni-config Widget/w"},
		{"nothing listed", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := ReadManifests(fsys, tc.entries)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(objs); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestReadManifestsErrors(t *testing.T) {
	fsys := fstest.MapFS{
		"etc/m/bad-doc2.yaml":  {Data: []byte(doc(cm, "ok") + "---\napiVersion: v1\nmetadata: {name: x}\n")},
		"etc/m/nothing.yaml":   {Data: []byte("---\nfoo: bar\n")},
		"etc/m/invalid.yaml":   {Data: []byte(doc(cm, "ok") + "---\nkind: [\n")},
		"etc/m/scalar.yaml":    {Data: []byte("just a string\n")},
		"etc/m/list-item.yaml": {Data: []byte("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: fine}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {}}\n")},
		"etc/m/dir/bad.json":   {Data: []byte(`{"apiVersion":"v1","kind":"ConfigMap"}`)},
	}
	for _, tc := range []struct {
		name, entry, want string
	}{
		{"missing file", "/etc/m/nope.yaml", "manifests: /etc/m/nope.yaml: file does not exist"},
		{"missing kind", "/etc/m/bad-doc2.yaml", "manifests: /etc/m/bad-doc2.yaml: document 2: missing kind"},
		{"everything missing", "/etc/m/nothing.yaml", "manifests: /etc/m/nothing.yaml: document 1: missing apiVersion, kind, metadata.name"},
		{"invalid YAML", "/etc/m/invalid.yaml", "manifests: /etc/m/invalid.yaml: document 2: "},
		{"not an object", "/etc/m/scalar.yaml", "manifests: /etc/m/scalar.yaml: document 1: "},
		{"List item without a name", "/etc/m/list-item.yaml", "manifests: /etc/m/list-item.yaml: document 1: item 2: missing metadata.name"},
		{"file in a directory", "/etc/m/dir", "manifests: /etc/m/dir/bad.json: document 1: missing metadata.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := ReadManifests(fsys, []string{tc.entry})
			if err == nil {
				t.Fatalf("accepted: %s", names(objs))
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error does not start with %q:\n%v", tc.want, err)
			}
		})
	}
}
