package host

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

const testRelease = "6.1.0-test-amd64"

// testModulesDep is shaped like Debian's: dependencies listed so that the
// last must load first, a mix of plain and compressed files, and
// libcrc32c, which only loads once some crc32c is in the kernel.
const testModulesDep = `kernel/net/netfilter/ipvs/ip_vs.ko.zst: kernel/net/netfilter/nf_conntrack.ko.xz kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko.gz
kernel/net/netfilter/ipvs/ip_vs_rr.ko: kernel/net/netfilter/ipvs/ip_vs.ko.zst kernel/net/netfilter/nf_conntrack.ko.xz kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko.gz
kernel/net/netfilter/nf_conntrack.ko.xz: kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko.gz
kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko:
kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko:
kernel/lib/libcrc32c.ko.gz:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/crypto/crc32c_generic.ko.zst:
kernel/net/bridge/br_netfilter.ko: kernel/net/bridge/bridge.ko kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/net/802/stp.ko: kernel/net/llc/llc.ko
kernel/net/llc/llc.ko:
kernel/fs/overlayfs/overlay.ko:
kernel/net/sched/sch_post.ko:
`

// fakeRoot lays out root/lib/modules/<release> with every module of
// testModulesDep holding "MOD:<name>", compressed as its suffix says,
// plus the index files, modprobe.d and /proc/modules.
func fakeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "lib/modules", testRelease)
	for _, line := range strings.Split(testModulesDep, "\n") {
		file, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		name, _ := moduleFileName(file)
		writeFile(t, filepath.Join(dir, file), compress(t, file, []byte("MOD:"+name)))
	}
	writeFile(t, filepath.Join(dir, "modules.dep"), []byte(testModulesDep))
	writeFile(t, filepath.Join(dir, "modules.builtin"), []byte("kernel/net/netfilter/nf_tables.ko\nkernel/lib/crc32.ko\n"))
	// NUL-separated records, as the kernel build writes them.
	writeFile(t, filepath.Join(dir, "modules.builtin.modinfo"), []byte("crc32.license=GPL\x00xt_nat.alias=ipt_SNAT\x00"))
	writeFile(t, filepath.Join(dir, "modules.alias"), []byte(`# Aliases extracted from modules themselves.
alias crc32c crc32c_intel
alias crc32c crc32c_generic
alias crypto-crc32c crc32c_generic
alias fs-overlay overlay
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
`))
	writeFile(t, filepath.Join(dir, "modules.softdep"), []byte(`# Soft dependencies extracted from modules themselves.
softdep libcrc32c pre: crc32c
softdep cifs gcm
`))
	// /etc hides /lib's file of the same name; a backslash continues a line.
	writeFile(t, filepath.Join(root, "etc/modprobe.d/kube.conf"), []byte("# comment\nsoftdep overlay post: \\\n  sch_post\n"))
	writeFile(t, filepath.Join(root, "lib/modprobe.d/kube.conf"), []byte("options overlay hidden=1\n"))
	writeFile(t, filepath.Join(root, "lib/modprobe.d/ipvs.conf"), []byte("options ip_vs conn_tab_bits=12\noptions ip_vs other=1\n"))
	writeFile(t, filepath.Join(root, "proc/modules"), []byte("nf_defrag_ipv6 24576 1 nf_conntrack, Live 0x0000000000000000\n"))
	return root
}

