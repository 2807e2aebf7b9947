// Package userdata finds a node's first-boot userdata where the images that
// kubeboot targets put it (Ignition on fw_cfg, the kernel command line or a
// file; cloud-init NoCloud on a cidata disk or the command line; the
// configuration baked into the image) and decodes it into what to write.
//
// Decoding is pure: Find reads sources but writes nothing. It returns a
// Result, which holds every file, directory, link, unit and key the
// userdata asks for, and the kubeboot configuration it carries. Everything
// is validated before Find returns, so bad userdata yields an error and no
// Result: nothing is written at all.
package userdata

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// Formats of userdata.
const (
	FormatIgnition     = "ignition" // with its spec version appended: "ignition-3.4"
	FormatCloudConfig  = "cloud-config"
	FormatMultipart    = "multipart"
	FormatKubebootYAML = "kubeboot-yaml"
)

// ConfigPath is where kubeboot's own configuration lives on the host, and
// the Ignition file that carries it.
const ConfigPath = "/etc/kubeboot/config.yaml"

// Result is what a userdata source asks for. The caller writes it (see
// Apply); Find never does.
type Result struct {
	// Source says where the userdata came from, for logs and `userdata show`;
	// URLs appear without their query strings.
	Source string
	// Format is FormatCloudConfig, FormatMultipart, FormatKubebootYAML or
	// "ignition-<spec version>".
	Format string
	// Config is the kubeboot configuration (multi-document YAML); empty when
	// the userdata carries none.
	Config []byte

	Files       []File
	Directories []Directory
	Links       []Link
	Units       []Unit
	// SSHAuthorizedKeys maps an existing user name to keys to authorize.
	SSHAuthorizedKeys map[string][]string

	// Hostname is NoCloud meta-data's local-hostname (or cloud-config's
	// hostname); it names the node.
	Hostname string
	// InstanceID is NoCloud meta-data's instance-id, for the state journal.
	InstanceID string

	// Warnings name what the userdata holds that kubeboot does not apply.
	Warnings []string
}

// File is a file to write. Data holds its contents when HasContents is
// set; Append is added after the contents (or after the existing file when
// HasContents is not set).
type File struct {
	rootfs.File
	// HasContents tells that the userdata gave contents; without them an
	// existing file is kept (and appended to) and a missing one is created.
	HasContents bool
	Append      []byte
	// Overwrite allows replacing an existing file; without it an existing
	// file where contents are given is an error at apply time (Ignition's rule).
	Overwrite bool
	// Owner is the numeric owner; nil leaves root or the existing owner.
	Owner *rootfs.Owner
}

// Directory is a directory to create.
type Directory struct {
	rootfs.Directory
	Overwrite bool
	Owner     *rootfs.Owner
}

// Link is a symbolic or hard link to create.
type Link struct {
	rootfs.Link
	Overwrite bool
	Owner     *rootfs.Owner
}

// Unit is a systemd unit: its contents (nil keeps the unit the image has),
// drop-ins, and whether to enable, disable or mask it.
type Unit struct {
	Name     string
	Contents *string
	Dropins  []Dropin
	// Enabled is nil when the userdata does not say.
	Enabled *bool
	Mask    bool
}

// Dropin is a systemd drop-in; nil Contents removes it.
type Dropin struct {
	Name     string
	Contents *string
}

// Error is bad userdata: it names the source, and says what is wrong.
type Error struct {
	Source string
	Err    error
}

func (e *Error) Error() string { return "userdata: " + e.Source + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ErrNotFound is returned by a source that holds no userdata.
var ErrNotFound = errors.New("no userdata")

func badf(source, format string, args ...any) error {
	return &Error{Source: source, Err: fmt.Errorf(format, args...)}
}

func bad(source string, err error) error {
	var ue *Error
	if errors.As(err, &ue) {
		return err
	}
	return &Error{Source: source, Err: err}
}

// modeOf checks a numeric mode from userdata.
func modeOf(m int) (fs.FileMode, error) {
	if m < 0 || m > 0o7777 {
		return 0, fmt.Errorf("mode %#o: not a file mode (0 to 07777)", m)
	}
	fm := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= fs.ModeSticky
	}
	return fm, nil
}
