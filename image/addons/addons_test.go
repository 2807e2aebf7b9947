package addons

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/reference"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// flannelObjects is flannel.yaml decoded strictly: every document into
// the typed object of its kind, unknown or duplicate fields failing.
type flannelObjects struct {
	ns        *corev1.Namespace
	sa        *corev1.ServiceAccount
	role      *rbacv1.ClusterRole
	binding   *rbacv1.ClusterRoleBinding
	cm        *corev1.ConfigMap
	ds        *appsv1.DaemonSet
	kindOrder []string
}

var (
	separator = regexp.MustCompile(`(?m)^---[ \t]*$`)
	comment   = regexp.MustCompile(`(?m)^[ \t]*#.*$`)
)

func decodeFlannel(t *testing.T) flannelObjects {
	t.Helper()
	var o flannelObjects
	for i, doc := range separator.Split(string(Flannel), -1) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		if tm.Kind == "" && tm.APIVersion == "" {
			if strings.TrimSpace(comment.ReplaceAllString(doc, "")) != "" {
				t.Fatalf("document %d has content but no apiVersion and kind:\n%s", i, doc)
			}
			continue // comments only
		}
		if slices.Contains(o.kindOrder, tm.Kind) {
			t.Fatalf("document %d: a second %s", i, tm.Kind)
		}
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 Namespace":
			o.ns = strict[corev1.Namespace](t, i, doc)
		case "v1 ServiceAccount":
			o.sa = strict[corev1.ServiceAccount](t, i, doc)
		case "rbac.authorization.k8s.io/v1 ClusterRole":
			o.role = strict[rbacv1.ClusterRole](t, i, doc)
		case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
			o.binding = strict[rbacv1.ClusterRoleBinding](t, i, doc)
		case "v1 ConfigMap":
			o.cm = strict[corev1.ConfigMap](t, i, doc)
		case "apps/v1 DaemonSet":
			o.ds = strict[appsv1.DaemonSet](t, i, doc)
		default:
			t.Fatalf("document %d: unexpected %s %s", i, tm.APIVersion, tm.Kind)
		}
		o.kindOrder = append(o.kindOrder, tm.Kind)
	}
	return o
}

// strict decodes document i into a T, failing on unknown and duplicate
// fields.
func strict[T any](t *testing.T, i int, doc string) *T {
	t.Helper()
	obj := new(T)
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		t.Fatalf("document %d (%T): %v", i, obj, err)
	}
	return obj
}

func TestFlannelManifestDecodes(t *testing.T) {
	o := decodeFlannel(t)
	// A namespace before what lives in it, RBAC before the pods that use it.
	want := []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"}
	if !slices.Equal(o.kindOrder, want) {
		t.Fatalf("kinds %v, want %v", o.kindOrder, want)
	}
	for _, m := range []metav1.ObjectMeta{o.sa.ObjectMeta, o.cm.ObjectMeta, o.ds.ObjectMeta} {
		if m.Namespace != o.ns.Name {
			t.Errorf("%s is in namespace %q, want %q", m.Name, m.Namespace, o.ns.Name)
		}
	}
	if o.ns.Name != "kube-flannel" || o.ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("namespace %s labels %v: want kube-flannel, enforce=privileged", o.ns.Name, o.ns.Labels)
	}
}

func TestFlannelImage(t *testing.T) {
	named, err := reference.ParseNormalizedNamed(FlannelImage)
	if err != nil {
		t.Fatalf("FlannelImage %q: %v", FlannelImage, err)
	}
	tagged, ok := named.(reference.Tagged)
	if !ok || tagged.Tag() != FlannelVersion {
		t.Errorf("FlannelImage %q: tag, want %s", FlannelImage, FlannelVersion)
	}
	// In familiar form, the name is what was written only when it names
	// no registry.
	if reference.FamiliarString(named) != FlannelImage {
		t.Errorf("FlannelImage %q names a registry", FlannelImage)
	}

	spec := decodeFlannel(t).ds.Spec.Template.Spec
	all := append(slices.Clone(spec.InitContainers), spec.Containers...)
	if len(all) != 3 {
		t.Errorf("%d containers, want 2 init containers and flanneld", len(all))
	}
	for _, c := range all {
		if c.Image != FlannelImage || c.ImagePullPolicy != corev1.PullIfNotPresent {
			t.Errorf("container %s: image %q pull %q, want %q IfNotPresent", c.Name, c.Image, c.ImagePullPolicy, FlannelImage)
		}
	}
}

