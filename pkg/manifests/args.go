package manifests

import (
	"cmp"
	"slices"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// command builds a component's command line the way kubeadm does: the
// defaults sorted by name and value, without those whose name the
// overrides mention, followed by every override in its given order.
func command(binary string, defaults, overrides []config.Arg) []string {
	base := slices.Clone(defaults)
	slices.SortStableFunc(base, func(a, b config.Arg) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Value, b.Value))
	})
	overridden := make(map[string]bool, len(overrides))
	for _, a := range overrides {
		overridden[a.Name] = true
	}
	out := make([]string, 0, 1+len(base)+len(overrides))
	out = append(out, binary)
	for _, a := range base {
		if !overridden[a.Name] {
			out = append(out, flag(a))
		}
	}
	for _, a := range overrides {
		out = append(out, flag(a))
	}
	return out
}

func flag(a config.Arg) string { return "--" + a.Name + "=" + a.Value }

// setArg sets the last argument called name to value, or appends it.
func setArg(args []config.Arg, name, value string) []config.Arg {
	for i := len(args) - 1; i >= 0; i-- {
		if args[i].Name == name {
			args[i].Value = value
			return args
		}
	}
	return append(args, config.Arg{Name: name, Value: value})
}
