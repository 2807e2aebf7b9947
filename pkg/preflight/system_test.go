package preflight

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
)

// hybridMounts is this CI machine's layout: v1 hierarchies on a tmpfs at
// /sys/fs/cgroup, cgroup2 at /sys/fs/cgroup/unified.
const hybridMounts = `sysfs /sys sysfs rw 0 0
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/devices cgroup rw,relatime,devices 0 0
cgroup /sys/fs/cgroup/freezer cgroup rw,relatime,freezer 0 0
cgroup /sys/fs/cgroup/blkio cgroup rw,relatime,blkio 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
`

const procCgroups = `#subsys_name	hierarchy	num_cgroups	enabled
cpuset	3	1	1
cpu	1	1	1
cpuacct	2	1	1
blkio	7	1	1
memory	4	60	1
devices	5	1	1
freezer	6	1	1
net_cls	0	1	1
hugetlb	0	1	1
pids	8	1	1
`

var hybridTree = map[string]string{
	"/proc/mounts":           hybridMounts,
	"/proc/cgroups":          procCgroups,
	"/sys/fs/cgroup/memory/": "",
	"/sys/fs/cgroup/unified/cgroup.controllers": "hugetlb\n",
}

func gz(t *testing.T, s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestSystemVerification(t *testing.T) {
	tests := []struct {
		name   string
		tree   map[string]string
		remove []string
		// the kubelet's version, "" for none installed
		kubelet      string
		failCgroupV1 *bool
		status       Status
		detail       []string
		notDetail    []string
	}{
		{name: "cgroup v2, kernel config in /boot", status: StatusOK,
			detail: []string{"kernel 6.1.0-28-amd64", "cgroup v2 at /sys/fs/cgroup", "17 required kernel options checked in /boot/config-6.1.0-28-amd64"}},
		{name: "cgroup v2 missing a controller",
			tree:   map[string]string{"/sys/fs/cgroup/cgroup.controllers": "cpu io memory pids\n"},
			status: StatusError, detail: []string{"missing required cgroups: cpuset", "missing optional cgroups: hugetlb"}},
		{name: "cgroup v2 on a kernel without the v2 freezer",
			tree:   map[string]string{"/proc/sys/kernel/osrelease": "5.1.0"},
			status: StatusError, detail: []string{"missing required cgroups: freezer", "kernel release 5.1.0 is unsupported"}},
		{name: "cgroup v2 at another mount point",
			tree: map[string]string{
				"/proc/mounts":                    "cgroup2 /run/cgroup2 cgroup2 rw 0 0\n",
				"/run/cgroup2/cgroup.controllers": "cpuset cpu io memory hugetlb pids\n",
			},
			status: StatusOK, detail: []string{"cgroup v2 at /run/cgroup2"}},
		{name: "hybrid cgroup v1, kubelet 1.37 refuses it", tree: hybridTree, kubelet: "Kubernetes v1.37.2",
			status: StatusError, detail: []string{
				"this host has cgroup v1 (hybrid, cgroup2 at /sys/fs/cgroup/unified) and kubelet v1.37.2 refuses to start on cgroup v1 unless the KubeletConfiguration sets failCgroupV1: false; cgroups v1 support is deprecated",
				"19 required kernel options checked",
			}},
		{name: "hybrid cgroup v1 with failCgroupV1: false", tree: hybridTree, kubelet: "Kubernetes v1.37.2", failCgroupV1: ptr.To(false),
			status: StatusWarning, detail: []string{"this host has cgroup v1 (hybrid, cgroup2 at /sys/fs/cgroup/unified), which kubelet v1.37.2 accepts only because the KubeletConfiguration sets failCgroupV1: false"}},
		{name: "cgroup v1 with failCgroupV1: true", tree: hybridTree, kubelet: "Kubernetes v1.37.2", failCgroupV1: ptr.To(true),
			status: StatusError, detail: []string{"refuses to start on cgroup v1"}},
		{name: "cgroup v1 with an old kubelet", tree: hybridTree, kubelet: "Kubernetes v1.34.3",
			status: StatusWarning, detail: []string{"cgroups v1 support is deprecated"}, notDetail: []string{"refuses"}},
		{name: "cgroup v1 and no kubelet: the configuration's version decides", tree: hybridTree,
			status: StatusError, detail: []string{"kubelet v1.37.2 refuses to start on cgroup v1"}},
		{name: "cgroup v1 missing a controller",
			tree: map[string]string{"/proc/mounts": hybridMounts, "/sys/fs/cgroup/memory/": "",
				"/proc/cgroups": strings.Replace(procCgroups, "pids\t8\t1\t1", "pids\t0\t1\t0", 1)},
			failCgroupV1: ptr.To(false),
			status:       StatusError, detail: []string{"missing required cgroups: pids"}},
		{name: "pure cgroup v1",
			tree:         map[string]string{"/proc/mounts": "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n", "/proc/cgroups": procCgroups},
			failCgroupV1: ptr.To(false),
			status:       StatusWarning, detail: []string{"this host has cgroup v1, which kubelet v1.37.2 accepts"}},
		{name: "no cgroups mounted", tree: map[string]string{"/proc/mounts": "proc /proc proc rw 0 0\n"},
			status: StatusError, detail: []string{"cannot get a cgroup mount point: no cgroup file system in /proc/mounts"}},
		{name: "kernel config in /proc/config.gz wins",
			tree:   map[string]string{"/proc/config.gz": gz(t, strings.Replace(goodKernelConfig, "CONFIG_MEMCG=y", "# CONFIG_MEMCG is not set", 1))},
			status: StatusError, detail: []string{"unexpected kernel config: CONFIG_MEMCG", "checked in /proc/config.gz"}},
		{name: "kernel config option disabled",
			tree:   map[string]string{"/boot/config-6.1.0-28-amd64": strings.Replace(goodKernelConfig, "CONFIG_CGROUP_BPF=y", "CONFIG_CGROUP_BPF=n", 1)},
			status: StatusError, detail: []string{"unexpected kernel config: CONFIG_CGROUP_BPF"}},
		{name: "v1 needs other kernel options than v2", tree: mergeTrees(hybridTree, map[string]string{
			"/boot/config-6.1.0-28-amd64": strings.Replace(goodKernelConfig, "CONFIG_CGROUP_DEVICE=y", "", 1),
		}), failCgroupV1: ptr.To(false), status: StatusError, detail: []string{"unexpected kernel config: CONFIG_CGROUP_DEVICE"}},
		{name: "kernel config alias",
			tree:   map[string]string{"/boot/config-6.1.0-28-amd64": strings.Replace(goodKernelConfig, "CONFIG_IP_NF_TARGET_REDIRECT=m", "CONFIG_NETFILTER_XT_TARGET_REDIRECT=m", 1)},
			status: StatusOK},
		{name: "optional kernel option missing",
			tree:   map[string]string{"/boot/config-6.1.0-28-amd64": strings.Replace(goodKernelConfig, "CONFIG_OVERLAY_FS=m", "", 1)},
			status: StatusWarning, detail: []string{"kernel config lacks optional CONFIG_OVERLAY_FS"}},
		{name: "no kernel config", remove: []string{"/boot/config-6.1.0-28-amd64"},
			status: StatusOK, detail: []string{"kernel config not found, options not checked"}},
		{name: "broken /proc/config.gz", tree: map[string]string{"/proc/config.gz": "not gzip"},
			status: StatusError, detail: []string{"failed to parse kernel config /proc/config.gz"}},
		{name: "old kernel", tree: mergeTrees(hybridTree, map[string]string{"/proc/sys/kernel/osrelease": "4.19.0-26-amd64"}),
			failCgroupV1: ptr.To(false), status: StatusWarning, detail: []string{"kernel release 4.19.0-26-amd64 is unsupported. Supported LTS versions from the 5.x series are 5.4, 5.10 and 5.15"}},
		{name: "LTS 5.10 kernel", tree: map[string]string{"/proc/sys/kernel/osrelease": "5.10.0-33-amd64"}, status: StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Kubelet.FailCgroupV1 = tt.failCgroupV1
			env := fakeEnv(t, tt.tree)
			for _, p := range tt.remove {
				if err := os.Remove(filepath.Join(env.Root, p)); err != nil {
					t.Fatal(err)
				}
			}
			if tt.kubelet == "" {
				env.KubeletVersion = func(context.Context) (string, error) {
					return "", errors.New("kubelet: executable file not found in $PATH")
				}
			} else {
				env.KubeletVersion = func(context.Context) (string, error) { return tt.kubelet, nil }
			}
			got := runCheck(t, cfg, env, "SystemVerification")
			if got.Status != tt.status {
				t.Errorf("status %s, want %s; detail %q", got.Status, tt.status, got.Detail)
			}
			for _, d := range tt.detail {
				if !strings.Contains(got.Detail, d) {
					t.Errorf("detail %q\nlacks %q", got.Detail, d)
				}
			}
			for _, d := range tt.notDetail {
				if strings.Contains(got.Detail, d) {
					t.Errorf("detail %q\nhas %q", got.Detail, d)
				}
			}
		})
	}
}

func mergeTrees(trees ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, t := range trees {
		for k, v := range t {
			out[k] = v
		}
	}
	return out
}
