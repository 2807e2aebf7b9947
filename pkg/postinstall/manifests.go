package postinstall

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// ReadManifests reads the user's manifests: each entry is a file or a
// directory whose *.yaml, *.yml and *.json files are read in name order.
// Every document must be a Kubernetes object (apiVersion, kind, name); an
// error names the file and the document. Namespaces and
// CustomResourceDefinitions come first, so that what depends on them
// applies in the same run.
func ReadManifests(fsys fs.FS, entries []string) ([]runtime.Object, error) {
	var out []runtime.Object
	for _, entry := range entries {
		files, err := manifestFiles(fsys, entry)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := rootfs.ReadFile(fsys, f)
			if err != nil {
				return nil, fmt.Errorf("manifests: %w", err)
			}
			objs, err := DecodeManifest(f, data)
			if err != nil {
				return nil, err
			}
			for _, o := range objs {
				out = append(out, o)
			}
		}
	}
	// Stable: within each group, the order of the files and documents.
	sort.SliceStable(out, func(i, j int) bool { return ApplyFirst(out[i]) && !ApplyFirst(out[j]) })
	return out, nil
}

// ApplyFirst tells the kinds other objects live in or are instances of:
// they are applied, and served, before the rest.
func ApplyFirst(o runtime.Object) bool {
	switch o.GetObjectKind().GroupVersionKind().GroupKind() {
	case schema.GroupKind{Kind: "Namespace"}, schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:
		return true
	}
	return false
}

func manifestFiles(fsys fs.FS, entry string) ([]string, error) {
	rel := rootfs.Clean(entry)[1:]
	st, err := fs.Stat(fsys, rel)
	if err != nil {
		return nil, fmt.Errorf("manifests: %s: %w", entry, errors.Unwrap(err))
	}
	if !st.IsDir() {
		return []string{entry}, nil
	}
	des, err := fs.ReadDir(fsys, rel)
	if err != nil {
		return nil, fmt.Errorf("manifests: %s: %w", entry, err)
	}
	var out []string
	for _, d := range des {
		ext := path.Ext(d.Name())
		if !d.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
			out = append(out, path.Join(entry, d.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// DecodeManifest splits a YAML or JSON stream into objects; empty
// documents are skipped, and a List's items are unpacked.
func DecodeManifest(name string, data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for i := 1; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("manifests: %s: document %d: %w", name, i, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.IsList() {
			l, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("manifests: %s: document %d: %w", name, i, err)
			}
			for j := range l.Items {
				if err := checkObject(&l.Items[j]); err != nil {
					return nil, fmt.Errorf("manifests: %s: document %d: item %d: %w", name, i, j+1, err)
				}
				out = append(out, &l.Items[j])
			}
			continue
		}
		if err := checkObject(u); err != nil {
			return nil, fmt.Errorf("manifests: %s: document %d: %w", name, i, err)
		}
		out = append(out, u)
	}
}

// checkObject requires what an apply needs to name the object.
func checkObject(u *unstructured.Unstructured) error {
	var missing []string
	if u.GetAPIVersion() == "" {
		missing = append(missing, "apiVersion")
	}
	if u.GetKind() == "" {
		missing = append(missing, "kind")
	}
	if u.GetName() == "" {
		missing = append(missing, "metadata.name")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return nil
}
