package config

import (
	"bytes"
	"fmt"

	"sigs.k8s.io/yaml"
)

// Marshal writes the configuration back as one multi-document YAML stream
// in a stable order.
func (c *Config) Marshal() ([]byte, error) {
	var b bytes.Buffer
	for i, doc := range []any{&c.Init, &c.Cluster, &c.Kubelet, &c.KubeProxy, &c.Boot} {
		out, err := yaml.Marshal(doc)
		if err != nil {
			return nil, fmt.Errorf("marshal document %d: %w", i+1, err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(out)
	}
	return b.Bytes(), nil
}

// Defaults returns a complete configuration with every default applied and
// nothing taken from the host: a file a user can edit.
func Defaults() *Config {
	c := &Config{Source: "defaults", docs: map[string]docInfo{}}
	SetDefaults(c)
	return c
}
