// Package probeimage packs the test workload (test/node/probe, a static
// binary) into a one-layer image archive that containerd imports: the
// node and cluster tests cannot pull images.
package probeimage

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Ref is the image's name; pods use it with imagePullPolicy Never.
const Ref = "kubeboot.test/probe:1"

// Archive writes the image with bin as /probe (its entrypoint) to
// dir/probe.tar and returns the path.
func Archive(dir, bin string) (string, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Name: "probe", Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg})
	tw.Write(data)
	tw.Close()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layer.Bytes())), nil })
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return "", err
	}
	// Keep the layer digests mutate recorded; only add platform and
	// entrypoint (containerd filters out images without os/arch).
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", "amd64", v1.Config{Entrypoint: []string{"/probe"}}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return "", err
	}
	ref, err := name.NewTag(Ref)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "probe.tar")
	return out, tarball.WriteToFile(out, ref, img)
}
