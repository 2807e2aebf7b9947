package qemu

import (
	"encoding/base64"
	"encoding/json"
)

// IgnitionConfig carries kubeboot's configuration as /etc/kubeboot/config.yaml,
// the way a user's userdata does: one Ignition file entry with a data: URL.
func IgnitionConfig(config string) []byte {
	doc := map[string]any{
		"ignition": map[string]any{"version": "3.4.0"},
		"storage": map[string]any{"files": []any{map[string]any{
			"path": "/etc/kubeboot/config.yaml",
			"mode": 0o600,
			"contents": map[string]any{
				"source": "data:;base64," + base64.StdEncoding.EncodeToString([]byte(config)),
			},
		}}},
	}
	data, _ := json.MarshalIndent(doc, "", "  ")
	return data
}
