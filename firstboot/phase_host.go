package firstboot

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/host"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

func hostModules(c *config.Config) []host.Module {
	mods := make([]host.Module, len(c.Boot.KernelModules))
	for i, m := range c.Boot.KernelModules {
		mods[i] = host.Module{Name: m.Name, Optional: m.Optional}
	}
	return mods
}

// clusterHasIPv6 tells whether any service or pod subnet is IPv6.
func clusterHasIPv6(c *config.Config) bool {
	for _, s := range []string{c.Cluster.Networking.ServiceSubnet, c.Cluster.Networking.PodSubnet} {
		nets, _ := config.ParseCIDRs(s)
		for _, n := range nets {
			if n.IP.To4() == nil {
				return true
			}
		}
	}
	return false
}

var hostPhase = Phase{
	Name:  "host",
	Short: "Load kernel modules and set sysctls, persisted for later boots",
	Inputs: func(r *Run) (any, error) {
		return []any{r.Cfg.Boot.KernelModules, r.Cfg.Boot.Sysctls, clusterHasIPv6(r.Cfg), r.Cfg.Boot.NodeNameInHosts,
			r.Cfg.Init.NodeRegistration.Name, r.Cfg.Init.LocalAPIEndpoint.AdvertiseAddress}, nil
	},
	Render: func(_ context.Context, r *Run) (Output, error) {
		values, warnings := host.Sysctls(nil, r.Cfg.Boot.Sysctls, clusterHasIPv6(r.Cfg))
		files := []rootfs.File{host.ModulesLoadFile(hostModules(r.Cfg)), host.SysctlFile(values)}
		summary := ""
		if *r.Cfg.Boot.NodeNameInHosts {
			current, err := r.readOptional(host.HostsPath)
			if err != nil {
				return Output{}, err
			}
			if f, changed := host.HostsWithNode(current, r.Cfg.Init.LocalAPIEndpoint.AdvertiseAddress, r.Cfg.Init.NodeRegistration.Name); changed {
				files = append(files, f)
				summary = "node name added to /etc/hosts"
			}
		}
		return Output{Files: files, Warnings: warnings, Summary: summary}, nil
	},
	Apply: func(ctx context.Context, r *Run) (string, error) {
		// The network is the machine's whatever the root prefix: an
		// advertise address no interface holds, or subnets a local route
		// covers, make clusters that only half work.
		if err := host.CheckAdvertise(net.ParseIP(r.Cfg.Init.LocalAPIEndpoint.AdvertiseAddress)); err != nil {
			return "", err
		}
		pods, _ := config.ParseCIDRs(r.Cfg.Cluster.Networking.PodSubnet)
		if r.Cfg.Cluster.Networking.PodSubnet == "" {
			pods = nil
		}
		services, _ := config.ParseCIDRs(r.Cfg.Cluster.Networking.ServiceSubnet)
		if err := host.CheckSubnets(pods, services); err != nil {
			return "", err
		}
		reports, err := host.LoadModules(ctx, r.Root, "", hostModules(r.Cfg), host.KernelLoader())
		if err != nil {
			return "", err
		}
		states := map[host.ModuleState]int{}
		for _, m := range reports {
			states[m.State]++
			for _, w := range m.Warnings {
				r.warn("host", w)
			}
		}
		values, _ := host.Sysctls(nil, r.Cfg.Boot.Sysctls, clusterHasIPv6(r.Cfg))
		sreps, err := host.ApplySysctls(r.Root, values)
		if err != nil {
			return "", err
		}
		changed := 0
		for _, s := range sreps {
			if s.Changed {
				changed++
			}
		}
		var parts []string
		for _, st := range []host.ModuleState{host.ModuleLoaded, host.ModuleAlreadyLoaded, host.ModuleBuiltIn, host.ModuleNoModuleSupport, host.ModuleFailedOptional} {
			if n := states[st]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, st))
			}
		}
		return fmt.Sprintf("modules: %s; sysctls: %d set, %d changed", strings.Join(parts, ", "), len(sreps), changed), nil
	},
}
