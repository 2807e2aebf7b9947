package cri

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/images"
)

// DefaultContainerdConfig is where containerd reads its configuration.
const DefaultContainerdConfig = "/etc/containerd/config.toml"

// ContainerdConfig is what kubeboot needs from containerd's configuration
// file: the settings that must agree with kubeadm's. Values the file does
// not set are left empty (nil for SystemdCgroup); containerd then uses its
// built-in defaults.
type ContainerdConfig struct {
	// Path is the main file; Files lists it and every file it imports, in
	// the order containerd merges them.
	Path  string
	Files []string
	// Version is the file format: 1 (no version key), 2 (containerd 1.x
	// and 2.x) or 3 (containerd 2.x).
	Version int
	// CRIDisabled is set when disabled_plugins switches the CRI off, as
	// some distribution packages ship it (Docker's containerd.io).
	CRIDisabled bool
	// SandboxImage is sandbox_image (versions 1, 2) or
	// pinned_images.sandbox (version 3).
	SandboxImage string
	// Runtime is default_runtime_name ("runc" when unset).
	Runtime string
	// SystemdCgroup is the default runtime's options.SystemdCgroup.
	SystemdCgroup *bool
	// Snapshotter is the CRI's snapshotter ("overlayfs" when unset).
	Snapshotter string
	// RestrictOOMScoreAdj is restrict_oom_score_adj.
	RestrictOOMScoreAdj bool
	// source remembers which file set each value, for messages.
	source map[string]string
}

