package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"
)

// clusterStream is what a cluster publishes for joining nodes: the
// ClusterConfiguration of kube-system/kubeadm-config and the
// KubeletConfiguration of kube-system/kubelet-config. Either tool may have
// written them, so fields kubeboot does not know are errors that say so
// rather than being dropped silently.
var clusterStream = stream{
	command: "join",
	kinds:   map[string]string{KindCluster: KubeadmGroupVersion, KindKubelet: KubeletGroupVersion},
	unused:  map[string]string{KindInit: "", KindJoin: "", KindBoot: "", KindKubeProxy: ""},
	list:    "ClusterConfiguration, KubeletConfiguration",
}

// ForJoin is the whole configuration of a joining node: the cluster's
// ClusterConfiguration and KubeletConfiguration (as read from the cluster,
// named by source), this node's registration and API endpoint from the
// join configuration, and the join configuration's KubeletConfiguration
// fields on top of the cluster's (kubeadm's kubeletconfiguration patch).
// nodeIP is the node's address (--node-ip); a control-plane join's
// localAPIEndpoint wins over it.
func ForJoin(j *JoinConfig, source string, clusterYAML, kubeletYAML []byte, nodeIP string) (*Config, error) {
	if source == "" {
		source = j.Source
	}
	c := &Config{Source: source}
	// Before discovery there is nothing from the cluster yet: defaults
	// stand in, for the phases that run before it (host, preflight).
	if len(clusterYAML) > 0 {
		docs := append(append([]byte{}, clusterYAML...), []byte("\n---\n")...)
		docs = append(docs, kubeletYAML...)
		if _, err := clusterStream.decode(source, docs, map[string]any{KindCluster: &c.Cluster, KindKubelet: &c.Kubelet}); err != nil {
			return nil, err
		}
		if c.Cluster.KubernetesVersion == "" {
			return nil, fmt.Errorf("%s: no ClusterConfiguration with a kubernetesVersion", source)
		}
	}
	if j.Kubelet != nil {
		merged, err := overlayKubelet(c.Kubelet, *j.Kubelet, j.docs[KindKubelet].lines)
		if err != nil {
			return nil, fmt.Errorf("%s: KubeletConfiguration: %w", j.Source, err)
		}
		c.Kubelet = merged
	}
	c.Boot = j.Boot
	c.Init.NodeRegistration = j.Join.NodeRegistration
	// Taints not given are join's decision (SetJoinDefaults), not init's:
	// init's defaults would give a worker the control-plane taint.
	if c.Init.NodeRegistration.Taints == nil {
		c.Init.NodeRegistration.Taints = []corev1.Taint{}
		if j.Join.ControlPlane != nil {
			c.Init.NodeRegistration.Taints = []corev1.Taint{ControlPlaneTaint}
		}
	}
	c.Init.SkipPhases = j.Join.SkipPhases
	c.Init.Timeouts = j.Join.Timeouts
	c.Init.LocalAPIEndpoint.AdvertiseAddress = nodeIP
	if cp := j.Join.ControlPlane; cp != nil {
		c.Init.LocalAPIEndpoint = cp.LocalAPIEndpoint
	}
	SetDefaults(c)
	// A joining kubelet registers with its taints, as kubeadm join has it
	// do: a worker meant to be tainted must never be schedulable, not even
	// for the moment before a later patch. (init taints its node through
	// mark-control-plane instead.)
	_, set := LastArg(c.Init.NodeRegistration.KubeletExtraArgs, "register-with-taints")
	if ts := c.Init.NodeRegistration.Taints; len(ts) > 0 && !set {
		var parts []string
		for _, t := range ts {
			parts = append(parts, t.ToString())
		}
		nr := &c.Init.NodeRegistration
		nr.KubeletExtraArgs = append(append([]Arg{}, nr.KubeletExtraArgs...), Arg{Name: "register-with-taints", Value: strings.Join(parts, ",")})
	}
	// The kubelet's endpoint is per node: the cluster's copy has none.
	c.Kubelet.ContainerRuntimeEndpoint = c.Init.NodeRegistration.CRISocket
	return c, nil
}

// overlayKubelet sets every field given in the node's own document on top
// of the cluster's, recursively for nested objects; lists are replaced.
// given holds the field paths the document spelled out (nil: none known).
func overlayKubelet(base, over kubeletv1beta1.KubeletConfiguration, given map[string]int) (kubeletv1beta1.KubeletConfiguration, error) {
	var out kubeletv1beta1.KubeletConfiguration
	b, err := toMap(base)
	if err != nil {
		return out, err
	}
	o, err := toMap(over)
	if err != nil {
		return out, err
	}
	zero, err := toMap(kubeletv1beta1.KubeletConfiguration{})
	if err != nil {
		return out, err
	}
	pruneUnset(o, zero, given, "")
	data, err := json.Marshal(mergeMaps(b, o))
	if err != nil {
		return out, err
	}
	return out, yaml.Unmarshal(data, &out)
}

func toMap(v any) (map[string]any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	return m, json.Unmarshal(data, &m)
}

// pruneUnset drops from m what an empty KubeletConfiguration marshals to
// anyway (durations as "0s", fields without omitempty) unless the document
// gave it: such a field was not set by the node, and merging it would
// reset the cluster's value.
func pruneUnset(m, zero map[string]any, given map[string]int, prefix string) {
	for k, v := range m {
		p := join(prefix, k)
		zv, inZero := zero[k]
		if vm, ok := v.(map[string]any); ok {
			// An object given may still hold fields that were not.
			zm, _ := zv.(map[string]any)
			pruneUnset(vm, zm, given, p)
			if len(vm) == 0 {
				delete(m, k)
			}
			continue
		}
		if _, ok := given[p]; !ok && inZero && reflect.DeepEqual(v, zv) {
			delete(m, k)
		}
	}
}

func mergeMaps(base, over map[string]any) map[string]any {
	for k, v := range over {
		if om, ok := v.(map[string]any); ok {
			if bm, ok := base[k].(map[string]any); ok {
				base[k] = mergeMaps(bm, om)
				continue
			}
		}
		base[k] = v
	}
	return base
}

// JoinFromInit is the join configuration of a machine that booted an init
// configuration but lost the rendezvous: the same node registration, boot
// settings and kubelet configuration, joining as a control-plane node
// (with the init configuration's bind port) or as a worker. Discovery is
// left for the join secret to fill.
func JoinFromInit(c *Config, controlPlane bool) *JoinConfig {
	j := NewJoinConfig(c.Source)
	j.Boot = c.Boot
	j.Join.NodeRegistration = c.Init.NodeRegistration
	j.Join.Timeouts = c.Init.Timeouts
	if controlPlane {
		// The address is this machine's own, resolved again on the joiner.
		j.Join.ControlPlane = &JoinControlPlane{LocalAPIEndpoint: APIEndpoint{BindPort: c.Init.LocalAPIEndpoint.BindPort}}
	} else {
		// The init configuration's taints are the control plane's.
		j.Join.NodeRegistration.Taints = nil
	}
	return j
}
