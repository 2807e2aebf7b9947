package preflight

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// Env is everything the checks learn from the host. HostEnv fills it for
// the real machine; tests fill it with fakes and a temporary root tree. A
// nil function makes the checks that need it report "skipped".
type Env struct {
	// Root prefixes every file the checks read: /proc, /sys, /etc, /var,
	// /boot, the manifests and the etcd data directory. "" is "/".
	Root string
	// Listen binds an address for the port checks (net.Listen).
	Listen func(network, address string) (net.Listener, error)
	// LookupHost resolves the node name.
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// LookPath finds a command on the PATH the kubelet will run with and
	// returns its path.
	LookPath func(file string) (string, error)
	// Unit reports a systemd unit's state ("kubelet" means kubelet.service).
	// It returns a *NoSystemdError when systemd is not the init system.
	Unit func(ctx context.Context, name string) (UnitState, error)
	// CRI asks the container runtime at a CRI endpoint about itself; an
	// error means that no runtime answers there.
	CRI func(ctx context.Context, endpoint string) (*CRIInfo, error)
	// Euid is the effective user ID.
	Euid func() int
	// NumCPU is the number of CPUs this process may use.
	NumCPU func() int
	// KubeletVersion returns what `kubelet --version` prints, such as
	// "Kubernetes v1.37.2".
	KubeletVersion func(ctx context.Context) (string, error)
	// Getenv reads the proxy variables.
	Getenv func(key string) string
	// EtcdVersion GETs an etcd server's /version URL and returns its
	// "etcdserver" field.
	EtcdVersion func(ctx context.Context, url string, tlsConfig *tls.Config) (string, error)
}

// UnitState is what systemd says about one unit.
type UnitState struct {
	// Exists is false when systemd has no unit file for it.
	Exists bool
	// Enabled is the unit file state: enabled, disabled, static, masked...
	Enabled string
	// Active is the active state: active, inactive, failed, activating...
	Active string
}

// NoSystemdError says that systemd is not the init system, so no unit
// state can be known.
type NoSystemdError struct {
	// PID1 is the name of the init process, when it could be read.
	PID1 string
}

func (e *NoSystemdError) Error() string {
	if e.PID1 == "" {
		return "systemd is not PID 1"
	}
	return fmt.Sprintf("systemd is not PID 1 (PID 1 is %q)", e.PID1)
}

// CRIInfo is what the container runtime says about itself.
type CRIInfo struct {
	RuntimeName       string // containerd
	RuntimeVersion    string // 1.6.20~ds1
	RuntimeAPIVersion string // v1
	// Ready is the RuntimeReady condition of the runtime's status; Reason
	// and Message explain a false one.
	Ready     bool
	Reason    string
	Message   string
	StatusErr error // the Status call failed
	// RuntimeConfig is true when the runtime implements the CRI
	// RuntimeConfig call (containerd 2.x, CRI-O 1.28+); it then reports
	// its cgroup driver ("systemd" or "cgroupfs"), which the kubelet uses.
	RuntimeConfig    bool
	RuntimeConfigErr error // the call failed for another reason than "unimplemented"
	CgroupDriver     string
}

// path is p under the root.
func (e *Env) path(p string) string {
	if e.Root == "" || e.Root == "/" {
		return p
	}
	return filepath.Join(e.Root, p)
}

func (e *Env) readFile(p string) ([]byte, error) {
	return os.ReadFile(e.path(p))
}

// readString reads a one-line file such as a /proc/sys entry.
func (e *Env) readString(p string) (string, error) {
	b, err := e.readFile(p)
	return strings.TrimSpace(string(b)), err
}

// cached returns a copy of env whose CRI, KubeletVersion and Unit answers
// are asked once per run, since several checks need them.
func (e Env) cached() Env {
	if f := e.CRI; f != nil {
		type answer struct {
			info *CRIInfo
			err  error
		}
		seen := map[string]answer{}
		e.CRI = func(ctx context.Context, endpoint string) (*CRIInfo, error) {
			if a, ok := seen[endpoint]; ok {
				return a.info, a.err
			}
			info, err := f(ctx, endpoint)
			seen[endpoint] = answer{info, err}
			return info, err
		}
	}
	if f := e.KubeletVersion; f != nil {
		var done bool
		var out string
		var err error
		e.KubeletVersion = func(ctx context.Context) (string, error) {
			if !done {
				out, err = f(ctx)
				done = true
			}
			return out, err
		}
	}
	return e
}
