package userdata

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// API groups whose documents make up a kubeboot configuration. pkg/config
// decodes and validates the documents; userdata only recognizes them.
var configGroups = map[string]bool{
	"kubeadm.k8s.io":          true,
	"kubeboot.dev":            true,
	"kubelet.config.k8s.io":   true,
	"kubeproxy.config.k8s.io": true,
}

// primaryGroups: at least one document must belong to one of these.
var primaryGroups = map[string]bool{"kubeadm.k8s.io": true, "kubeboot.dev": true}

const maxConfigDocs = 64

// checkKubebootYAML accepts a multi-document YAML stream whose every
// document has an apiVersion of a kubeboot configuration group and a kind.
func checkKubebootYAML(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	primary := false
	n := 0
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("YAML: %v", err)
		}
		n++
		if n > maxConfigDocs {
			return fmt.Errorf("more than %d YAML documents", maxConfigDocs)
		}
		if len(doc.Content) == 0 {
			continue // an empty document between separators
		}
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			return fmt.Errorf("document %d (line %d): not a mapping", n, root.Line)
		}
		apiVersion, kind := scalarField(root, "apiVersion"), scalarField(root, "kind")
		if apiVersion == "" || kind == "" {
			return fmt.Errorf("document %d (line %d): no apiVersion and kind", n, root.Line)
		}
		group, _, _ := strings.Cut(apiVersion, "/")
		if !configGroups[group] {
			return fmt.Errorf("document %d (line %d): apiVersion %q is not a kubeboot configuration group", n, root.Line, apiVersion)
		}
		if primaryGroups[group] {
			primary = true
		}
	}
	if !primary {
		return fmt.Errorf("no kubeadm.k8s.io or kubeboot.dev document")
	}
	return nil
}

// scalarField returns the scalar value of key in mapping m, or "".
func scalarField(m *yaml.Node, key string) string {
	if v := field(m, key); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value
	}
	return ""
}

// field returns the value node of key in mapping m, or nil.
func field(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Kind == yaml.ScalarNode && m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
