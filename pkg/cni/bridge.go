// Package cni renders kubeboot's built-in single-node pod network: a
// bridge with host-local addresses from the pod subnet, port mapping and
// loopback, using the standard CNI plugins (Debian's
// containernetworking-plugins). Multi-node clusters need a real add-on.
package cni

import (
	"encoding/json"
	"fmt"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// ConfPath sorts first in /etc/cni/net.d, where the runtime takes the
// first configuration it finds.
const ConfPath = "/etc/cni/net.d/10-kubeboot-bridge.conflist"

// DefaultBridge is the bridge's name when the configuration gives none.
const DefaultBridge = "cni0"

// Render returns the CNI configuration list, or nothing when the built-in
// network is off.
func Render(c *config.Config) ([]rootfs.File, error) {
	if !c.Boot.PodNetwork.Builtin {
		return nil, nil
	}
	subnets, err := config.ParseCIDRs(c.Cluster.Networking.PodSubnet)
	if err != nil {
		return nil, fmt.Errorf("pod network: networking.podSubnet: %w", err)
	}
	bridge := c.Boot.PodNetwork.Bridge
	if bridge == "" {
		bridge = DefaultBridge
	}
	var ranges [][]map[string]string
	var routes []map[string]string
	for _, n := range subnets {
		ranges = append(ranges, []map[string]string{{"subnet": n.String()}})
		dst := "0.0.0.0/0"
		if n.IP.To4() == nil {
			dst = "::/0"
		}
		routes = append(routes, map[string]string{"dst": dst})
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "kubeboot",
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      bridge,
				"isGateway":   true,
				"ipMasq":      true,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": ranges,
					"routes": routes,
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
			map[string]any{"type": "loopback"},
		},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, err
	}
	return []rootfs.File{{Path: ConfPath, Mode: 0o644, Data: append(data, '\n')}}, nil
}
