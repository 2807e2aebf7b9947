package manifests

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// load decodes, defaults, validates and resolves a configuration stream
// the way kubeboot does, with node1 at ip.
func load(t *testing.T, ip string, docs string) *config.Config {
	t.Helper()
	cfg, err := config.Load("test.yaml", []byte(docs))
	if err != nil {
		t.Fatalf("load:\n%v", err)
	}
	if err := config.Resolve(cfg, config.StaticFacts{Host: "node1", IPs: []net.IP{net.ParseIP(ip)}}); err != nil {
		t.Fatalf("resolve: %v", err)
	}
	return cfg
}

// defaults is the defaulted configuration resolved for node1 at ip.
func defaults(t *testing.T, ip string) *config.Config {
	t.Helper()
	cfg := config.Defaults()
	if err := config.Resolve(cfg, config.StaticFacts{Host: "node1", IPs: []net.IP{net.ParseIP(ip)}}); err != nil {
		t.Fatalf("resolve: %v", err)
	}
	return cfg
}

// decodePod decodes a manifest strictly: unknown, duplicate or
// case-mismatched fields fail the test.
func decodePod(t *testing.T, f rootfs.File) *corev1.Pod {
	t.Helper()
	j, err := yaml.YAMLToJSONStrict(f.Data)
	if err != nil {
		t.Fatalf("%s: not YAML: %v", f.Path, err)
	}
	var pod corev1.Pod
	strictErrs, err := kjson.UnmarshalStrict(j, &pod)
	if err == nil {
		err = errors.Join(strictErrs...)
	}
	if err != nil {
		t.Fatalf("%s: not a strict core/v1 Pod: %v\n%s", f.Path, err, f.Data)
	}
	return &pod
}

// pods renders everything and decodes it, keyed by Pod name.
func pods(t *testing.T, cfg *config.Config, opts Options) map[string]*corev1.Pod {
	t.Helper()
	etcd, err := Etcd(cfg)
	if err != nil {
		t.Fatalf("Etcd: %v", err)
	}
	cp, err := ControlPlane(cfg, opts)
	if err != nil {
		t.Fatalf("ControlPlane: %v", err)
	}
	out := map[string]*corev1.Pod{}
	for _, f := range append(etcd, cp...) {
		p := decodePod(t, f)
		out[p.Name] = p
	}
	return out
}

func volumeByName(p *corev1.Pod, name string) (corev1.Volume, bool) {
	for _, v := range p.Spec.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return corev1.Volume{}, false
}

func mountByName(p *corev1.Pod, name string) (corev1.VolumeMount, bool) {
	for _, m := range p.Spec.Containers[0].VolumeMounts {
		if m.Name == name {
			return m, true
		}
	}
	return corev1.VolumeMount{}, false
}

func hasFlag(p *corev1.Pod, flag string) bool {
	for _, a := range p.Spec.Containers[0].Command {
		if a == flag {
			return true
		}
	}
	return false
}

func flagsNamed(p *corev1.Pod, name string) []string {
	var out []string
	prefix := "--" + name + "="
	for _, a := range p.Spec.Containers[0].Command {
		if len(a) >= len(prefix) && a[:len(prefix)] == prefix {
			out = append(out, a[len(prefix):])
		}
	}
	return out
}

// diff is "" when want and got are deeply equal, else both, one value or
// line each.
func diff(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	return "want:\n" + show(want) + "\ngot:\n" + show(got)
}

func show(v any) string {
	if s, ok := v.([]string); ok {
		return "  " + strings.Join(s, "\n  ")
	}
	return fmt.Sprintf("  %#v", v)
}

// sameRequests compares resource lists by value, not representation.
func sameRequests(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || v.Cmp(w) != 0 {
			return false
		}
	}
	return true
}
