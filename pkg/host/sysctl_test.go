package host

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSysctls(t *testing.T) {
	tests := []struct {
		name           string
		required, user map[string]string
		ipv6           bool
		want           map[string]string
		warnings       []string
	}{
		{
			name: "IPv4 only",
			want: map[string]string{"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1", "net.bridge.bridge-nf-call-ip6tables": "1"},
		},
		{
			name:     "IPv6 adds forwarding; required and user merged",
			ipv6:     true,
			required: map[string]string{"net.netfilter.nf_conntrack_max": "131072"},
			user:     map[string]string{"vm.max_map_count": "262144", "net.ipv4.ip_forward": " 1"},
			want: map[string]string{
				"net.ipv4.ip_forward": " 1", "net.bridge.bridge-nf-call-iptables": "1", "net.bridge.bridge-nf-call-ip6tables": "1",
				"net.ipv6.conf.all.forwarding": "1", "net.netfilter.nf_conntrack_max": "131072", "vm.max_map_count": "262144",
			},
		},
		{
			name:     "user wins with a warning",
			required: map[string]string{"net.netfilter.nf_conntrack_max": "131072"},
			user:     map[string]string{"net.bridge.bridge-nf-call-iptables": "0", "net.netfilter.nf_conntrack_max": "65536"},
			want: map[string]string{
				"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "0", "net.bridge.bridge-nf-call-ip6tables": "1",
				"net.netfilter.nf_conntrack_max": "65536",
			},
			warnings: []string{
				`sysctl net.bridge.bridge-nf-call-iptables: the configured value "0" overrides "1", which Kubernetes needs`,
				`sysctl net.netfilter.nf_conntrack_max: the configured value "65536" overrides "131072", which Kubernetes needs`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, warnings := Sysctls(tc.required, tc.user, tc.ipv6)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("values\n got %v\nwant %v", got, tc.want)
			}
			if !reflect.DeepEqual(warnings, tc.warnings) {
				t.Errorf("warnings\n got %q\nwant %q", warnings, tc.warnings)
			}
		})
	}
}

// fakeProcSys lays out root/proc/sys with the given files.
func fakeProcSys(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for k, v := range files {
		writeFile(t, filepath.Join(root, "proc/sys", k), []byte(v))
	}
	return root
}