func TestFlannelRBAC(t *testing.T) {
	o := decodeFlannel(t)
	rules := map[string][]string{}
	for _, r := range o.role.Rules {
		if !slices.Equal(r.APIGroups, []string{""}) {
			t.Errorf("rule %+v: want the core API group", r)
		}
		for _, res := range r.Resources {
			rules[res] = append(rules[res], r.Verbs...)
		}
	}
	want := map[string][]string{"pods": {"get"}, "nodes": {"get", "list", "watch"}, "nodes/status": {"patch"}}
	if len(rules) != len(want) {
		t.Errorf("rules %v, want %v", rules, want)
	}
	for res, verbs := range want {
		if !slices.Equal(rules[res], verbs) {
			t.Errorf("%s: verbs %v, want %v", res, rules[res], verbs)
		}
	}
	b := o.binding
	if b.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: o.role.Name}) {
		t.Errorf("roleRef %+v, want ClusterRole %s", b.RoleRef, o.role.Name)
	}
	sub := rbacv1.Subject{Kind: "ServiceAccount", Name: o.sa.Name, Namespace: o.sa.Namespace}
	if !slices.Equal(b.Subjects, []rbacv1.Subject{sub}) {
		t.Errorf("subjects %+v, want %+v", b.Subjects, sub)
	}
	if got := o.ds.Spec.Template.Spec.ServiceAccountName; got != o.sa.Name {
		t.Errorf("DaemonSet runs as %q, want %q", got, o.sa.Name)
	}
}

// netConf is flanneld's net-conf.json, as far as this manifest sets it.
type netConf struct {
	Network        string
	EnableNFTables bool
	Backend        struct{ Type string }
}

// cniConf is a CNI network configuration list.
type cniConf struct {
	Name       string           `json:"name"`
	CNIVersion string           `json:"cniVersion"`
	Plugins    []map[string]any `json:"plugins"`
}

func strictJSON(t *testing.T, name, data string, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader([]byte(data)))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, data)
	}
	if d.More() {
		t.Fatalf("%s: data after the JSON object", name)
	}
}

func TestFlannelConfig(t *testing.T) {
	cm := decodeFlannel(t).cm
	if len(cm.Data) != 2 {
		t.Errorf("ConfigMap keys %v, want cni-conf.json and net-conf.json", cm.Data)
	}
	var nc netConf
	strictJSON(t, "net-conf.json", cm.Data["net-conf.json"], &nc)
	if nc.Network != "10.244.0.0/16" || nc.Backend.Type != "vxlan" || nc.EnableNFTables {
		t.Errorf("net-conf.json %+v: want Network 10.244.0.0/16, vxlan, iptables", nc)
	}

	var cc cniConf
	strictJSON(t, "cni-conf.json", cm.Data["cni-conf.json"], &cc)
	// The flannel plugin of containernetworking/plugins v0.9.1 speaks CNI
	// 0.1.0 to 0.4.0.
	if !slices.Contains([]string{"0.3.0", "0.3.1", "0.4.0"}, cc.CNIVersion) {
		t.Errorf("cniVersion %q: the flannel plugin in the image speaks 0.3.0 to 0.4.0 (for chained plugins)", cc.CNIVersion)
	}
	if cc.Name == "" || len(cc.Plugins) != 2 {
		t.Fatalf("cni-conf.json: name %q, %d plugins; want flannel then portmap", cc.Name, len(cc.Plugins))
	}
	flannel, portmap := cc.Plugins[0], cc.Plugins[1]
	delegate, _ := flannel["delegate"].(map[string]any)
	if flannel["type"] != "flannel" || delegate["hairpinMode"] != true || delegate["isDefaultGateway"] != true {
		t.Errorf("first plugin %v: want flannel delegating with hairpinMode and isDefaultGateway", flannel)
	}
	caps, _ := portmap["capabilities"].(map[string]any)
	if portmap["type"] != "portmap" || caps["portMappings"] != true {
		t.Errorf("second plugin %v: want portmap with the portMappings capability", portmap)
	}
}