// ReadContainerdConfig reads containerd's configuration and the files it
// imports. A missing main file is not an error: containerd then runs on
// its defaults, which is what the result describes.
func ReadContainerdConfig(path string) (*ContainerdConfig, error) {
	c := &ContainerdConfig{Path: path, Version: 1, source: map[string]string{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		c.Version = 0
		c.finish()
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("containerd config: %w", err)
	}
	if err := c.merge(path, data, 0); err != nil {
		return nil, err
	}
	c.finish()
	return c, nil
}

// ParseContainerdConfig parses one configuration file's contents; imports
// are not followed.
func ParseContainerdConfig(path string, data []byte) (*ContainerdConfig, error) {
	c := &ContainerdConfig{Path: path, Version: 1, source: map[string]string{}}
	if err := c.parse(path, data); err != nil {
		return nil, err
	}
	c.finish()
	return c, nil
}

func (c *ContainerdConfig) finish() {
	if c.Runtime == "" {
		c.Runtime = "runc"
	}
	if c.Snapshotter == "" {
		c.Snapshotter = "overlayfs"
	}
}

// merge parses a file and then the files it imports, later values winning,
// as containerd does.
func (c *ContainerdConfig) merge(path string, data []byte, depth int) error {
	if depth > 8 {
		return fmt.Errorf("containerd config %s: imports nest too deep", path)
	}
	if err := c.parse(path, data); err != nil {
		return err
	}
	var top struct {
		Imports []string `toml:"imports"`
	}
	_ = toml.Unmarshal(data, &top)
	for _, imp := range top.Imports {
		if !filepath.IsAbs(imp) {
			imp = filepath.Join(filepath.Dir(path), imp)
		}
		matches, err := filepath.Glob(imp)
		if err != nil {
			return fmt.Errorf("containerd config %s: imports %q: %w", path, imp, err)
		}
		slices.Sort(matches)
		for _, m := range matches {
			if slices.Contains(c.Files, m) {
				continue
			}
			d, err := os.ReadFile(m)
			if err != nil {
				return fmt.Errorf("containerd config %s: import: %w", path, err)
			}
			if err := c.merge(m, d, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *ContainerdConfig) parse(path string, data []byte) error {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return fmt.Errorf("containerd config %s:%d:%d: %s", path, row, col, de.Error())
		}
		return fmt.Errorf("containerd config %s: %w", path, err)
	}
	c.Files = append(c.Files, path)
	// Each file is read in its own format version; the main file's is the
	// one the fixes are written for.
	version := 1
	if v, ok := doc["version"]; ok {
		n, err := strconv.Atoi(fmt.Sprint(v))
		if err != nil || n < 1 || n > 3 {
			return fmt.Errorf("containerd config %s: version %v: expected 1, 2 or 3", path, v)
		}
		version = n
	}
	if len(c.Files) == 1 {
		c.Version = version
	}
	if dp, ok := doc["disabled_plugins"].([]any); ok {
		for _, p := range dp {
			switch fmt.Sprint(p) {
			case "cri", "io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images":
				c.CRIDisabled = true
				c.source["disabled_plugins"] = path
			}
		}
	}
	plugins, _ := doc["plugins"].(map[string]any)
	set := func(field string, v any, ok bool, dst func(any)) {
		if ok {
			dst(v)
			c.source[field] = path
		}
	}
	str := func(p *string) func(any) { return func(v any) { *p = fmt.Sprint(v) } }
	boolean := func(p *bool) func(any) { return func(v any) { b, _ := v.(bool); *p = b } }

	var cri, runtime, images map[string]any
	switch version {
	case 3:
		runtime = table(plugins, "io.containerd.cri.v1.runtime")
		images = table(plugins, "io.containerd.cri.v1.images")
		v, ok := lookup(images, "pinned_images", "sandbox")
		set("sandbox", v, ok, str(&c.SandboxImage))
	case 2:
		cri = table(plugins, "io.containerd.grpc.v1.cri")
	default:
		cri = table(plugins, "cri")
	}
	if cri != nil {
		runtime, images = cri, cri
		v, ok := lookup(cri, "sandbox_image")
		set("sandbox", v, ok, str(&c.SandboxImage))
	}
	v, ok := lookup(images, "snapshotter")
	if !ok && cri != nil {
		v, ok = lookup(cri, "containerd", "snapshotter")
	}
	set("snapshotter", v, ok, str(&c.Snapshotter))
	v, ok = lookup(runtime, "restrict_oom_score_adj")
	set("restrict_oom_score_adj", v, ok, boolean(&c.RestrictOOMScoreAdj))
	v, ok = lookup(runtime, "containerd", "default_runtime_name")
	set("runtime", v, ok, str(&c.Runtime))
	name := c.Runtime
	if name == "" {
		name = "runc"
	}
	v, ok = lookup(runtime, "containerd", "runtimes", name, "options", "SystemdCgroup")
	set("SystemdCgroup", v, ok, func(v any) { b, _ := v.(bool); c.SystemdCgroup = &b })
	return nil
}

func table(m map[string]any, key string) map[string]any {
	t, _ := m[key].(map[string]any)
	return t
}

func lookup(m map[string]any, keys ...string) (any, bool) {
	for i, k := range keys {
		v, ok := m[k]
		if !ok {
			return nil, false
		}
		if i == len(keys)-1 {
			return v, true
		}
		if m, ok = v.(map[string]any); !ok {
			return nil, false
		}
	}
	return nil, false
}

// fileOf names the file that set a value, or the main file.
func (c *ContainerdConfig) fileOf(field string) string {
	if f := c.source[field]; f != "" {
		return f
	}
	return c.Path
}

// sandboxLine is the setting that makes the sandbox image this one.
func (c *ContainerdConfig) sandboxLine(image string) string {
	switch c.Version {
	case 3:
		return fmt.Sprintf("sandbox = '%s' under [plugins.'io.containerd.cri.v1.images'.pinned_images]", image)
	case 1:
		return fmt.Sprintf("sandbox_image = \"%s\" under [plugins.cri]", image)
	default:
		return fmt.Sprintf("sandbox_image = \"%s\" under [plugins.\"io.containerd.grpc.v1.cri\"]", image)
	}
}

func (c *ContainerdConfig) systemdCgroupLine(v bool) string {
	switch c.Version {
	case 3:
		return fmt.Sprintf("SystemdCgroup = %t under [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.%s.options]", v, c.Runtime)
	case 1:
		return fmt.Sprintf("SystemdCgroup = %t under [plugins.cri.containerd.runtimes.%s.options]", v, c.Runtime)
	default:
		return fmt.Sprintf("SystemdCgroup = %t under [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.%s.options]", v, c.Runtime)
	}
}

// DefaultSandboxImage is containerd's built-in sandbox image for a runtime
// version as the CRI reports it ("1.6.20~ds1", "v2.4.2"), or "" when
// kubeboot does not know it.
func DefaultSandboxImage(runtimeVersion string) string {
	v := strings.TrimPrefix(runtimeVersion, "v")
	switch {
	case strings.HasPrefix(v, "1.6."):
		return "registry.k8s.io/pause:3.6"
	case strings.HasPrefix(v, "1.7."):
		return "registry.k8s.io/pause:3.8"
	case strings.HasPrefix(v, "2.0."), strings.HasPrefix(v, "2.1."):
		return "registry.k8s.io/pause:3.10"
	case strings.HasPrefix(v, "2.4."):
		return "registry.k8s.io/pause:3.10.2"
	}
	return ""
}

// CheckSandboxImage compares the sandbox image containerd will use with
// kubeadm's pause image. They must be equal: the kubelet no longer chooses
// the sandbox image, so on an air-gapped machine every pod waits for a
// pause image nobody imported. It returns a warning with the fix, or "".
// runtimeVersion (from the CRI) decides containerd's default when the
// file sets none; it may be empty.
func (c *ContainerdConfig) CheckSandboxImage(pause, runtimeVersion string) string {
	if c.SandboxImage == pause {
		return ""
	}
	fix := fmt.Sprintf("set %s in %s and restart containerd", c.sandboxLine(pause), c.fileOf("sandbox"))
	if c.SandboxImage != "" {
		return fmt.Sprintf("containerd's sandbox image is %s (%s), but kubeadm's pause image is %s: pods will need an image that is not imported; %s",
			c.SandboxImage, c.fileOf("sandbox"), pause, fix)
	}
	def := DefaultSandboxImage(runtimeVersion)
	switch {
	case def == pause:
		return ""
	case def != "":
		return fmt.Sprintf("containerd %s sets no sandbox image in %s and uses its default %s, but kubeadm's pause image is %s: pods will need an image that is not imported; %s",
			runtimeVersion, c.Path, def, pause, fix)
	default:
		return fmt.Sprintf("containerd sets no sandbox image in %s, so it uses its built-in default, which may not be kubeadm's pause image %s; %s",
			c.Path, pause, fix)
	}
}

// CheckCgroupDriver compares containerd's cgroup driver for its default
// runtime with the kubelet's cgroupDriver ("systemd" or "cgroupfs"). A
// mismatch makes pods restart in a loop, so it is an error with the fix.
func (c *ContainerdConfig) CheckCgroupDriver(kubeletDriver string) error {
	systemd := c.SystemdCgroup != nil && *c.SystemdCgroup
	containerd := "cgroupfs"
	if systemd {
		containerd = "systemd"
	}
	switch kubeletDriver {
	case "systemd", "cgroupfs":
	default:
		return fmt.Errorf("kubelet cgroupDriver %q: expected systemd or cgroupfs", kubeletDriver)
	}
	if containerd == kubeletDriver {
		return nil
	}
	now := "SystemdCgroup is not set"
	if c.SystemdCgroup != nil {
		now = fmt.Sprintf("SystemdCgroup = %t", systemd)
	}
	return fmt.Errorf("cgroup driver mismatch: the KubeletConfiguration has cgroupDriver: %s, but containerd's runtime %q uses %s (%s in %s): set %s in %s and restart containerd, or set cgroupDriver: %s in the KubeletConfiguration",
		kubeletDriver, c.Runtime, containerd, now, c.fileOf("SystemdCgroup"), c.systemdCgroupLine(!systemd), c.fileOf("SystemdCgroup"), containerd)
}

// CheckCRI fails when the configuration switches containerd's CRI plugin
// off: the kubelet cannot run anything then.
func (c *ContainerdConfig) CheckCRI() error {
	if c.CRIDisabled {
		return fmt.Errorf("containerd's CRI plugin is disabled in %s: remove \"cri\" from disabled_plugins and restart containerd", c.fileOf("disabled_plugins"))
	}
	return nil
}

// CheckContainerd runs the checks kubeadm users trip over against a node's
// configuration: the CRI plugin must be on, the cgroup drivers must agree
// (an error), and the sandbox image should be kubeadm's pause image (a
// warning, empty when fine).
func CheckContainerd(c *ContainerdConfig, cfg *config.Config, runtimeVersion string) (warning string, err error) {
	if err := c.CheckCRI(); err != nil {
		return "", err
	}
	warning = c.CheckSandboxImage(images.Pause(cfg), runtimeVersion)
	return warning, c.CheckCgroupDriver(cfg.Kubelet.CgroupDriver)
}
