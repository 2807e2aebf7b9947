// Package version holds what the build stamps into the binary.
package version

import "github.com/kubeboot/kubeboot/pkg/config"

// Set with -ldflags -X at build time.
var (
	Version = "dev"
	Commit  = "unknown"
)

// Info is what `kubeboot version` prints.
type Info struct {
	Version    string `json:"version"`
	Commit     string `json:"commit"`
	Kubernetes string `json:"kubernetesVersion"`
}

func Get() Info {
	return Info{Version: Version, Commit: Commit, Kubernetes: config.KubernetesVersion}
}
