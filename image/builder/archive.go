package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations that name an image in an OCI layout's index.json:
// containerd's (the full reference, which `ctr import` and containerd's
// import API use as the image name) and the OCI one (the tag, as
// `docker save` and `ctr export` write it).
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

// newImage is an OCI image of one layer with cfg as its runtime config,
// for linux/arch, created at the epoch.
func newImage(layer v1.Layer, arch string, cfg v1.Config, history string) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: history},
	})
}

// parseRef parses an image's ref as the kubelet's runtime will: a name
// with a tag, written as it is to be written in manifests (with no
// default registry spelled out).
func parseRef(ref string) (reference.NamedTagged, error) {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, fmt.Errorf("image name %q: %w", ref, err)
	}
	t, ok := n.(reference.NamedTagged)
	if !ok {
		return nil, fmt.Errorf("image name %q: no tag", ref)
	}
	if _, digested := n.(reference.Digested); digested || reference.FamiliarString(n) != ref {
		return nil, fmt.Errorf("image name %q: want name:tag in its short form, %s", ref, reference.FamiliarString(n))
	}
	return t, nil
}

// writeArchive writes img, named ref, to file as one tar that is both an
// OCI image layout (oci-layout, index.json, blobs/sha256/...) and a
// docker-save archive (manifest.json naming the same blobs), as `docker
// save` writes since Docker 25: containerd (ctr import and its import API)
// reads the layout, go-containerregistry's tarball package and older tools
// read manifest.json. The small JSON files come first so that readers
// looking for the names find them at once. The file appears complete or
// not at all.
//
// index.json names the image as containerd stores it and as the CRI
// looks it up, the ref in full (the form reference.ParseDockerRef
// gives); manifest.json names it as `docker save` does, in short form. For
// a ref with a registry host, both are the ref as written.
func writeArchive(file string, ref reference.NamedTagged, img v1.Image) (err error) {
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	mdigest, err := img.Digest()
	if err != nil {
		return err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}

	index := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: mt,
			Size:      int64(len(manifest)),
			Digest:    mdigest,
			Platform:  &v1.Platform{OS: cf.OS, Architecture: cf.Architecture},
			Annotations: map[string]string{
				annotationImageName: ref.String(),
				annotationRefName:   ref.Tag(),
			},
		}},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return err
	}
	blob := func(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
	docker := []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{{Config: blob(cfgName), RepoTags: []string{reference.FamiliarString(ref)}}}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		docker[0].Layers = append(docker[0].Layers, blob(d))
	}
	dockerJSON, err := json.Marshal(docker)
	if err != nil {
		return err
	}

	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp*")
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	tw := tar.NewWriter(tmp)
	put := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		n, err := io.Copy(tw, r)
		if err == nil && n != size {
			err = fmt.Errorf("%s: %d bytes, expected %d", name, n, size)
		}
		return err
	}
	putBytes := func(name string, b []byte) error { return put(name, int64(len(b)), bytes.NewReader(b)) }
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	if err := putBytes("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := putBytes("index.json", indexJSON); err != nil {
		return err
	}
	if err := putBytes("manifest.json", dockerJSON); err != nil {
		return err
	}
	if err := putBytes(blob(mdigest), manifest); err != nil {
		return err
	}
	if err := putBytes(blob(cfgName), cfg); err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		err = put(blob(d), size, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("archive: layer %s: %w", d, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
