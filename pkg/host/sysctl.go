package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// SysctlPath is where systemd-sysctl finds the values on later boots.
const SysctlPath = "/etc/sysctl.d/90-kubeboot.conf"

// KubernetesSysctls are what a node needs whatever the configuration:
// forwarding for pod traffic, and bridged traffic through iptables for
// Services (kubeadm's preflight checks the first two).
func KubernetesSysctls(ipv6 bool) map[string]string {
	v := map[string]string{
		"net.ipv4.ip_forward":                 "1",
		"net.bridge.bridge-nf-call-iptables":  "1",
		"net.bridge.bridge-nf-call-ip6tables": "1",
	}
	if ipv6 {
		v["net.ipv6.conf.all.forwarding"] = "1"
	}
	return v
}

// Sysctls merges KubernetesSysctls(ipv6), the sysctls other parts of
// kubeboot require (may be nil) and the user's from BootConfiguration. The
// user wins; overriding a required value with a different one gives a
// warning, since the node may then not work.
func Sysctls(required, user map[string]string, ipv6 bool) (map[string]string, []string) {
	out := KubernetesSysctls(ipv6)
	for k, v := range required {
		out[k] = v
	}
	var warnings []string
	for _, k := range sortedKeys(user) {
		v := user[k]
		if old, ok := out[k]; ok && normValue(old) != normValue(v) {
			warnings = append(warnings, fmt.Sprintf("sysctl %s: the configured value %q overrides %q, which Kubernetes needs", k, v, old))
		}
		out[k] = v
	}
	return out, warnings
}

// SysctlReport is what ApplySysctls did with one key.
type SysctlReport struct {
	Key string
	// Path is the host path under /proc/sys.
	Path string
	// Value is what was asked, Previous what the kernel had before.
	Value, Previous string
	// Changed is false when the kernel already had the value.
	Changed bool
	// Detail is set when a key with a '*' matched nothing, or a
	// write-only key could not be read back.
	Detail string
}

// ApplySysctls writes each value through root/proc/sys (dots in the key
// become slashes; '*' matches as in sysctl.d) and reads it back. Keys are
// applied in sorted order and every key is tried; the error joins one
// error per key that could not be set, naming the key, the wanted and the
// read value, or, for a key the kernel lacks, the module that would
// provide it. A key that already has its value is not written.
func ApplySysctls(root string, values map[string]string) ([]SysctlReport, error) {
	return applySysctls(root, values, writeProcFile)
}

func applySysctls(root string, values map[string]string, write func(path, value string) error) ([]SysctlReport, error) {
	if root == "" {
		root = "/"
	}
	var reports []SysctlReport
	var errs []error
	for _, key := range sortedKeys(values) {
		value := values[key]
		rel, err := sysctlRelPath(key)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		paths := []string{path.Join("/proc/sys", rel)}
		if strings.Contains(rel, "*") {
			matches, err := filepath.Glob(filepath.Join(root, paths[0]))
			if err != nil {
				errs = append(errs, fmt.Errorf("sysctl %s: %w", key, err))
				continue
			}
			if len(matches) == 0 {
				reports = append(reports, SysctlReport{Key: key, Value: value, Detail: "matches no key"})
				continue
			}
			paths = paths[:0]
			for _, m := range matches {
				r, _ := filepath.Rel(root, m)
				paths = append(paths, "/"+filepath.ToSlash(r))
			}
		}
		for _, p := range paths {
			k := key
			if len(paths) > 1 || strings.Contains(key, "*") {
				k = strings.ReplaceAll(strings.TrimPrefix(p, "/proc/sys/"), "/", ".")
			}
			r, err := applySysctl(filepath.Join(root, p), k, p, value, write)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			reports = append(reports, r)
		}
	}
	return reports, errors.Join(errs...)
}

func applySysctl(file, key, hostPath, value string, write func(path, value string) error) (SysctlReport, error) {
	r := SysctlReport{Key: key, Path: hostPath, Value: value}
	prev, err := readProcFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return r, fmt.Errorf("sysctl %s: %s does not exist: %s", key, hostPath, missingSysctlHint(key))
	}
	if errors.Is(err, fs.ErrPermission) {
		// A write-only key (net.ipv4.route.flush): write, cannot verify.
		if err := write(file, value); err != nil {
			return r, fmt.Errorf("sysctl %s: write %q to %s: %w", key, value, hostPath, err)
		}
		r.Changed, r.Detail = true, "write-only: not read back"
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("sysctl %s: read %s: %w", key, hostPath, err)
	}
	r.Previous = prev
	if normValue(prev) == normValue(value) {
		return r, nil
	}
	if err := write(file, value); err != nil {
		return r, fmt.Errorf("sysctl %s: write %q to %s: %w", key, value, hostPath, err)
	}
	r.Changed = true
	got, err := readProcFile(file)
	if err != nil {
		return r, fmt.Errorf("sysctl %s: read back %s: %w", key, hostPath, err)
	}
	if normValue(got) != normValue(value) {
		return r, fmt.Errorf("sysctl %s: wrote %q, read back %q", key, value, got)
	}
	return r, nil
}

// writeProcFile writes a value the way sysctl(8) does: one write, never
// creating the file (a missing key must stay an error).
func writeProcFile(p, value string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte(value + "\n"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func readProcFile(p string) (string, error) {
	data, err := os.ReadFile(p)
	return strings.TrimSpace(string(data)), err
}

// sysctlRelPath turns net.ipv4.ip_forward into net/ipv4/ip_forward. A key
// in slash form (which allows dots inside a name, as in VLAN interfaces)
// is taken as is. Nothing may climb out of /proc/sys.
func sysctlRelPath(key string) (string, error) {
	rel := key
	if !strings.Contains(key, "/") {
		rel = strings.ReplaceAll(key, ".", "/")
	}
	for _, part := range strings.Split(rel, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("sysctl %q: not a valid key", key)
		}
	}
	return rel, nil
}

// missingSysctlHint says which module would create a missing key.
func missingSysctlHint(key string) string {
	k := strings.ReplaceAll(key, "/", ".")
	for _, h := range []struct{ prefix, module string }{
		{"net.bridge.", "br_netfilter"},
		{"net.netfilter.nf_conntrack", "nf_conntrack"},
		{"net.nf_conntrack", "nf_conntrack"},
		{"net.ipv4.vs.", "ip_vs"},
	} {
		if strings.HasPrefix(k, h.prefix) {
			return fmt.Sprintf("is kernel module %s loaded?", h.module)
		}
	}
	if strings.HasPrefix(k, "net.ipv6.") {
		return "is IPv6 disabled (ipv6.disable=1) or the ipv6 module not loaded?"
	}
	return "the kernel has no such setting"
}

// SysctlFile renders /etc/sysctl.d/90-kubeboot.conf, sorted by key so
// that the same values always give the same bytes.
func SysctlFile(values map[string]string) rootfs.File {
	var b strings.Builder
	b.WriteString("# Written by kubeboot: kernel settings this Kubernetes node needs.\n")
	for _, k := range sortedKeys(values) {
		fmt.Fprintf(&b, "%s = %s\n", k, values[k])
	}
	return rootfs.File{Path: SysctlPath, Mode: 0o644, Data: []byte(b.String())}
}

// normValue compares values as the kernel prints them: multi-number
// values such as ip_local_port_range come back tab-separated.
func normValue(v string) string { return strings.Join(strings.Fields(v), " ") }

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
