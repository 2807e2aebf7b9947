package firstboot

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
	"github.com/kubeboot/kubeboot/pkg/systemd"
)

// metaDataFacts lets NoCloud meta-data's local-hostname name the node.
type metaDataFacts struct {
	config.HostFacts
	hostname string
}

func (m metaDataFacts) Hostname() (string, error) { return m.hostname, nil }

const instanceIDFact = "instance-id"

var userdataPhase = Phase{
	Name:  "userdata",
	Short: "Apply the files, units and SSH keys the machine's userdata carries",
	Inputs: func(r *Run) (any, error) {
		if r.Userdata == nil {
			return "none", nil
		}
		// The redacted view covers source, format and every file's digest;
		// the configuration itself is hashed without being kept.
		return []any{r.Userdata.Redacted(), sha256.Sum256(r.Userdata.Config)}, nil
	},
	Render: func(_ context.Context, r *Run) (Output, error) {
		ud := r.Userdata
		if ud == nil {
			return Output{Summary: "no userdata; using " + configOrigin(r)}, nil
		}
		if id := ud.InstanceID; id != "" {
			if old := r.Journal.Facts[instanceIDFact]; old != "" && old != id && !r.AllowNewInstance {
				return Output{}, fmt.Errorf("this disk was initialised by instance %q and now runs as %q: a cloned image must not reuse another machine's identity (keys, tokens, etcd member); run `kubeboot reset` first, or pass --allow-new-instance if the machine really is the same", old, id)
			}
			r.Journal.Facts[instanceIDFact] = id
		}
		return Output{
			Summary:  fmt.Sprintf("%s from %s", ud.Format, ud.Source),
			Warnings: ud.Warnings,
			Write:    func(w rootfs.Writer) error { return ud.Apply(w) },
		}, nil
	},
	// Units the userdata enables are enabled and started, as they would
	// be had Ignition run in the initramfs; kubeboot runs after that boot
	// has begun, so enabling alone would wait for the next boot.
	Apply: func(ctx context.Context, r *Run) (string, error) {
		if r.Userdata == nil {
			return "", nil
		}
		enable, disable := r.Userdata.UnitStates()
		if len(disable) > 0 {
			r.warn("userdata", "units to disable are left as they are: "+strings.Join(disable, ", "))
		}
		if len(enable) == 0 {
			return "", nil
		}
		m, err := systemd.Connect(ctx)
		if errors.Is(err, systemd.ErrNoSystemd) {
			r.warn("userdata", "units not enabled ("+err.Error()+"): "+strings.Join(enable, ", "))
			return "", nil
		}
		if err != nil {
			return "", err
		}
		defer m.Close()
		if err := m.Reload(ctx); err != nil {
			return "", err
		}
		for _, u := range enable {
			if err := m.Enable(ctx, u); err != nil {
				return "", fmt.Errorf("enable %s: %w", u, err)
			}
			if err := m.Start(ctx, u); err != nil {
				return "", fmt.Errorf("start %s: %w", u, err)
			}
		}
		return "enabled and started " + strings.Join(enable, ", "), nil
	},
}

func configOrigin(r *Run) string {
	if r.ConfigSource == "" {
		return "the embedded defaults"
	}
	return r.ConfigSource
}
