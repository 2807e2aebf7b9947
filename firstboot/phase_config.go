package firstboot

import (
	"context"
	"fmt"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// LoadConfig decodes, defaults, validates and resolves the configuration
// the options carry (or the defaults when they carry none).
func LoadConfig(o Options) (*config.Config, error) {
	var cfg *config.Config
	if o.ConfigSource == "" && o.Userdata != nil && len(o.Userdata.Config) > 0 {
		o.ConfigSource, o.ConfigData = o.Userdata.Source, o.Userdata.Config
	}
	if o.Userdata != nil && o.Userdata.Hostname != "" {
		o.Facts = metaDataFacts{HostFacts: o.Facts, hostname: o.Userdata.Hostname}
	}
	if o.ConfigSource == "" {
		cfg = config.Defaults()
	} else {
		c, err := config.Load(o.ConfigSource, o.ConfigData)
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	if o.NoResolve {
		return cfg, nil
	}
	if err := config.Resolve(cfg, o.Facts); err != nil {
		return nil, err
	}
	return cfg, nil
}

var configPhase = Phase{
	Name:  "config",
	Short: "Load, default and validate the configuration",
	Render: func(_ context.Context, r *Run) (Output, error) {
		if r.Cfg == nil {
			cfg, err := LoadConfig(r.Options)
			if err != nil {
				return Output{}, err
			}
			r.Cfg = cfg
		}
		c := r.Cfg
		return Output{Summary: fmt.Sprintf("node %s, advertise %s:%d, Kubernetes %s",
			c.Init.NodeRegistration.Name, c.Init.LocalAPIEndpoint.AdvertiseAddress,
			c.Init.LocalAPIEndpoint.BindPort, c.Cluster.KubernetesVersion)}, nil
	},
}
