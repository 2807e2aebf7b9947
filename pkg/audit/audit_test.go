package audit

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"strings"
	"testing"
	"testing/fstest"

	corev1 "k8s.io/api/core/v1"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/apiserver/pkg/audit/policy"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/utils/ptr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/manifests"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

func resolved(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Defaults()
	if err := config.Resolve(cfg, config.StaticFacts{Host: "node1", IPs: []net.IP{net.ParseIP("10.0.0.5")}}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// strictPolicy decodes into the apiserver's v1 type, failing on unknown,
// duplicate or case-mismatched fields.
func strictPolicy(t *testing.T, data []byte) *auditv1.Policy {
	t.Helper()
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		t.Fatal(err)
	}
	var p auditv1.Policy
	strictErrs, err := kjson.UnmarshalStrict(j, &p)
	if err == nil {
		err = errors.Join(strictErrs...)
	}
	if err != nil {
		t.Fatalf("not a strict audit.k8s.io/v1 Policy: %v\n%s", err, data)
	}
	if p.APIVersion != "audit.k8s.io/v1" || p.Kind != "Policy" {
		t.Fatalf("apiVersion %q kind %q", p.APIVersion, p.Kind)
	}
	return &p
}

func TestDefault(t *testing.T) {
	cfg := resolved(t)
	files, add, err := Render(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Path != PolicyPath || files[0].Mode != 0o600 || files[0].Secret {
		t.Fatalf("files: %+v", files)
	}
	p := strictPolicy(t, files[0].Data)
	if len(p.OmitStages) != 1 || p.OmitStages[0] != auditv1.StageRequestReceived {
		t.Errorf("omitStages %v, want [RequestReceived]", p.OmitStages)
	}
	if _, err := Parse(files[0].Data); err != nil {
		t.Errorf("the apiserver's validation rejects the default policy: %v", err)
	}

	wantArgs := []config.Arg{
		{Name: "audit-policy-file", Value: "/etc/kubernetes/audit/audit.yaml"},
		{Name: "audit-log-path", Value: "/var/log/kubernetes/audit/audit.log"},
		{Name: "audit-log-maxage", Value: "30"},
		{Name: "audit-log-maxbackup", Value: "10"},
		{Name: "audit-log-maxsize", Value: "100"},
	}
	if !equalArgs(wantArgs, add.Args) {
		t.Errorf("args: %+v", add.Args)
	}
	wantVols := []config.HostPathMount{
		{Name: "audit-policy", HostPath: PolicyPath, MountPath: PolicyPath, ReadOnly: true, PathType: corev1.HostPathFile},
		{Name: "audit-log", HostPath: "/var/log/kubernetes/audit", MountPath: "/var/log/kubernetes/audit", PathType: corev1.HostPathDirectoryOrCreate},
	}
	if len(add.Volumes) != 2 || add.Volumes[0] != wantVols[0] || add.Volumes[1] != wantVols[1] {
		t.Errorf("volumes: %+v", add.Volumes)
	}

	again, _, err := Render(cfg, nil)
	if err != nil || !bytes.Equal(again[0].Data, files[0].Data) {
		t.Errorf("second render differs (%v)", err)
	}
}

func equalArgs(a, b []config.Arg) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDefaultPolicyLevels runs the default policy through the apiserver's
// own rule evaluator.
func TestDefaultPolicyLevels(t *testing.T) {
	files, _, err := Render(resolved(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	v1p, err := Parse(files[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	var internal auditinternal.Policy
	if err := scheme.Convert(v1p, &internal, nil); err != nil {
		t.Fatal(err)
	}
	eval := policy.NewPolicyRuleEvaluator(&internal)

	res := func(u *user.DefaultInfo, verb, group, resource, sub, ns string) authorizer.Attributes {
		return &authorizer.AttributesRecord{User: u, Verb: verb, APIGroup: group, Resource: resource, Subresource: sub, Namespace: ns, ResourceRequest: true}
	}
	nonRes := func(u *user.DefaultInfo, path string) authorizer.Attributes {
		return &authorizer.AttributesRecord{User: u, Verb: "get", Path: path}
	}
	admin := &user.DefaultInfo{Name: "kubernetes-admin", Groups: []string{"kubeadm:cluster-admins", "system:authenticated"}}
	proxy := &user.DefaultInfo{Name: "system:serviceaccount:kube-system:kube-proxy", Groups: []string{"system:serviceaccounts"}}
	node := &user.DefaultInfo{Name: "system:node:node1", Groups: []string{"system:nodes", "system:authenticated"}}
	kcm := &user.DefaultInfo{Name: "system:kube-controller-manager"}

	tests := []struct {
		name  string
		attrs authorizer.Attributes
		want  auditinternal.Level
	}{
		{"kube-proxy watches endpointslices", res(proxy, "watch", "discovery.k8s.io", "endpointslices", "", ""), auditinternal.LevelNone},
		{"kube-proxy watches services", res(proxy, "watch", "", "services", "", ""), auditinternal.LevelNone},
		{"node gets its node", res(node, "get", "", "nodes", "", ""), auditinternal.LevelNone},
		{"node renews its lease", res(node, "update", "coordination.k8s.io", "leases", "", "kube-node-lease"), auditinternal.LevelNone},
		{"kcm renews its lease", res(kcm, "update", "coordination.k8s.io", "leases", "", "kube-system"), auditinternal.LevelNone},
		{"events", res(admin, "create", "", "events", "", "default"), auditinternal.LevelNone},
		{"/healthz", nonRes(admin, "/healthz"), auditinternal.LevelNone},
		{"/livez/etcd", nonRes(admin, "/livez/etcd"), auditinternal.LevelNone},
		{"/readyz", nonRes(admin, "/readyz"), auditinternal.LevelNone},
		{"/version", nonRes(admin, "/version"), auditinternal.LevelNone},
		{"node updates pod status", res(node, "patch", "", "pods", "status", "default"), auditinternal.LevelRequest},
		{"secret read", res(admin, "get", "", "secrets", "", "default"), auditinternal.LevelMetadata},
		{"secret write", res(admin, "create", "", "secrets", "", "default"), auditinternal.LevelMetadata},
		{"configmap write", res(admin, "update", "", "configmaps", "", "default"), auditinternal.LevelMetadata},
		{"token request", res(kcm, "create", "", "serviceaccounts", "token", "default"), auditinternal.LevelMetadata},
		{"token review", res(kcm, "create", "authentication.k8s.io", "tokenreviews", "", ""), auditinternal.LevelMetadata},
		{"pod list", res(admin, "list", "", "pods", "", ""), auditinternal.LevelRequest},
		{"deployment get", res(admin, "get", "apps", "deployments", "", "default"), auditinternal.LevelRequest},
		{"deployment create", res(admin, "create", "apps", "deployments", "", "default"), auditinternal.LevelRequestResponse},
		{"pod delete", res(admin, "delete", "", "pods", "", "default"), auditinternal.LevelRequestResponse},
		{"custom resource", res(admin, "create", "example.com", "widgets", "", "default"), auditinternal.LevelMetadata},
		{"/metrics", nonRes(admin, "/metrics"), auditinternal.LevelMetadata},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := eval.EvaluatePolicyRule(tt.attrs)
			if got.Level != tt.want {
				t.Errorf("level %s, want %s", got.Level, tt.want)
			}
			if got.Level != auditinternal.LevelNone {
				if len(got.OmitStages) != 1 || got.OmitStages[0] != auditinternal.StageRequestReceived {
					t.Errorf("omitStages %v", got.OmitStages)
				}
				if !got.OmitManagedFields {
					t.Error("managedFields are logged")
				}
			}
		})
	}
}

const customPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
# keep it short
rules:
- level: Metadata
`

func TestPolicyFile(t *testing.T) {
	cfg := resolved(t)
	cfg.Boot.Audit.PolicyFile = "/etc/fleet/audit-policy.yaml"
	fsys := fstest.MapFS{"etc/fleet/audit-policy.yaml": {Data: []byte(customPolicy)}}
	files, add, err := Render(cfg, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Path != PolicyPath || string(files[0].Data) != customPolicy {
		t.Fatalf("the policy file should be copied byte for byte to %s: %+v", PolicyPath, files)
	}
	strictPolicy(t, files[0].Data)
	if v, ok := arg(add, "audit-policy-file"); !ok || v != PolicyPath {
		t.Errorf("--audit-policy-file=%s", v)
	}

	// The policy path itself may be the source; a re-run is identical.
	cfg.Boot.Audit.PolicyFile = PolicyPath
	fsys = fstest.MapFS{PolicyPath[1:]: {Data: files[0].Data}}
	again, _, err := Render(cfg, fsys)
	if err != nil || !bytes.Equal(again[0].Data, files[0].Data) {
		t.Errorf("re-render over the existing file differs (%v)", err)
	}
}

func TestPolicyFileErrors(t *testing.T) {
	const name = "/etc/fleet/audit-policy.yaml"
	tests := []struct {
		name string
		fsys fs.FS
		want string
	}{
		{"nothing exists", nil, "file does not exist"},
		{"missing", fstest.MapFS{}, "file does not exist"},
		{"unknown field", fstest.MapFS{name[1:]: {Data: []byte(customPolicy + "  levle: None\n")}}, "levle"},
		{"old version", fstest.MapFS{name[1:]: {Data: []byte(strings.Replace(customPolicy, "audit.k8s.io/v1", "audit.k8s.io/v1beta1", 1))}}, "audit.k8s.io/v1beta1"},
		{"no rules", fstest.MapFS{name[1:]: {Data: []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n")}}, "no rules"},
		{"bad level", fstest.MapFS{name[1:]: {Data: []byte(strings.Replace(customPolicy, "Metadata", "Everything", 1))}}, "Everything"},
		{"not YAML", fstest.MapFS{name[1:]: {Data: []byte("\t: :")}}, "YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := resolved(t)
			cfg.Boot.Audit.PolicyFile = name
			files, add, err := Render(cfg, tt.fsys)
			if err == nil {
				t.Fatalf("no error; files %d, args %d", len(files), len(add.Args))
			}
			if !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q should name %s and mention %q", err, name, tt.want)
			}
		})
	}
}

func TestCustomLog(t *testing.T) {
	cfg := resolved(t)
	a := &cfg.Boot.Audit
	a.LogPath, a.MaxAge, a.MaxBackups, a.MaxSize = "/srv/audit/api.log", 7, 3, 50
	_, add, err := Render(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"audit-log-path": "/srv/audit/api.log", "audit-log-maxage": "7", "audit-log-maxbackup": "3", "audit-log-maxsize": "50"} {
		if v, _ := arg(add, name); v != want {
			t.Errorf("--%s=%s, want %s", name, v, want)
		}
	}
	if add.Volumes[1].HostPath != "/srv/audit" || add.Volumes[1].ReadOnly {
		t.Errorf("log volume %+v", add.Volumes[1])
	}
}

func TestDisabled(t *testing.T) {
	cfg := resolved(t)
	cfg.Boot.Audit.Enabled = ptr.To(false)
	cfg.Boot.Audit.PolicyFile = "/does/not/matter.yaml"
	files, add, err := Render(cfg, nil)
	if err != nil || len(files) != 0 || len(add.Args) != 0 || len(add.Volumes) != 0 {
		t.Errorf("disabled: %d files, %+v, %v", len(files), add, err)
	}
}

// TestManifest checks the additions in the rendered kube-apiserver Pod.
func TestManifest(t *testing.T) {
	cfg := resolved(t)
	_, add, err := Render(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	files, err := manifests.ControlPlane(cfg, manifests.Options{APIServer: []manifests.APIServerAdditions{add}})
	if err != nil {
		t.Fatal(err)
	}
	var api rootfs.File
	for _, f := range files {
		if strings.HasSuffix(f.Path, "/kube-apiserver.yaml") {
			api = f
		}
	}
	j, err := yaml.YAMLToJSONStrict(api.Data)
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if strictErrs, err := kjson.UnmarshalStrict(j, &pod); err != nil || len(strictErrs) > 0 {
		t.Fatalf("%v %v", err, strictErrs)
	}
	cmd := strings.Join(pod.Spec.Containers[0].Command, " ")
	for _, want := range []string{"--audit-policy-file=/etc/kubernetes/audit/audit.yaml", "--audit-log-path=/var/log/kubernetes/audit/audit.log", "--audit-log-maxage=30"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("command lacks %s", want)
		}
	}
	found := 0
	for _, v := range pod.Spec.Volumes {
		if v.Name == "audit-policy" || v.Name == "audit-log" {
			found++
		}
	}
	if found != 2 {
		t.Errorf("audit volumes: %d of 2", found)
	}
}

func arg(add manifests.APIServerAdditions, name string) (string, bool) {
	for _, a := range add.Args {
		if a.Name == name {
			return a.Value, true
		}
	}
	return "", false
}
