package pki

import (
	"testing"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// TestWriterRoundTrip writes a render with the real writer, renders again
// over Writer.FS, and expects the writer to leave every file alone.
func TestWriterRoundTrip(t *testing.T) {
	w := rootfs.Writer{Root: t.TempDir()}
	spec := testSpec(t)
	spec.CertificatesDir = "/var/lib/kubeboot/pki/"
	first, err := Render(spec, w.FS())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := first.Lookup("/var/lib/kubeboot/pki/etcd/ca.crt"); !ok {
		t.Fatal("certificates dir not honoured")
	}
	if _, err := w.Write(first.Files); err != nil {
		t.Fatal(err)
	}
	second, err := Render(spec, w.FS())
	if err != nil {
		t.Fatal(err)
	}
	results, err := w.Write(second.Files)
	if err != nil {
		t.Fatal(err)
	}
	for p, r := range results {
		if r != rootfs.Unchanged {
			t.Errorf("%s: %v on the second run", p, r)
		}
	}
	if len(results) != len(kubeadmFiles) {
		t.Errorf("%d files written, want %d", len(results), len(kubeadmFiles))
	}
}
