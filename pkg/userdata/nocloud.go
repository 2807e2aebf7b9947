package userdata

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kdomanski/iso9660"
	yaml "go.yaml.in/yaml/v3"
)

// Seed is what a NoCloud datasource holds.
type Seed struct {
	// Where names the seed for messages: "/dev/vdb (iso9660, label cidata)".
	Where    string
	UserData []byte
	MetaData []byte
	// Other names seed files kubeboot does not read (vendor-data,
	// network-config), for a warning.
	Other []string
	// Warnings say how the seed was read when that is worth knowing.
	Warnings []string
}

// NoCloudFinder finds a NoCloud seed. It returns ErrNotFound when there
// is none; anything it mounts it unmounts before returning.
type NoCloudFinder interface {
	Seed(ctx context.Context) (*Seed, error)
}

// Names of the files in a NoCloud seed.
const (
	seedUserData = "user-data"
	seedMetaData = "meta-data"
)

var seedOther = []string{"vendor-data", "network-config"}

// DirSeed reads a NoCloud seed from a directory (a mounted cidata
// filesystem, or ds=nocloud;s=file://DIR).
type DirSeed struct {
	Path string
	Name string // for messages; Path when empty
}

func (d DirSeed) Seed(ctx context.Context) (*Seed, error) {
	name := d.Name
	if name == "" {
		name = d.Path
	}
	return readSeed(os.DirFS(d.Path), name)
}

// readSeed reads a seed's files from fsys. A seed with neither user-data
// nor meta-data is ErrNotFound.
func readSeed(fsys fs.FS, where string) (*Seed, error) {
	seed := &Seed{Where: where}
	found := false
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{seedUserData, &seed.UserData}, {seedMetaData, &seed.MetaData}} {
		file, err := fsys.Open(f.name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", where, f.name, err)
		}
		data, err := readLimited(file, MaxUserdata, f.name)
		file.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		*f.dst, found = data, true
	}
	if !found {
		return nil, ErrNotFound
	}
	for _, name := range seedOther {
		if _, err := fs.Stat(fsys, name); err == nil {
			seed.Other = append(seed.Other, name)
		}
	}
	return seed, nil
}

// ISOSeed reads a NoCloud seed from an ISO 9660 image or device without
// mounting it (Rock Ridge and plain ISO 9660 names).
type ISOSeed struct {
	Path string
	Name string // for messages; Path when empty
}

