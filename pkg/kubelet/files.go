// Package kubelet renders the files a kubeadm-style kubelet reads: its
// configuration, the flags environment file and the systemd drop-in that
// wires both into kubelet.service.
package kubelet

import (
	"fmt"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// Paths kubeadm uses; kubeadm upgrade and join read them.
const (
	ConfigPath              = "/var/lib/kubelet/config.yaml"
	FlagsEnvPath            = "/var/lib/kubelet/kubeadm-flags.env"
	DropInPath              = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
	KubeconfigPath          = "/etc/kubernetes/kubelet.conf"
	BootstrapKubeconfigPath = "/etc/kubernetes/bootstrap-kubelet.conf"
	// BinaryPath is where images put the kubelet; /usr is read-only on
	// immutable images, so nothing here writes there.
	BinaryPath = "/usr/bin/kubelet"
)

// Render returns the kubelet's files for a resolved configuration.
func Render(c *config.Config) ([]rootfs.File, error) {
	cfgYAML, err := yaml.Marshal(&c.Kubelet)
	if err != nil {
		return nil, fmt.Errorf("kubelet: marshal KubeletConfiguration: %w", err)
	}
	return []rootfs.File{
		{Path: ConfigPath, Mode: 0o644, Data: cfgYAML},
		{Path: FlagsEnvPath, Mode: 0o644, Data: []byte(FlagsEnv(c))},
		{Path: DropInPath, Mode: 0o644, Data: []byte(DropIn())},
	}, nil
}

// Flags are the node-specific kubelet flags. kubeadm passes only
// --hostname-override when the name differs from the hostname; we also
// pin --node-ip to the advertise address, because on multi-homed machines
// the kubelet otherwise picks the first address it finds, a classic cause
// of nodes that cannot reach each other.
func Flags(c *config.Config) []config.Arg {
	args := []config.Arg{}
	if n := c.Init.NodeRegistration.Name; n != "" {
		args = append(args, config.Arg{Name: "hostname-override", Value: n})
	}
	if ip := c.Init.LocalAPIEndpoint.AdvertiseAddress; ip != "" {
		args = append(args, config.Arg{Name: "node-ip", Value: ip})
	}
	return mergeArgs(args, c.Init.NodeRegistration.KubeletExtraArgs)
}

// FlagsEnv renders kubeadm-flags.env.
func FlagsEnv(c *config.Config) string {
	var parts []string
	for _, a := range Flags(c) {
		parts = append(parts, fmt.Sprintf("--%s=%s", a.Name, a.Value))
	}
	return fmt.Sprintf("KUBELET_KUBEADM_ARGS=%q\n", strings.Join(parts, " "))
}

// mergeArgs lets user arguments replace defaults of the same name and adds
// the rest, sorted by name for a stable file.
func mergeArgs(defaults, user []config.Arg) []config.Arg {
	byName := map[string]bool{}
	for _, a := range user {
		byName[a.Name] = true
	}
	var out []config.Arg
	for _, a := range defaults {
		if !byName[a.Name] {
			out = append(out, a)
		}
	}
	out = append(out, user...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// DropIn is the systemd drop-in kubeadm's packages ship, so that a kubelet
// started by kubeboot behaves exactly like one set up by kubeadm.
func DropIn() string {
	return `# Written by kubeboot: the kubelet reads its kubeadm-style files.
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=` + BootstrapKubeconfigPath + ` --kubeconfig=` + KubeconfigPath + `"
Environment="KUBELET_CONFIG_ARGS=--config=` + ConfigPath + `"
EnvironmentFile=-` + FlagsEnvPath + `
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=` + BinaryPath + ` $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`
}
