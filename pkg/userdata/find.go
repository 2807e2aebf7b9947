package userdata

import (
	"context"
	"errors"
	"os"
	"path/filepath"
)

// Default places of the sources, as host paths (read under Sources.Root).
const (
	DefaultCmdline     = "/proc/cmdline"
	DefaultFwCfg       = "/sys/firmware/qemu_fw_cfg/by_name/opt/com.coreos/config/raw"
	FlatcarFwCfg       = "/sys/firmware/qemu_fw_cfg/by_name/opt/org.flatcar-linux/config/raw"
	DefaultBakedConfig = ConfigPath
)

// Sources says where Find looks. Every path but File is a host path read
// under Root ("" or "/" is the host itself).
type Sources struct {
	Root string
	// File is --userdata: a path as the user gave it (not under Root, so
	// that `--userdata X --root DIR --dry-run` reads X). Highest precedence.
	File string
	// Cmdline is the kernel command line file; "" is /proc/cmdline, "-"
	// skips this source.
	Cmdline string
	// FwCfg is the QEMU fw_cfg blob holding an Ignition config; "" tries
	// opt/com.coreos/config and then opt/org.flatcar-linux/config, "-"
	// skips this source.
	FwCfg string
	// LoadFwCfgModule is called when /sys/firmware/qemu_fw_cfg is missing,
	// to load the qemu_fw_cfg module; nil skips loading.
	LoadFwCfgModule func() error
	// NoCloud finds a NoCloud seed (the cidata disk); nil skips this source.
	NoCloud NoCloudFinder
	// BakedConfig is the configuration baked into the image; "" is
	// /etc/kubeboot/config.yaml, "-" skips this source.
	BakedConfig string
	// Fetch says how to fetch http(s) userdata and resources.
	Fetch Fetch
}

// source is one place userdata may be; find returns ErrNotFound when it
// holds none.
type source struct {
	name string
	find func(ctx context.Context, s *Sources) (*Result, error)
}

// sources in order of precedence.
var sources = []source{
	{"file", findFile},
	{"kernel command line", findCmdline},
	{"fw_cfg", findFwCfg},
	{"nocloud", findNoCloud},
	{"baked configuration", findBaked},
}

// Find returns the userdata of the first source that has some, in order:
// File, the kernel command line (ignition.config.url=, ds=nocloud;s=),
// QEMU fw_cfg, a NoCloud disk, the configuration baked into the image. It
// returns nil and no error when there is none. A source that has userdata
// but bad userdata is an error (later sources are not tried): nothing of
// it is to be written.
func Find(ctx context.Context, s Sources) (*Result, error) {
	for _, src := range sources {
		r, err := src.find(ctx, &s)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, nil
}

// hostPath maps a host path under the root.
func (s *Sources) hostPath(p string) string {
	root := s.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, filepath.Clean("/"+p))
}

// readSource reads a whole file of userdata with the size limit; a
// missing file is ErrNotFound.
func readSource(path, source string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, badf(source, "%v", err)
	}
	defer f.Close()
	data, err := readLimited(f, MaxUserdata, "userdata")
	if err != nil {
		return nil, badf(source, "%v", err)
	}
	return data, nil
}

func findFile(ctx context.Context, s *Sources) (*Result, error) {
	if s.File == "" {
		return nil, ErrNotFound
	}
	source := "file " + s.File
	data, err := readSource(s.File, source)
	if errors.Is(err, ErrNotFound) {
		return nil, badf(source, "no such file")
	}
	if err != nil {
		return nil, err
	}
	return Decode(ctx, source, data, s.Fetch, s.Root)
}

func findBaked(ctx context.Context, s *Sources) (*Result, error) {
	p := s.BakedConfig
	switch p {
	case "-":
		return nil, ErrNotFound
	case "":
		p = DefaultBakedConfig
	}
	source := "baked configuration " + p
	data, err := readSource(s.hostPath(p), source)
	if err != nil {
		return nil, err
	}
	if err := checkKubebootYAML(data); err != nil {
		return nil, badf(source, "kubeboot configuration: %v", err)
	}
	return &Result{Source: source, Format: FormatKubebootYAML, Config: data}, nil
}

func findFwCfg(ctx context.Context, s *Sources) (*Result, error) {
	paths := []string{s.FwCfg}
	switch s.FwCfg {
	case "-":
		return nil, ErrNotFound
	case "":
		paths = []string{DefaultFwCfg, FlatcarFwCfg}
	}
	if _, err := os.Stat(s.hostPath("/sys/firmware/qemu_fw_cfg")); err != nil && s.LoadFwCfgModule != nil {
		// Not on QEMU, or the module is not loaded yet. A failure to load
		// it means no fw_cfg: there is nothing more to say.
		_ = s.LoadFwCfgModule()
	}
	for _, p := range paths {
		name := filepathToFwCfgName(p)
		source := "fw_cfg " + name
		data, err := readSource(s.hostPath(p), source)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(data) == 0 {
			continue
		}
		return Decode(ctx, source, data, s.Fetch, s.Root)
	}
	return nil, ErrNotFound
}

// filepathToFwCfgName turns .../by_name/opt/com.coreos/config/raw into
// opt/com.coreos/config for messages.
func filepathToFwCfgName(p string) string {
	const marker = "/by_name/"
	for i := 0; i+len(marker) <= len(p); i++ {
		if p[i:i+len(marker)] == marker {
			name := p[i+len(marker):]
			if filepath.Base(name) == "raw" {
				name = filepath.Dir(name)
			}
			return name
		}
	}
	return p
}
