package manifests

import (
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

const (
	certsVolume      = "k8s-certs"
	caCertsVolume    = "ca-certs"
	caCertsPath      = "/etc/ssl/certs"
	kubeconfigVolume = "kubeconfig"
)

// kubeadmCACertDirs are the directories kubeadm 1.37 mounts next to
// /etc/ssl/certs when they exist, because the files there may be symbolic
// links into them.
var kubeadmCACertDirs = []string{"/etc/pki/ca-trust", "/etc/pki/tls/certs", "/etc/ca-certificates", "/usr/share/ca-certificates", "/usr/local/share/ca-certificates"}

// DefaultCACertDirs are the trust directories mounted when
// Options.CACertDirs is nil: those kubeadm finds on Debian and Ubuntu.
func DefaultCACertDirs() []string {
	return []string{"/etc/ca-certificates", "/usr/share/ca-certificates", "/usr/local/share/ca-certificates"}
}

// DetectCACertDirs returns the trust directories kubeadm would mount on
// the host whose root fsys is: those of its five candidates that exist.
// Symbolic links are followed inside fsys only as far as fsys follows them.
func DetectCACertDirs(fsys fs.FS) ([]string, error) {
	var out []string
	for _, d := range kubeadmCACertDirs {
		_, err := fs.Stat(fsys, d[1:])
		switch {
		case err == nil:
			out = append(out, d)
		case errors.Is(err, fs.ErrNotExist):
		default:
			return nil, err
		}
	}
	return out, nil
}

// mounts is the set of hostPath volumes of one component, each mounted
// once, keyed by volume name: adding a name again replaces it, which is
// how extraVolumes override kubeadm's defaults.
type mounts map[string]config.HostPathMount

func (m mounts) add(name, hostPath, mountPath string, readOnly bool, t corev1.HostPathType) {
	m[name] = config.HostPathMount{Name: name, HostPath: hostPath, MountPath: mountPath, ReadOnly: readOnly, PathType: t}
}

func (m mounts) addAll(vs []config.HostPathMount) {
	for _, v := range vs {
		m[v.Name] = v
	}
}

func (m mounts) sorted() []config.HostPathMount {
	out := make([]config.HostPathMount, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b config.HostPathMount) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (m mounts) volumes() []corev1.Volume {
	var out []corev1.Volume
	for _, v := range m.sorted() {
		out = append(out, hostPathVolume(v.Name, v.HostPath, v.PathType))
	}
	return out
}

func (m mounts) volumeMounts() []corev1.VolumeMount {
	var out []corev1.VolumeMount
	for _, v := range m.sorted() {
		out = append(out, corev1.VolumeMount{Name: v.Name, MountPath: v.MountPath, ReadOnly: v.ReadOnly})
	}
	return out
}

// hostPathVolume always sets the type, as kubeadm does, so an extra volume
// without a pathType is written with type "".
func hostPathVolume(name, hostPath string, t corev1.HostPathType) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
		HostPath: &corev1.HostPathVolumeSource{Path: hostPath, Type: ptr.To(t)},
	}}
}

// caCertDirVolumeName is kubeadm's name for a trust directory's volume:
// /usr/share/ca-certificates becomes usr-share-ca-certificates.
func caCertDirVolumeName(dir string) string {
	return strings.ReplaceAll(strings.TrimPrefix(rootfs.Clean(dir), "/"), "/", "-")
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	p, dir = path.Clean(p), path.Clean(dir)
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// externalEtcdCertDirs are the directories holding the external etcd
// client files that no other volume of the apiserver covers, without
// nested ones, sorted.
func externalEtcdCertDirs(x *config.ExternalEtcd, covered []string) []string {
	var dirs []string
	for _, f := range []string{x.CAFile, x.CertFile, x.KeyFile} {
		if f == "" {
			continue
		}
		d := path.Dir(rootfs.Clean(f))
		if slices.ContainsFunc(covered, func(c string) bool { return within(d, c) }) {
			continue
		}
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	var out []string
	for _, d := range dirs {
		// Sorted, so a parent comes before its children.
		if slices.ContainsFunc(out, func(o string) bool { return within(d, o) }) {
			continue
		}
		out = append(out, d)
	}
	return out
}
