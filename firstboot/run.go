package firstboot

import (
	"io"
	"log/slog"
	"time"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
	"github.com/kubeboot/kubeboot/pkg/userdata"
)

// Options are what the command line decides.
type Options struct {
	// Root prefixes every host path kubeboot writes or reads; "" is "/".
	Root   string
	DryRun bool
	// SkipPhases and IgnorePreflightErrors follow kubeadm's flags.
	SkipPhases            []string
	IgnorePreflightErrors []string
	// ConfigSource names ConfigData in messages; no source means defaults.
	ConfigSource string
	ConfigData   []byte
	Facts        config.HostFacts
	Out          io.Writer
	Log          *slog.Logger
	Version      string
	Now          func() time.Time
	// Userdata is what the userdata sources held, if anything.
	Userdata *userdata.Result
	// AllowNewInstance accepts a new NoCloud instance-id on a disk that
	// another instance initialised.
	AllowNewInstance bool
	// Force runs phases even when the journal says they are done, as
	// `init phase NAME` does.
	Force bool
	// NoResolve leaves node name and advertise address as configured
	// (reset needs neither).
	NoResolve bool
	// Notify sends sd_notify messages; nil sends nothing.
	Notify func(state string)
}

// Run is the state of one run of a flow, shared by its phases. Phases pass
// results to later phases through the files they write, not through
// fields here, so that any phase can run alone and after a reboot.
type Run struct {
	Options
	Cfg *config.Config
	// Join is the join configuration of a joining node; nil for init.
	Join    *config.JoinConfig
	Writer  rootfs.Writer
	Journal *Journal
}

func (r *Run) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}