func (s ISOSeed) Seed(ctx context.Context) (*Seed, error) {
	name := s.Name
	if name == "" {
		name = s.Path
	}
	f, err := os.Open(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readISOSeed(f, name)
}

func readISOSeed(ra io.ReaderAt, where string) (seed *Seed, err error) {
	defer func() {
		// The ISO reader trusts the image's structures; a corrupt image
		// must be an error, never a crash of first boot.
		if r := recover(); r != nil {
			seed, err = nil, fmt.Errorf("%s: corrupt ISO 9660 image: %v", where, r)
		}
	}()
	img, err := iso9660.OpenImage(ra)
	if err != nil {
		return nil, fmt.Errorf("%s: ISO 9660: %w", where, err)
	}
	root, err := img.RootDir()
	if err != nil {
		return nil, fmt.Errorf("%s: ISO 9660: %w", where, err)
	}
	children, err := root.GetChildren()
	if err != nil {
		return nil, fmt.Errorf("%s: ISO 9660: %w", where, err)
	}
	files := isoFS{}
	for _, c := range children {
		if c.IsDir() {
			continue
		}
		// Without Rock Ridge, names are ISO 9660 level 1: upper case, 8.3,
		// "_" for "-" (USER_DAT.;1).
		name := strings.ReplaceAll(strings.ToLower(c.Name()), "_", "-")
		switch name {
		case seedUserData, seedMetaData, "vendor-data", "network-config":
		case "user-dat":
			name = seedUserData
		case "meta-dat":
			name = seedMetaData
		case "vendor-d":
			name = "vendor-data"
		case "network-":
			name = "network-config"
		default:
			continue
		}
		if c.Size() > MaxUserdata {
			return nil, fmt.Errorf("%s: %s is larger than %d MiB", where, name, MaxUserdata>>20)
		}
		data, err := readLimited(c.Reader(), MaxUserdata, name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		files[name] = data
	}
	return readSeed(files, where)
}

// isoFS is a flat fs.FS of files read from an image.
type isoFS map[string][]byte

func (m isoFS) Open(name string) (fs.File, error) {
	data, ok := m[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memFile{name: name, r: strings.NewReader(string(data)), size: int64(len(data))}, nil
}

type memFile struct {
	name string
	r    *strings.Reader
	size int64
}

func (f *memFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *memFile) Close() error               { return nil }
func (f *memFile) Stat() (fs.FileInfo, error) { return memInfo{f.name, f.size}, nil }

type memInfo struct {
	name string
	size int64
}

func (i memInfo) Name() string       { return filepath.Base(i.name) }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return 0o444 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }

func findNoCloud(ctx context.Context, s *Sources) (*Result, error) {
	if s.NoCloud == nil {
		return nil, ErrNotFound
	}
	seed, err := s.NoCloud.Seed(ctx)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNotFound
	}
	source := "nocloud"
	if seed != nil {
		source += " " + seed.Where
	}
	if err != nil {
		return nil, bad(source, err)
	}
	var ds NoCloudParams
	if params, err := s.cmdline(); err == nil {
		ds, _ = ParseDatasource(params[ParamDatasource])
	}
	return decodeSeed(ctx, source, seed, ds, s)
}

// decodeSeed decodes a seed's meta-data and user-data; h= and i= from the
// command line override meta-data.
func decodeSeed(ctx context.Context, source string, seed *Seed, ds NoCloudParams, s *Sources) (*Result, error) {
	md, warnings, err := parseMetaData(seed.MetaData)
	if err != nil {
		return nil, badf(source, "meta-data: %v", err)
	}
	if ds.Hostname != "" {
		md.Hostname = ds.Hostname
	}
	if ds.InstanceID != "" {
		md.InstanceID = ds.InstanceID
	}
	if md.Hostname != "" {
		if err := checkHostname(md.Hostname); err != nil {
			return nil, badf(source, "meta-data: local-hostname: %v", err)
		}
	}
	var r *Result
	if len(strings.TrimSpace(string(seed.UserData))) == 0 {
		r = &Result{Source: source}
	} else {
		d := newDecoder(ctx, source, s.Fetch, s.Root)
		if err := d.top(seed.UserData); err != nil {
			return nil, err
		}
		if r, err = d.finish(); err != nil {
			return nil, err
		}
	}
	// cloud-config's hostname wins over meta-data, as in cloud-init.
	if r.Hostname == "" {
		r.Hostname = md.Hostname
	}
	r.InstanceID = md.InstanceID
	for _, w := range warnings {
		r.Warnings = append(r.Warnings, "meta-data: "+w)
	}
	r.Warnings = append(r.Warnings, seed.Warnings...)
	if len(seed.Other) > 0 {
		r.Warnings = append(r.Warnings, "nocloud: "+strings.Join(seed.Other, ", ")+" not applied")
	}
	return r, nil
}

// MetaData is what kubeboot reads of NoCloud meta-data.
type MetaData struct {
	InstanceID string
	Hostname   string
}

func parseMetaData(data []byte) (MetaData, []string, error) {
	var md MetaData
	if len(strings.TrimSpace(string(data))) == 0 {
		return md, nil, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return md, nil, fmt.Errorf("YAML: %v", err)
	}
	if len(doc.Content) == 0 {
		return md, nil, nil
	}
	top := doc.Content[0]
	if countNodes(top, 0) > maxNodes {
		return md, nil, fmt.Errorf("more than %d YAML nodes", maxNodes)
	}
	if top.Kind != yaml.MappingNode {
		return md, nil, fmt.Errorf("not a mapping")
	}
	var ignored []string
	for i := 0; i+1 < len(top.Content); i += 2 {
		key, v := top.Content[i].Value, resolve(top.Content[i+1])
		switch key {
		case "instance-id", "instance_id", "local-hostname", "local_hostname", "hostname":
			if v.Kind != yaml.ScalarNode {
				return md, nil, fmt.Errorf("%s: not a string", key)
			}
			if strings.HasPrefix(key, "instance") {
				md.InstanceID = v.Value
			} else if md.Hostname == "" || key != "hostname" {
				md.Hostname = v.Value
			}
		default:
			ignored = append(ignored, key)
		}
	}
	if len(md.InstanceID) > 256 || strings.ContainsAny(md.InstanceID, "\x00\n\r") {
		return md, nil, fmt.Errorf("instance-id: not a one-line string of at most 256 characters")
	}
	var warnings []string
	if len(ignored) > 0 {
		warnings = append(warnings, "keys not applied by kubeboot: "+strings.Join(ignored, ", "))
	}
	return md, warnings, nil
}