func TestFlannelDaemonSet(t *testing.T) {
	o := decodeFlannel(t)
	ds := o.ds
	spec := ds.Spec.Template.Spec
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || sel.Empty() {
		t.Fatalf("selector %v: %v", ds.Spec.Selector, err)
	}
	if !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("selector %v does not match the pod labels %v", ds.Spec.Selector, ds.Spec.Template.Labels)
	}
	if !spec.HostNetwork {
		t.Error("not on the host network")
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tol corev1.Toleration) bool {
		return tol.Key == "" && tol.Effect == "" && tol.Operator == corev1.TolerationOpExists
	}) {
		t.Errorf("tolerations %+v: want one that tolerates every taint", spec.Tolerations)
	}

	// Each volume by name: what the host provides or the ConfigMap.
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	hostPath := func(name string) string {
		if hp := volumes[name].HostPath; hp != nil {
			return hp.Path
		}
		return ""
	}
	// mounted is the host or ConfigMap source of a container path.
	mounted := func(c corev1.Container, path string) string {
		for _, m := range c.VolumeMounts {
			if m.MountPath == path || m.MountPath == path+"/" {
				if cm := volumes[m.Name].ConfigMap; cm != nil {
					return "configmap:" + cm.Name
				}
				return hostPath(m.Name)
			}
		}
		return ""
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		for _, m := range c.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok {
				t.Errorf("container %s mounts volume %q, which is not in the pod", c.Name, m.Name)
			}
		}
	}
	if xl := volumes["xtables-lock"].HostPath; xl == nil || xl.Path != "/run/xtables.lock" || xl.Type == nil || *xl.Type != corev1.HostPathFileOrCreate {
		t.Errorf("xtables-lock volume %+v: want hostPath /run/xtables.lock, FileOrCreate", volumes["xtables-lock"])
	}

	// The init containers install the plugin and the config on the host.
	if len(spec.InitContainers) != 2 {
		t.Fatalf("%d init containers, want 2", len(spec.InitContainers))
	}
	for i, want := range []struct {
		command       []string
		dir, hostDir  string // where it writes, and that on the host
		from, fromSrc string // where it reads, and what that is
	}{
		{[]string{"/install-conf", "/flannel", "/opt/cni/bin/flannel"}, "/opt/cni/bin", "/opt/cni/bin", "", ""},
		{[]string{"/install-conf", "/etc/kube-flannel/cni-conf.json", "/etc/cni/net.d/10-flannel.conflist"}, "/etc/cni/net.d", "/etc/cni/net.d",
			"/etc/kube-flannel", "configmap:" + o.cm.Name},
	} {
		c := spec.InitContainers[i]
		if !slices.Equal(c.Command, want.command) || len(c.Args) != 0 {
			t.Errorf("init container %s runs %q %q, want %q", c.Name, c.Command, c.Args, want.command)
		}
		if got := mounted(c, want.dir); got != want.hostDir {
			t.Errorf("init container %s: %s is %q on the host, want %q", c.Name, want.dir, got, want.hostDir)
		}
		if want.from != "" {
			if got := mounted(c, want.from); got != want.fromSrc {
				t.Errorf("init container %s: %s comes from %q, want %q", c.Name, want.from, got, want.fromSrc)
			}
		}
	}

	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want flanneld alone", len(spec.Containers))
	}
	c := spec.Containers[0]
	if !slices.Equal(c.Command, []string{"/flanneld"}) || !slices.Contains(c.Args, "--ip-masq") || !slices.Contains(c.Args, "--kube-subnet-mgr") {
		t.Errorf("flanneld runs %q %q, want /flanneld --ip-masq --kube-subnet-mgr", c.Command, c.Args)
	}
	for path, want := range map[string]string{
		"/run/flannel":      "/run/flannel",
		"/etc/kube-flannel": "configmap:" + o.cm.Name,
		"/run/xtables.lock": "/run/xtables.lock",
		"/lib/modules":      "/lib/modules",
	} {
		if got := mounted(c, path); got != want {
			t.Errorf("flanneld: %s is %q, want %q", path, got, want)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if env["POD_NAME"] != "metadata.name" || env["POD_NAMESPACE"] != "metadata.namespace" {
		t.Errorf("env %v: flanneld finds its node through POD_NAME and POD_NAMESPACE", c.Env)
	}
}
