package preflight

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/kubeboot/kubeboot/pkg/config"
)

// The facts of kubeadm 1.37's SystemVerification (k8s.io/system-validators
// v1.12 DefaultSysSpec): supported kernels, cgroup controllers, kernel
// configuration options.
var (
	kernelVersions = []*regexp.Regexp{
		regexp.MustCompile(`^5\.4.*$`), regexp.MustCompile(`^5\.10.*$`), regexp.MustCompile(`^5\.15.*$`),
		regexp.MustCompile(`^([6-9]|[1-9][0-9]+)\.([0-9]+)\.([0-9]+).*$`),
	}
	kernelVersionsNote = "Supported LTS versions from the 5.x series are 5.4, 5.10 and 5.15. Any 6.x version is also supported. For cgroups v2 support, the recommended version is 5.10 or newer"

	cgroupsV1Required = []string{"cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"}
	cgroupsV1Optional = []string{"hugetlb", "blkio"}
	cgroupsV2Required = []string{"cpu", "cpuset", "devices", "freezer", "memory", "pids"}
	cgroupsV2Optional = []string{"hugetlb", "io"}

	// Each entry is a name and its aliases, without CONFIG_.
	kconfigRequired = [][]string{
		{"NAMESPACES"}, {"NET_NS"}, {"PID_NS"}, {"IPC_NS"}, {"UTS_NS"}, {"CPUSETS"}, {"MEMCG"},
		{"INET"}, {"EXT4_FS"}, {"PROC_FS"}, {"NETFILTER_XT_TARGET_REDIRECT", "IP_NF_TARGET_REDIRECT"},
		{"NETFILTER_XT_MATCH_COMMENT"}, {"FAIR_GROUP_SCHED"},
	}
	kconfigRequiredV1 = [][]string{{"CGROUPS"}, {"CGROUP_CPUACCT"}, {"CGROUP_DEVICE"}, {"CGROUP_FREEZER"}, {"CGROUP_PIDS"}, {"CGROUP_SCHED"}}
	kconfigRequiredV2 = [][]string{{"CGROUPS"}, {"CGROUP_BPF"}, {"CGROUP_PIDS"}, {"CGROUP_SCHED"}}
	// kubeadm reports missing optional options only in its verbose output;
	// here they are warnings. AUFS_FS and BLK_DEV_DM (Docker's aufs and
	// devicemapper storage drivers) are left out: no runtime kubeboot
	// supports uses them.
	kconfigOptional = [][]string{{"OVERLAY_FS", "OVERLAYFS_FS"}, {"CFS_BANDWIDTH"}, {"SECCOMP"}, {"SECCOMP_FILTER"}, {"CGROUP_HUGETLB"}}
)

// kernelConfigPaths are where kubeadm looks for the kernel's configuration
// (RELEASE is the running kernel's). kubeadm also tries `modprobe configs`
// to get /proc/config.gz; kubeboot loads no module here.
var kernelConfigPaths = []string{
	"/proc/config.gz",
	"/boot/config-RELEASE",
	"/usr/src/linux-RELEASE/.config",
	"/usr/src/linux/.config",
	"/usr/lib/modules/RELEASE/config",
	"/usr/lib/ostree-boot/config-RELEASE",
	"/usr/lib/kernel/config-RELEASE",
	"/usr/src/linux-headers-RELEASE/.config",
	"/lib/modules/RELEASE/build/.config",
}

// cgroupFirstV1Fatal is the first kubelet that refuses cgroup v1 unless
// its configuration says failCgroupV1: false.
var cgroupFirstV1Fatal = version.MustParseSemantic("1.35.0-0")

