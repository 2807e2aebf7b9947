package cri

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/archive/compression"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Namespace is containerd's namespace for the CRI: images imported
// anywhere else are invisible to the kubelet.
const Namespace = "k8s.io"

// annotationImageName is containerd's name annotation, which docker-save
// archives get on import and `ctr export` writes.
const annotationImageName = "io.containerd.image.name"

// ArchiveImporter loads image archives into the runtime. The CRI has no
// import call, so the real one talks to containerd's own API.
type ArchiveImporter interface {
	// Import loads one archive and returns the names of the images it
	// created, unpacked and ready for the CRI.
	Import(ctx context.Context, file string) ([]string, error)
}

// Containerd imports archives through containerd's API, like
// `ctr -n k8s.io images import`, and unpacks them for the CRI's
// snapshotter.
type Containerd struct {
	// Address is containerd's socket: the CRI socket, for containerd.
	Address string
	// Snapshotter is the CRI's snapshotter (ContainerdConfig.Snapshotter).
	Snapshotter string
	// Platform selects what to import and unpack; the host's by default.
	Platform *ocispec.Platform
}

// NewImporter returns the archive importer for the runtime behind a CRI
// endpoint: containerd's API on the same socket. Other runtimes have no
// import API kubeboot speaks.
func NewImporter(v Version, endpoint string, c *ContainerdConfig) (ArchiveImporter, error) {
	if v.RuntimeName != "containerd" {
		return nil, fmt.Errorf("images: importing archives needs containerd, and the runtime on %s is %s %s", endpoint, v.RuntimeName, v.RuntimeVersion)
	}
	imp := Containerd{Address: endpoint}
	if c != nil {
		imp.Snapshotter = c.Snapshotter
	}
	return imp, nil
}

// Import loads one OCI archive (a tar of an OCI layout) or docker-save
// archive, optionally gzip- or zstd-compressed.
func (c Containerd) Import(ctx context.Context, file string) ([]string, error) {
	addr, err := socketPath(c.Address)
	if err != nil {
		return nil, err
	}
	plat := platforms.DefaultSpec()
	if c.Platform != nil {
		plat = *c.Platform
	}
	match := platforms.OnlyStrict(plat)
	client, err := containerd.New(addr, containerd.WithDefaultNamespace(Namespace), containerd.WithDefaultPlatform(match))
	if err != nil {
		return nil, fmt.Errorf("import %s: containerd %s: %w", file, addr, err)
	}
	defer client.Close()

	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	r, err := compression.DecompressStream(f)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	defer r.Close()

	// The lease keeps the content until the images that name it exist.
	ctx, done, err := client.WithLease(ctx)
	if err != nil {
		return nil, fmt.Errorf("import %s: containerd lease: %w", file, err)
	}
	defer done(context.WithoutCancel(ctx))

	imgs, err := client.Import(ctx, r,
		containerd.WithImageRefTranslator(fullReference),
		containerd.WithImportPlatform(match))
	if errors.Is(err, images.ErrEmptyWalk) {
		return nil, fmt.Errorf("import %s: no %s image in the archive (the index entry or the image config must say os and architecture): %w", file, platforms.Format(plat), err)
	}
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", file, err)
	}
	if len(imgs) == 0 {
		return nil, fmt.Errorf("import %s: the archive names no image (OCI archives need a full reference such as registry.k8s.io/pause:3.10.2 in org.opencontainers.image.ref.name or %s)", file, annotationImageName)
	}
	snapshotter := c.Snapshotter
	if snapshotter == "" {
		snapshotter = "overlayfs"
	}
	var names []string
	for _, img := range imgs {
		image := containerd.NewImageWithPlatform(client, img, match)
		if err := image.Unpack(ctx, snapshotter); err != nil {
			if errdefs.IsNotFound(err) {
				return names, fmt.Errorf("import %s: image %s: no %s image in the archive (the index entry or the image config must say os and architecture): %w", file, img.Name, platforms.Format(plat), err)
			}
			return names, fmt.Errorf("import %s: unpack %s with snapshotter %s: %w", file, img.Name, snapshotter, err)
		}
		names = append(names, img.Name)
	}
	return names, nil
}

// fullReference keeps OCI reference names that name a repository and
// drops tag-only ones ("3.10.2"), which cannot become an image the kubelet
// asks for.
func fullReference(ref string) string {
	if !strings.ContainsAny(ref, "/:@") {
		return ""
	}
	n, err := reference.ParseDockerRef(ref)
	if err != nil {
		return ""
	}
	return n.String()
}

// ArchiveFiles lists the archives in a directory: regular files (or links
// to them) ending in .tar, .tar.gz, .tgz or .tar.zst, sorted. A missing
// directory has none.
func ArchiveFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image archives: %w", err)
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if !strings.HasSuffix(n, ".tar") && !strings.HasSuffix(n, ".tar.gz") && !strings.HasSuffix(n, ".tgz") && !strings.HasSuffix(n, ".tar.zst") {
			continue
		}
		p := filepath.Join(dir, n)
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}

// ArchiveImages reads the image names an archive declares without
// importing it: index.json's annotations for an OCI archive, manifest.json's
// RepoTags for a docker-save archive. Names are normalized as containerd
// stores them (docker.io/library/busybox:latest).
func ArchiveImages(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	defer f.Close()
	r, err := compression.DecompressStream(f)
	if err != nil {
		return nil, fmt.Errorf("read archive %s: %w", file, err)
	}
	defer r.Close()
	tr := tar.NewReader(r)
	var names []string
	found := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read archive %s: %w", file, err)
		}
		switch path.Clean(hdr.Name) {
		case ocispec.ImageIndexFile:
			var idx ocispec.Index
			if err := json.NewDecoder(io.LimitReader(tr, 4<<20)).Decode(&idx); err != nil {
				return nil, fmt.Errorf("read archive %s: index.json: %w", file, err)
			}
			found = true
			for _, m := range idx.Manifests {
				name := m.Annotations[annotationImageName]
				if name == "" {
					name = fullReference(m.Annotations[ocispec.AnnotationRefName])
				}
				if name != "" {
					names = append(names, name)
				}
			}
		case "manifest.json":
			var mf []struct{ RepoTags []string }
			if err := json.NewDecoder(io.LimitReader(tr, 4<<20)).Decode(&mf); err != nil {
				return nil, fmt.Errorf("read archive %s: manifest.json: %w", file, err)
			}
			found = true
			for _, m := range mf {
				for _, t := range m.RepoTags {
					if n, err := reference.ParseDockerRef(t); err == nil {
						names = append(names, n.String())
					}
				}
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("read archive %s: neither an OCI archive (index.json) nor a docker-save archive (manifest.json)", file)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// SameImage tells whether two names denote the same image
// (a short name and its fully qualified form do).
func SameImage(a, b string) bool { return normalize(a) == normalize(b) }

// normalize turns an image name into containerd's full form, so
// a short name and its fully qualified form compare equal.
func normalize(image string) string {
	n, err := reference.ParseDockerRef(image)
	if err != nil {
		return image
	}
	return n.String()
}

// ArchiveResult is what importing one archive did.
type ArchiveResult struct {
	File   string
	Images []string
	Took   time.Duration
	Err    error
}