func readSysctl(t *testing.T, root, rel string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "proc/sys", rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestApplySysctls(t *testing.T) {
	procSys := map[string]string{
		"net/ipv4/ip_forward":                 "0\n",
		"net/bridge/bridge-nf-call-iptables":  "0\n",
		"net/bridge/bridge-nf-call-ip6tables": "1\n",
		"net/ipv4/ip_local_port_range":        "32768\t60999\n",
		"net/ipv4/conf/all/rp_filter":         "2\n",
		"net/ipv4/conf/eth0/rp_filter":        "2\n",
		"net/ipv6/conf/all/forwarding":        "0\n",
	}
	t.Run("write and read back", func(t *testing.T) {
		root := fakeProcSys(t, procSys)
		values, _ := Sysctls(nil, map[string]string{
			"net.ipv4.ip_local_port_range": "32768 60999", // same value, other spacing
			"net.ipv4.conf.*.rp_filter":    "1",
			"net.ipv4.conf.*.no_such":      "1",
		}, true)
		reports, err := ApplySysctls(root, values)
		if err != nil {
			t.Fatal(err)
		}
		type short struct {
			Key, Path, Previous string
			Changed             bool
			Detail              string
		}
		var got []short
		for _, r := range reports {
			got = append(got, short{r.Key, r.Path, r.Previous, r.Changed, r.Detail})
		}
		want := []short{
			{"net.bridge.bridge-nf-call-ip6tables", "/proc/sys/net/bridge/bridge-nf-call-ip6tables", "1", false, ""},
			{"net.bridge.bridge-nf-call-iptables", "/proc/sys/net/bridge/bridge-nf-call-iptables", "0", true, ""},
			{"net.ipv4.conf.*.no_such", "", "", false, "matches no key"},
			{"net.ipv4.conf.all.rp_filter", "/proc/sys/net/ipv4/conf/all/rp_filter", "2", true, ""},
			{"net.ipv4.conf.eth0.rp_filter", "/proc/sys/net/ipv4/conf/eth0/rp_filter", "2", true, ""},
			{"net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward", "0", true, ""},
			{"net.ipv4.ip_local_port_range", "/proc/sys/net/ipv4/ip_local_port_range", "32768\t60999", false, ""},
			{"net.ipv6.conf.all.forwarding", "/proc/sys/net/ipv6/conf/all/forwarding", "0", true, ""},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("reports\n got %+v\nwant %+v", got, want)
		}
		for rel, v := range map[string]string{
			"net/ipv4/ip_forward": "1\n", "net/bridge/bridge-nf-call-iptables": "1\n", "net/ipv4/conf/eth0/rp_filter": "1\n",
			"net/ipv4/ip_local_port_range": "32768\t60999\n", // untouched
		} {
			if got := readSysctl(t, root, rel); got != v {
				t.Errorf("%s = %q, want %q", rel, got, v)
			}
		}
		if fileExists(filepath.Join(root, "proc/sys/net/ipv4/conf/all/no_such")) {
			t.Error("a glob created a file")
		}
	})

	errorTests := []struct {
		name   string
		values map[string]string
		mutate func(t *testing.T, root string)
		write  func(path, value string) error
		errs   []string
	}{
		{
			name:   "read-back mismatch",
			values: map[string]string{"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"},
			// A kernel that refuses quietly: the value stays what it was.
			write: func(p, value string) error { return os.WriteFile(p, []byte("0\n"), 0o644) },
			errs: []string{
				`sysctl net.ipv4.ip_forward: wrote "1", read back "0"`,
				`sysctl net.bridge.bridge-nf-call-iptables: wrote "1", read back "0"`,
			},
		},
		{
			name:   "missing bridge key names br_netfilter, others are still set",
			values: map[string]string{"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"},
			mutate: func(t *testing.T, root string) { os.RemoveAll(filepath.Join(root, "proc/sys/net/bridge")) },
			errs:   []string{"sysctl net.bridge.bridge-nf-call-iptables: /proc/sys/net/bridge/bridge-nf-call-iptables does not exist: is kernel module br_netfilter loaded?"},
		},
		{
			name:   "missing conntrack and IPv6 keys",
			values: map[string]string{"net.netfilter.nf_conntrack_max": "1", "net.ipv6.conf.all.forwarding": "1", "kernel.no_such": "1"},
			mutate: func(t *testing.T, root string) { os.RemoveAll(filepath.Join(root, "proc/sys/net/ipv6")) },
			errs: []string{
				"sysctl net.netfilter.nf_conntrack_max: /proc/sys/net/netfilter/nf_conntrack_max does not exist: is kernel module nf_conntrack loaded?",
				"sysctl net.ipv6.conf.all.forwarding: /proc/sys/net/ipv6/conf/all/forwarding does not exist: is IPv6 disabled",
				"sysctl kernel.no_such: /proc/sys/kernel/no_such does not exist: the kernel has no such setting",
			},
		},
		{
			name:   "a directory where the key should be",
			values: map[string]string{"net.ipv4.conf": "1"},
			errs:   []string{"sysctl net.ipv4.conf: read /proc/sys/net/ipv4/conf:"},
		},
		{
			name:   "invalid key",
			values: map[string]string{"net..ipv4": "1", "../../etc/passwd": "x"},
			errs:   []string{`sysctl "net..ipv4": not a valid key`, `sysctl "../../etc/passwd": not a valid key`},
		},
	}
	for _, tc := range errorTests {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeProcSys(t, procSys)
			if tc.mutate != nil {
				tc.mutate(t, root)
			}
			write := tc.write
			if write == nil {
				write = writeProcFile
			}
			_, err := applySysctls(root, tc.values, write)
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tc.errs {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %v\nwant it to contain %q", err, s)
				}
			}
			if tc.name == "missing bridge key names br_netfilter, others are still set" {
				if got := readSysctl(t, root, "net/ipv4/ip_forward"); got != "1\n" {
					t.Errorf("ip_forward = %q, want it set despite the other error", got)
				}
				if fileExists(filepath.Join(root, "proc/sys/net/bridge/bridge-nf-call-iptables")) {
					t.Error("a missing key was created")
				}
			}
		})
	}
}

func TestSysctlFile(t *testing.T) {
	values, _ := Sysctls(nil, map[string]string{"vm.max_map_count": "262144", "net.ipv4.conf.*.rp_filter": "1"}, true)
	f := SysctlFile(values)
	want := `# Written by kubeboot: kernel settings this Kubernetes node needs.
net.bridge.bridge-nf-call-ip6tables = 1
net.bridge.bridge-nf-call-iptables = 1
net.ipv4.conf.*.rp_filter = 1
net.ipv4.ip_forward = 1
net.ipv6.conf.all.forwarding = 1
vm.max_map_count = 262144
`
	if f.Path != "/etc/sysctl.d/90-kubeboot.conf" || f.Mode != 0o644 || string(f.Data) != want {
		t.Fatalf("got %s %v\n%s\nwant\n%s", f.Path, f.Mode, f.Data, want)
	}
	for range 20 {
		if again := SysctlFile(values); string(again.Data) != string(f.Data) {
			t.Fatal("output differs between calls")
		}
	}
}