func systemVerificationCheck(cfg *config.Config) Check {
	failCgroupV1 := cfg.Kubelet.FailCgroupV1
	target := cfg.Cluster.KubernetesVersion
	return Check{Name: "SystemVerification", Run: func(ctx context.Context, env *Env) Finding {
		var f Finding
		var notes []string
		if runtime.GOOS != "linux" {
			f.Errors = append(f.Errors, fmt.Sprintf("unsupported operating system %s: Linux required", runtime.GOOS))
		}

		// Kernel release.
		release, err := env.readString("/proc/sys/kernel/osrelease")
		if err != nil {
			f.Errors = append(f.Errors, fmt.Sprintf("failed to get kernel release: %v", err))
		} else {
			notes = append(notes, "kernel "+release)
			if !matchesAny(kernelVersions, release) {
				f.Warnings = append(f.Warnings, fmt.Sprintf("kernel release %s is unsupported. %s", release, kernelVersionsNote))
			}
		}

		// The kubelet that will run: the one installed, or else the one
		// the configuration deploys (KubeletVersion reports a missing one).
		kv, err := kubeletVersion(ctx, env)
		if err != nil {
			kv, _ = version.ParseSemantic(target)
		}

		// cgroups.
		cg, err := detectCgroups(env)
		if err != nil {
			f.Errors = append(f.Errors, fmt.Sprintf("cannot get a cgroup mount point: %v", err))
		} else {
			var have []string
			var required, optional []string
			if cg.v2 {
				notes = append(notes, "cgroup v2 at "+cg.mount)
				have, err = cgroupV2Controllers(env, cg.mount, release)
				required, optional = cgroupsV2Required, cgroupsV2Optional
			} else {
				mode := "cgroup v1"
				if cg.unified != "" {
					mode += " (hybrid, cgroup2 at " + cg.unified + ")"
				}
				deprecated := "cgroups v1 support is deprecated and will be removed in a future release; migrate to cgroups v2 (boot with systemd.unified_cgroup_hierarchy=1), see https://git.k8s.io/enhancements/keps/sig-node/5573-remove-cgroup-v1"
				switch {
				case kv == nil || kv.LessThan(cgroupFirstV1Fatal):
					f.Warnings = append(f.Warnings, fmt.Sprintf("this host has %s: %s", mode, deprecated))
				case failCgroupV1 != nil && !*failCgroupV1:
					f.Warnings = append(f.Warnings, fmt.Sprintf("this host has %s, which kubelet v%s accepts only because the KubeletConfiguration sets failCgroupV1: false; %s", mode, kv, deprecated))
				default:
					f.Errors = append(f.Errors, fmt.Sprintf("this host has %s and kubelet v%s refuses to start on cgroup v1 unless the KubeletConfiguration sets failCgroupV1: false; %s", mode, kv, deprecated))
				}
				have, err = cgroupV1Controllers(env)
				required, optional = cgroupsV1Required, cgroupsV1Optional
			}
			if err != nil {
				f.Errors = append(f.Errors, fmt.Sprintf("failed to get cgroup controllers: %v", err))
			} else {
				if missing := missingFrom(required, have); len(missing) > 0 {
					f.Errors = append(f.Errors, "missing required cgroups: "+strings.Join(missing, " "))
				}
				if missing := missingFrom(optional, have); len(missing) > 0 {
					f.Warnings = append(f.Warnings, "missing optional cgroups: "+strings.Join(missing, " "))
				}
			}
		}

		// Kernel configuration, when the kernel's config can be found.
		if release != "" {
			src, kconf, err := kernelConfig(env, release)
			switch {
			case err != nil:
				f.Errors = append(f.Errors, fmt.Sprintf("failed to parse kernel config %s: %v", src, err))
			case kconf == nil:
				notes = append(notes, "kernel config not found, options not checked")
			default:
				required := append([][]string(nil), kconfigRequired...)
				if cg != nil && cg.v2 {
					required = append(required, kconfigRequiredV2...)
				} else {
					required = append(required, kconfigRequiredV1...)
				}
				if bad := badOptions(kconf, required); len(bad) > 0 {
					f.Errors = append(f.Errors, "unexpected kernel config: "+strings.Join(bad, " "))
				}
				if bad := badOptions(kconf, kconfigOptional); len(bad) > 0 {
					f.Warnings = append(f.Warnings, "kernel config lacks optional "+strings.Join(bad, " "))
				}
				notes = append(notes, fmt.Sprintf("%d required kernel options checked in %s", len(required), src))
			}
		}
		f.Note = strings.Join(notes, ", ")
		return f
	}}
}