func compress(t *testing.T, file string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	var err error
	switch filepath.Ext(file) {
	case ".ko":
		return data
	case ".zst":
		w, err = zstd.NewWriter(&buf)
	case ".xz":
		w, err = xz.NewWriter(&buf)
	case ".gz":
		w = gzip.NewWriter(&buf)
	default:
		t.Fatalf("no compressor for %s", file)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeLoader stands for the kernel: it decompresses each file as the real
// loader does, checks the image names the file's module, and fails the way
// the kernel does when told to (errs) or when a symbol provider is missing
// (needs: libcrc32c fails with ENOENT unless some crc32c is loaded).
type fakeLoader struct {
	t     *testing.T
	root  string
	errs  map[string]error
	needs map[string][]string

	mu     sync.Mutex
	loads  []string          // module names, in load order
	params map[string]string // module → params
}

func (f *fakeLoader) Load(p, params string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !strings.HasPrefix(p, f.root+"/") {
		f.t.Errorf("load %s: not under the root %s", p, f.root)
	}
	name, ok := moduleFileName(p)
	if !ok {
		f.t.Errorf("load %s: not a module file", p)
	}
	file, err := os.Open(p)
	if err != nil {
		return err
	}
	defer file.Close()
	image, err := readModule(file)
	if err != nil {
		f.t.Errorf("load %s: %v", p, err)
	}
	if string(image) != "MOD:"+name {
		f.t.Errorf("load %s: image %q, want %q", p, image, "MOD:"+name)
	}
	if err := f.errs[name]; err != nil {
		return err
	}
	if alts := f.needs[name]; len(alts) > 0 {
		found := false
		for _, a := range alts {
			found = found || contains(f.loads, a)
		}
		if !found {
			return unix.ENOENT
		}
	}
	f.loads = append(f.loads, name)
	if f.params == nil {
		f.params = map[string]string{}
	}
	f.params[name] = params
	return nil
}

func TestLoadModules(t *testing.T) {
	defaults := []Module{{Name: "ip_vs"}, {Name: "ip_vs_rr"}, {Name: "nf_conntrack"}, {Name: "br_netfilter"}, {Name: "overlay"}}
	type want struct {
		name, state string
		deps        []string
		detail      string // substring
		warning     string // substring of the first warning
	}
	tests := []struct {
		name    string
		mods    []Module
		mutate  func(t *testing.T, root string)
		errs    map[string]error
		loads   []string
		reports []want
		err     []string // substrings of the error; nil: no error
	}{
		{
			name:  "deps, softdeps and aliases in order, each once",
			mods:  append(defaults, Module{Name: "nf_tables"}, Module{Name: "nf_defrag_ipv6"}, Module{Name: "fs-overlay"}, Module{Name: "ipt_SNAT"}),
			errs:  map[string]error{"crc32c_intel": unix.ENODEV}, // a CPU without SSE4.2
			loads: []string{"crc32c_generic", "libcrc32c", "nf_defrag_ipv4", "nf_conntrack", "ip_vs", "ip_vs_rr", "llc", "stp", "bridge", "br_netfilter", "overlay", "sch_post"},
			reports: []want{
				{name: "ip_vs", state: "loaded", deps: []string{"crc32c_generic", "libcrc32c", "nf_defrag_ipv4", "nf_conntrack"}},
				{name: "ip_vs_rr", state: "loaded"},
				{name: "nf_conntrack", state: "already-loaded", detail: "loaded earlier in this run"},
				{name: "br_netfilter", state: "loaded", deps: []string{"llc", "stp", "bridge"}},
				{name: "overlay", state: "loaded", deps: []string{"sch_post"}},
				{name: "nf_tables", state: "built-in"},
				{name: "nf_defrag_ipv6", state: "already-loaded"},
				{name: "fs-overlay", state: "already-loaded", detail: "alias of overlay"},
				{name: "ipt_SNAT", state: "built-in", detail: "alias of xt_nat"},
			},
		},
		{
			name:  "hyphen and underscore are one name; a present alias satisfies a softdep",
			mods:  []Module{{Name: "crc32c_intel"}, {Name: "ip-vs-rr"}},
			loads: []string{"crc32c_intel", "libcrc32c", "nf_defrag_ipv4", "nf_conntrack", "ip_vs", "ip_vs_rr"},
			reports: []want{
				{name: "crc32c_intel", state: "loaded"},
				{name: "ip-vs-rr", state: "loaded", deps: []string{"libcrc32c", "nf_defrag_ipv4", "nf_conntrack", "ip_vs"}},
			},
		},
		{
			name: "without the softdep libcrc32c fails with ENOENT",
			mods: []Module{{Name: "nf_conntrack"}, {Name: "br_netfilter"}},
			mutate: func(t *testing.T, root string) {
				os.Remove(filepath.Join(root, "lib/modules", testRelease, "modules.softdep"))
			},
			loads: []string{"llc", "stp", "bridge", "br_netfilter"},
			reports: []want{
				{name: "nf_conntrack", state: "failed", detail: "dependency libcrc32c: load /lib/modules/" + testRelease + "/kernel/lib/libcrc32c.ko.gz: no such file or directory (ENOENT)"},
				{name: "br_netfilter", state: "loaded", deps: []string{"llc", "stp", "bridge"}},
			},
			err: []string{"modules: nf_conntrack: dependency libcrc32c: load /lib/modules/" + testRelease + "/kernel/lib/libcrc32c.ko.gz: no such file or directory (ENOENT): the module needs a symbol"},
		},
		{
			name:  "loader error names module, file and errno; dependents fail once",
			mods:  []Module{{Name: "ip_vs"}, {Name: "ip_vs_rr"}, {Name: "overlay"}},
			errs:  map[string]error{"ip_vs": unix.EPERM},
			loads: []string{"crc32c_intel", "libcrc32c", "nf_defrag_ipv4", "nf_conntrack", "overlay", "sch_post"},
			reports: []want{
				{name: "ip_vs", state: "failed", deps: []string{"crc32c_intel", "libcrc32c", "nf_defrag_ipv4", "nf_conntrack"}},
				{name: "ip_vs_rr", state: "failed", detail: "dependency ip_vs: load"},
				{name: "overlay", state: "loaded"},
			},
			err: []string{
				"modules: ip_vs: load /lib/modules/" + testRelease + "/kernel/net/netfilter/ipvs/ip_vs.ko.zst: operation not permitted (EPERM)",
				"modules: ip_vs_rr: dependency ip_vs: load",
			},
		},
		{
			name:  "missing module is an error, other modules still load",
			mods:  []Module{{Name: "no_such_mod"}, {Name: "overlay"}},
			loads: []string{"overlay", "sch_post"},
			reports: []want{
				{name: "no_such_mod", state: "failed", detail: "not found in /lib/modules/" + testRelease + "/modules.dep"},
				{name: "overlay", state: "loaded"},
			},
			err: []string{"modules: no_such_mod: not found"},
		},
		{
			name:  "optional modules fail with a warning",
			mods:  []Module{{Name: "no_such_mod", Optional: true}, {Name: "llc", Optional: true}},
			errs:  map[string]error{"llc": unix.ENOEXEC},
			loads: nil,
			reports: []want{
				{name: "no_such_mod", state: "failed-optional", warning: "optional kernel module no_such_mod not loaded: not found"},
				{name: "llc", state: "failed-optional", warning: "exec format error (ENOEXEC): invalid module format"},
			},
		},
		{
			name:  "EEXIST means loaded behind our back",
			mods:  []Module{{Name: "overlay"}},
			errs:  map[string]error{"overlay": unix.EEXIST},
			loads: []string{"sch_post"},
			reports: []want{
				{name: "overlay", state: "already-loaded", deps: []string{"sch_post"}},
			},
		},
		{
			name: "a softdep that cannot load is a warning",
			mods: []Module{{Name: "libcrc32c"}},
			errs: map[string]error{"crc32c_intel": unix.ENODEV, "crc32c_generic": unix.ENOMEM},
			reports: []want{
				{name: "libcrc32c", state: "failed", warning: "kernel module libcrc32c: softdep pre crc32c: load /lib/modules/" + testRelease + "/kernel/arch/x86/crypto/crc32c-intel.ko: no such device (ENODEV)"},
			},
			err: []string{"modules: libcrc32c: load /lib/modules/" + testRelease + "/kernel/lib/libcrc32c.ko.gz: no such file or directory (ENOENT)"},
		},
		{
			name: "kernel without module support: everything is present",
			mods: defaults,
			mutate: func(t *testing.T, root string) {
				os.RemoveAll(filepath.Join(root, "lib/modules"))
				os.Remove(filepath.Join(root, "proc/modules"))
			},
			reports: []want{
				{name: "ip_vs", state: "no-module-support", detail: "no loadable module support"},
				{name: "ip_vs_rr", state: "no-module-support"},
				{name: "nf_conntrack", state: "no-module-support"},
				{name: "br_netfilter", state: "no-module-support"},
				{name: "overlay", state: "no-module-support"},
			},
		},
		{
			name: "modules but no tree: loaded or /sys/module, else an error",
			mods: []Module{{Name: "nf_defrag_ipv6"}, {Name: "overlay"}, {Name: "ip_vs"}},
			mutate: func(t *testing.T, root string) {
				os.RemoveAll(filepath.Join(root, "lib/modules"))
				os.MkdirAll(filepath.Join(root, "sys/module/overlay"), 0o755)
			},
			reports: []want{
				{name: "nf_defrag_ipv6", state: "already-loaded"},
				{name: "overlay", state: "built-in", detail: "/sys/module/overlay"},
				{name: "ip_vs", state: "failed", detail: "there is no /lib/modules/" + testRelease},
			},
			err: []string{"modules: ip_vs: not loaded"},
		},
		{
			name: "tree under /usr/lib/modules",
			mods: []Module{{Name: "overlay"}},
			mutate: func(t *testing.T, root string) {
				os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755)
				if err := os.Rename(filepath.Join(root, "lib/modules"), filepath.Join(root, "usr/lib/modules")); err != nil {
					t.Fatal(err)
				}
			},
			loads:   []string{"overlay", "sch_post"},
			reports: []want{{name: "overlay", state: "loaded"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := fakeRoot(t)
			if tc.mutate != nil {
				tc.mutate(t, root)
			}
			l := &fakeLoader{t: t, root: root, errs: tc.errs, needs: map[string][]string{"libcrc32c": {"crc32c_intel", "crc32c_generic"}}}
			reports, err := LoadModules(context.Background(), root, testRelease, tc.mods, l)
			if tc.err == nil && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			for _, s := range tc.err {
				if err == nil || !strings.Contains(err.Error(), s) {
					t.Errorf("error %v\nwant it to contain %q", err, s)
				}
			}
			if !reflect.DeepEqual(l.loads, tc.loads) {
				t.Errorf("loads\n got %v\nwant %v", l.loads, tc.loads)
			}
			if len(reports) != len(tc.mods) {
				t.Fatalf("%d reports for %d modules: %+v", len(reports), len(tc.mods), reports)
			}
			for i, w := range tc.reports {
				r := reports[i]
				if r.Name != w.name || string(r.State) != w.state {
					t.Errorf("report %d: %s %s, want %s %s (%+v)", i, r.Name, r.State, w.name, w.state, r)
				}
				if w.deps != nil && !reflect.DeepEqual(r.Deps, w.deps) {
					t.Errorf("%s: deps %v, want %v", r.Name, r.Deps, w.deps)
				}
				if !strings.Contains(r.Detail, w.detail) {
					t.Errorf("%s: detail %q, want it to contain %q", r.Name, r.Detail, w.detail)
				}
				if w.warning != "" && (len(r.Warnings) == 0 || !strings.Contains(r.Warnings[0], w.warning)) {
					t.Errorf("%s: warnings %q, want the first to contain %q", r.Name, r.Warnings, w.warning)
				}
				if w.warning == "" && len(r.Warnings) > 0 {
					t.Errorf("%s: unexpected warnings %q", r.Name, r.Warnings)
				}
			}
		})
	}
}

func TestLoadModulesParams(t *testing.T) {
	root := fakeRoot(t)
	l := &fakeLoader{t: t, root: root}
	if _, err := LoadModules(context.Background(), root, testRelease, []Module{{Name: "ip_vs"}, {Name: "overlay"}}, l); err != nil {
		t.Fatal(err)
	}
	// /etc/modprobe.d/kube.conf hides /lib/modprobe.d/kube.conf's options.
	want := map[string]string{"ip_vs": "conn_tab_bits=12 other=1", "overlay": ""}
	for m, p := range want {
		if got := l.params[m]; got != p {
			t.Errorf("%s: params %q, want %q", m, got, p)
		}
	}
}

func TestLoadModulesErrors(t *testing.T) {
	t.Run("modules.dep missing", func(t *testing.T) {
		root := fakeRoot(t)
		os.Remove(filepath.Join(root, "lib/modules", testRelease, "modules.dep"))
		_, err := LoadModules(context.Background(), root, testRelease, []Module{{Name: "overlay"}}, &fakeLoader{t: t, root: root})
		if err == nil || !strings.Contains(err.Error(), "run depmod "+testRelease) {
			t.Fatalf("error %v, want one that says to run depmod", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		root := fakeRoot(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		l := &fakeLoader{t: t, root: root}
		_, err := LoadModules(ctx, root, testRelease, []Module{{Name: "overlay"}, {Name: "llc"}}, l)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		if len(l.loads) != 0 {
			t.Errorf("loaded %v after cancel", l.loads)
		}
	})
}

// TestLoadModulesThisHost checks the no-module-support path on a machine
// like the development hosts (kernel built without loadable modules).
func TestLoadModulesThisHost(t *testing.T) {
	rel, err := KernelRelease()
	if err != nil || rel == "" {
		t.Fatalf("KernelRelease() = %q, %v", rel, err)
	}
	if fileExists("/proc/modules") || fileExists("/lib/modules/"+rel) || fileExists("/usr/lib/modules/"+rel) {
		t.Skip("this kernel supports loadable modules; the QEMU test covers it")
	}
	reports, err := LoadModules(context.Background(), "/", "", []Module{{Name: "br_netfilter"}, {Name: "overlay"}}, &fakeLoader{t: t, root: "/"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reports {
		if r.State != ModuleNoModuleSupport || !r.Present() {
			t.Errorf("%s: %s (%s), want %s", r.Name, r.State, r.Detail, ModuleNoModuleSupport)
		}
	}
}

func TestModulesLoadFile(t *testing.T) {
	f := ModulesLoadFile([]Module{{Name: "ip_vs"}, {Name: "br_netfilter"}, {Name: "ip_vs"}, {Name: "nf_conntrack", Optional: true}})
	want := "# Written by kubeboot: kernel modules this Kubernetes node needs.\nip_vs\nbr_netfilter\nnf_conntrack\n"
	if f.Path != "/etc/modules-load.d/kubeboot.conf" || f.Mode != 0o644 || string(f.Data) != want {
		t.Fatalf("got %s %v %q\nwant %q", f.Path, f.Mode, f.Data, want)
	}
}
