// Package audit renders the kube-apiserver's audit logging: the policy
// file /etc/kubernetes/audit/audit.yaml and the flags and volumes that
// turn it on. kubeadm 1.12 wrote such a policy when auditing was enabled;
// kubeadm 1.37 leaves it to extraArgs and extraVolumes, and kubeboot turns
// it on by default.
//
// The policy is DefaultPolicy unless boot.audit.policyFile names a file on
// the host; that file must be a valid audit.k8s.io/v1 Policy and is copied
// to the policy path unchanged, so the apiserver only ever mounts one
// well-known file.
package audit

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	auditinstall "k8s.io/apiserver/pkg/apis/audit/install"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	auditvalidation "k8s.io/apiserver/pkg/apis/audit/validation"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/manifests"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

const (
	// PolicyPath is where the apiserver reads its audit policy.
	PolicyPath = "/etc/kubernetes/audit/audit.yaml"

	policyMode       = 0o600
	policyVolume     = "audit-policy"
	logDirVolume     = "audit-log"
	policyAPIVersion = "audit.k8s.io/v1"
)

// Render returns the policy file and the apiserver additions when
// boot.audit.enabled is true, and nothing otherwise. existing is the host's
// root, read only for boot.audit.policyFile; nil means nothing exists.
func Render(cfg *config.Config, existing fs.FS) ([]rootfs.File, manifests.APIServerAdditions, error) {
	var none manifests.APIServerAdditions
	a := cfg.Boot.Audit
	if a.Enabled == nil || !*a.Enabled {
		return nil, none, nil
	}
	if !path.IsAbs(a.LogPath) {
		return nil, none, fmt.Errorf("audit: logPath %q is not an absolute path", a.LogPath)
	}
	var data []byte
	var err error
	if a.PolicyFile == "" {
		data, err = Marshal(DefaultPolicy())
	} else {
		data, err = readPolicy(existing, a.PolicyFile)
	}
	if err != nil {
		return nil, none, err
	}
	files := []rootfs.File{{Path: PolicyPath, Mode: policyMode, Data: data}}
	logDir := path.Dir(rootfs.Clean(a.LogPath))
	add := manifests.APIServerAdditions{
		Args: []config.Arg{
			{Name: "audit-policy-file", Value: PolicyPath},
			{Name: "audit-log-path", Value: a.LogPath},
			{Name: "audit-log-maxage", Value: strconv.Itoa(int(a.MaxAge))},
			{Name: "audit-log-maxbackup", Value: strconv.Itoa(int(a.MaxBackups))},
			{Name: "audit-log-maxsize", Value: strconv.Itoa(int(a.MaxSize))},
		},
		Volumes: []config.HostPathMount{
			{Name: policyVolume, HostPath: PolicyPath, MountPath: PolicyPath, ReadOnly: true, PathType: corev1.HostPathFile},
			{Name: logDirVolume, HostPath: logDir, MountPath: logDir, PathType: corev1.HostPathDirectoryOrCreate},
		},
	}
	return files, add, nil
}

func readPolicy(existing fs.FS, name string) ([]byte, error) {
	if existing == nil {
		return nil, fmt.Errorf("audit: policyFile %s: %w", name, fs.ErrNotExist)
	}
	data, err := rootfs.ReadFile(existing, name)
	if err != nil {
		return nil, fmt.Errorf("audit: policyFile %s: %w", name, err)
	}
	if _, err := Parse(data); err != nil {
		return nil, fmt.Errorf("audit: policyFile %s: %w", name, err)
	}
	return data, nil
}

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	auditinstall.Install(s)
	return s
}()

var strict = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

// Parse decodes an audit policy strictly (unknown or duplicate fields are
// errors, where the apiserver only warns) and validates it as the
// apiserver does. Only audit.k8s.io/v1 is accepted.
func Parse(data []byte) (*auditv1.Policy, error) {
	var probe struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("not YAML: %w", err)
	}
	if probe.APIVersion != policyAPIVersion || probe.Kind != "Policy" {
		return nil, fmt.Errorf("want apiVersion %s and kind Policy, got %q and %q", policyAPIVersion, probe.APIVersion, probe.Kind)
	}
	obj, _, err := strict.Decode(data, nil, nil)
	if err != nil {
		return nil, err
	}
	p, ok := obj.(*auditv1.Policy)
	if !ok {
		return nil, fmt.Errorf("decoded a %T, not a Policy", obj)
	}
	var internal auditinternal.Policy
	if err := scheme.Convert(p, &internal, nil); err != nil {
		return nil, err
	}
	if errs := auditvalidation.ValidatePolicy(&internal); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	if len(internal.Rules) == 0 {
		return nil, errors.New("the policy has no rules")
	}
	return p, nil
}

// Marshal writes a policy as YAML.
func Marshal(p *auditv1.Policy) ([]byte, error) {
	data, err := yaml.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("audit: marshal policy: %w", err)
	}
	return data, nil
}