func matchesAny(res []*regexp.Regexp, s string) bool {
	for _, re := range res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

func missingFrom(want, have []string) []string {
	set := map[string]bool{}
	for _, h := range have {
		set[h] = true
	}
	var missing []string
	for _, w := range want {
		if !set[w] {
			missing = append(missing, w)
		}
	}
	return missing
}

type cgroupLayout struct {
	v2 bool
	// mount is the cgroup2 mount point (v2) or the first v1 hierarchy.
	mount string
	// unified is, on a v1 host, where cgroup2 is also mounted (hybrid).
	unified string
}

// detectCgroups decides between cgroup v1 and v2 from /proc/mounts as the
// kubelet's validators do: what is mounted at /sys/fs/cgroup decides; a
// tmpfs there with a memory hierarchy inside is v1 (the hybrid layout when
// cgroup2 is mounted too, usually at /sys/fs/cgroup/unified).
func detectCgroups(env *Env) (*cgroupLayout, error) {
	b, err := env.readFile("/proc/mounts")
	if err != nil {
		return nil, err
	}
	const top = "/sys/fs/cgroup"
	var first2, first1 string
	topKind := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mp, fstype := f[1], f[2]
		if mp == top {
			topKind = fstype
		}
		switch fstype {
		case "cgroup2":
			if first2 == "" {
				first2 = mp
			}
		case "cgroup":
			if first1 == "" {
				first1 = mp
			}
		}
	}
	switch topKind {
	case "cgroup2":
		return &cgroupLayout{v2: true, mount: top}, nil
	case "tmpfs":
		if st, err := os.Stat(env.path(top + "/memory")); err == nil && st.IsDir() {
			return &cgroupLayout{mount: top + "/memory", unified: first2}, nil
		}
	}
	switch {
	case first2 != "":
		return &cgroupLayout{v2: true, mount: first2}, nil
	case first1 != "":
		return &cgroupLayout{mount: first1}, nil
	}
	return nil, errors.New("no cgroup file system in /proc/mounts")
}

// cgroupV1Controllers lists the enabled controllers of /proc/cgroups.
func cgroupV1Controllers(env *Env) ([]string, error) {
	b, err := env.readFile("/proc/cgroups")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Fields(line); len(f) >= 4 && f[3] != "0" {
			out = append(out, f[0])
		}
	}
	return out, nil
}

// cgroupV2Controllers reads cgroup.controllers at the unified mount point,
// plus the controllers the kernel implements without listing them: devices
// (BPF, since 4.15) and freezer (cgroup.freeze, since 5.2). kubeadm probes
// the freezer by creating a cgroup; a preflight check writes nothing, so
// the kernel release decides.
func cgroupV2Controllers(env *Env, mount, release string) ([]string, error) {
	b, err := env.readFile(mount + "/cgroup.controllers")
	if err != nil {
		return nil, err
	}
	out := append([]string{"devices"}, strings.Fields(string(b))...)
	if v, err := version.ParseGeneric(release); err == nil && v.AtLeast(version.MajorMinor(5, 2)) {
		out = append(out, "freezer")
	}
	return out, nil
}

// kernelConfig finds and parses the running kernel's configuration; a nil
// map without error means none was found.
func kernelConfig(env *Env, release string) (string, map[string]byte, error) {
	for _, p := range kernelConfigPaths {
		p = strings.ReplaceAll(p, "RELEASE", release)
		b, err := env.readFile(p)
		if err != nil {
			continue
		}
		var r io.Reader = bytes.NewReader(b)
		if filepath.Ext(p) == ".gz" {
			zr, err := gzip.NewReader(r)
			if err != nil {
				return p, nil, err
			}
			r = zr
		}
		m, err := parseKernelConfig(r)
		return p, m, err
	}
	return "", nil, nil
}

var kconfigLine = regexp.MustCompile(`^CONFIG_[A-Z0-9_]+=[myn]`)

// parseKernelConfig maps CONFIG_X to y, m or n.
func parseKernelConfig(r io.Reader) (map[string]byte, error) {
	m := map[string]byte{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !kconfigLine.MatchString(line) {
			continue
		}
		name, val, _ := strings.Cut(line, "=")
		m[name] = val[0]
	}
	return m, sc.Err()
}

// badOptions returns the options (by their first name) that are neither
// built in nor modules under any of their names.
func badOptions(conf map[string]byte, opts [][]string) []string {
	var bad []string
	for _, names := range opts {
		ok := false
		for _, n := range names {
			if v := conf["CONFIG_"+n]; v == 'y' || v == 'm' {
				ok = true
				break
			}
		}
		if !ok {
			bad = append(bad, "CONFIG_"+names[0])
		}
	}
	return bad
}
