package firstboot

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path"
	"strconv"

	"github.com/kubeboot/kubeboot/pkg/postinstall"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// Small accessors for the files phases hand to each other.

func (r *Run) statePath(name string) string { return path.Join(r.Cfg.Boot.StateDir, name) }

func (r *Run) readFile(p string) ([]byte, error) {
	return rootfs.ReadFile(r.Writer.FS(), p)
}

// readOptional returns nil, nil for a missing file.
func (r *Run) readOptional(p string) ([]byte, error) {
	data, err := r.readFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

func (r *Run) caCert() ([]byte, error) {
	p := path.Join(r.Cfg.Cluster.CertificatesDir, "ca.crt")
	data, err := r.readFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w (run the certs phase first)", p, err)
	}
	return data, nil
}

// tokens reads what the bootstrap-token phase resolved.
func (r *Run) tokens() ([]postinstall.Token, error) {
	p := r.statePath(postinstall.TokensFile)
	data, err := r.readFile(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w (run the bootstrap-token phase first)", p, err)
	}
	return postinstall.ParseTokens(data)
}

// controlPlaneEndpoint is what joining nodes dial: controlPlaneEndpoint
// when set, else the advertise address and bind port.
func (r *Run) controlPlaneEndpoint() string {
	c := r.Cfg
	if ep := c.Cluster.ControlPlaneEndpoint; ep != "" {
		if _, _, err := net.SplitHostPort(ep); err != nil {
			return net.JoinHostPort(ep, strconv.Itoa(int(c.Init.LocalAPIEndpoint.BindPort)))
		}
		return ep
	}
	return net.JoinHostPort(c.Init.LocalAPIEndpoint.AdvertiseAddress, strconv.Itoa(int(c.Init.LocalAPIEndpoint.BindPort)))
}

func (r *Run) clients(kubeconfig string) (*postinstall.Clients, error) {
	return postinstall.NewClients(r.Writer.HostPath(kubeconfig))
}

func (r *Run) admin() (*postinstall.Clients, error) { return r.clients("/etc/kubernetes/admin.conf") }

func (r *Run) applier(c *postinstall.Clients) postinstall.Applier {
	return postinstall.Applier{Client: c.Dynamic, Timeout: r.Cfg.Init.Timeouts.KubernetesAPICall.Duration, Ready: postinstall.ReadyFunc(c.Typed)}
}

func appliedSummary(res []postinstall.Applied) string {
	changed := 0
	for _, a := range res {
		if a.Changed {
			changed++
		}
	}
	return fmt.Sprintf("%d objects applied, %d changed", len(res), changed)
}

func (r *Run) readOptionalStat(p string) (fs.FileInfo, error) {
	return fs.Stat(r.Writer.FS(), rootfs.Clean(p)[1:])
}

// StampFile marks a completed init; kubeboot.service does not run again
// once it exists (ConditionPathExists=!/var/lib/kubeboot/done).
const StampFile = "done"

// WriteStamp records that init completed.
func WriteStamp(r *Run) error {
	data := fmt.Sprintf("kubeboot %s completed init at %s\n", r.Version, r.now().UTC().Format("2006-01-02T15:04:05Z"))
	_, err := r.Writer.WriteFile(rootfs.File{Path: r.statePath(StampFile), Mode: 0o644, Data: []byte(data)})
	return err
}
