package cri

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// buildTiny builds testdata/tiny as a static binary, once per test binary.
func buildTiny(t *testing.T) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "tiny")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./testdata/tiny")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build testdata/tiny: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tinyImage is a one-layer OCI image holding /tiny as its entrypoint.
// withPlatform false leaves os and architecture out of the config, which
// makes containerd filter the image out.
func tinyImage(t *testing.T, bin []byte, withPlatform bool) v1.Image {
	t.Helper()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	if err := tw.WriteHeader(&tar.Header{Name: "tiny", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(bin); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := layer.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, l)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Entrypoint = []string{"/tiny"}
	if withPlatform {
		cf.OS, cf.Architecture = "linux", runtime.GOARCH
	} else {
		cf.OS, cf.Architecture = "", ""
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// writeOCIArchive writes a tar of an OCI layout naming the image ref the
// way skopeo and `ctr export` do: a full reference in
// org.opencontainers.image.ref.name.
func writeOCIArchive(t *testing.T, file string, img v1.Image, ref string) {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		t.Fatal(err)
	}
	tarDir(t, dir, file)
}

// writeOCIArchiveForPlatform writes an OCI archive whose index entry says
// the image is for linux/arch.
func writeOCIArchiveForPlatform(t *testing.T, file string, img v1.Image, ref, arch string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Architecture = arch
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}),
		layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		t.Fatal(err)
	}
	tarDir(t, dir, file)
}

// writeDockerArchive writes a docker-save archive (manifest.json, RepoTags).
func writeDockerArchive(t *testing.T, file string, img v1.Image, ref string) {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		t.Fatal(err)
	}
}

func tarDir(t *testing.T, dir, file string) {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	var paths []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != dir {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(paths)
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			t.Fatal(err)
		}
		hdr.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestArchiveImages reads names from both archive formats without containerd.
func TestArchiveImages(t *testing.T) {
	img := tinyImage(t, []byte("#!/bin/true\n"), true)
	dir := t.TempDir()
	oci := filepath.Join(dir, "pause.tar")
	writeOCIArchive(t, oci, img, "registry.k8s.io/pause:3.10.2")
	docker := filepath.Join(dir, "proxy.tar")
	writeDockerArchive(t, docker, img, "registry.k8s.io/kube-proxy:v1.37.2")
	tagOnly := filepath.Join(dir, "tagonly.tar")
	writeOCIArchive(t, tagOnly, img, "3.10.2")
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not an archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.tar")
	tarDir(t, t.TempDir(), bad)

	for _, tc := range []struct {
		file string
		want []string
		err  string
	}{
		{oci, []string{"registry.k8s.io/pause:3.10.2"}, ""},
		{docker, []string{"registry.k8s.io/kube-proxy:v1.37.2"}, ""},
		{tagOnly, nil, ""},
		{bad, nil, "neither an OCI archive"},
	} {
		got, err := ArchiveImages(tc.file)
		if tc.err != "" {
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.err)) {
				t.Errorf("%s: error %v, want %q", filepath.Base(tc.file), err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(tc.file), err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: names %q, want %q", filepath.Base(tc.file), got, tc.want)
		}
	}
	files, err := ArchiveFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{bad, oci, docker, tagOnly}
	if !slices.Equal(files, want) {
		t.Errorf("ArchiveFiles = %q, want %q", files, want)
	}
	if files, err := ArchiveFiles(filepath.Join(dir, "absent")); err != nil || files != nil {
		t.Errorf("ArchiveFiles(absent) = %q, %v; want none, no error", files, err)
	}
}
