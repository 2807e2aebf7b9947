package qemu

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/pkg/joinsecret"
	"github.com/kubeboot/kubeboot/test/qemu/guestreport"
)

// Environment:
//
//	KUBEBOOT_CACHE          cache root (default ~/.cache/kubeboot); the kernel is under qemu/
//	KUBEBOOT_QEMU_KERNEL    an unpacked kernel tree instead of the cached one
//	KUBEBOOT_QEMU_KUBEBOOT  a kubeboot binary to test instead of building ./cmd/kubeboot
//	KUBEBOOT_QEMU_OUT       keep the initramfs, console logs and reports there
//	KUBEBOOT_QEMU_ACCEL     tcg or kvm (default: kvm only where it works)
//	KUBEBOOT_BENCH_OUT      append the BENCH lines to this file

const (
	joinPort   = "kubeboot.join"
	bootBudget = 120 * time.Second
)

// preflightIgnores are the checks that cannot pass in this guest, each
// with the reason. Everything else must pass.
var preflightIgnores = map[string]string{
	"CRI":                     "the fast tier has no container runtime (the full tier does)",
	"ContainerRuntimeVersion": "the fast tier has no container runtime",
	"KubeletVersion":          "the fast tier has no kubelet binary",
	"FileExisting-losetup":    "the initramfs has no util-linux; images do",
	"FileExisting-mount":      "the initramfs has no util-linux; images do",
	"FileExisting-cp":         "the initramfs has no coreutils; images do",
	"NumCPU":                  "one vCPU: under TCG a second one slows the boot on a 2-core host",
}

// fastCase is one way userdata reaches the guest.
type fastCase struct {
	name string
	// address is pinned in the configuration and put on the guest's lo.
	address string
	// nodeName is what the node must be called.
	nodeName string
	// userdata prepares the userdata in dir and returns what QEMU needs.
	userdata func(t *testing.T, dir string) (fwCfg map[string]string, disks []string)
	// hostRender renders the same userdata on the host into root, with
	// kubeboot, for the digest comparison.
	hostRender func(t *testing.T, kubeboot, dir, root string)
	// source is what the dry run's userdata phase must name as the source.
	source string
}

func configYAML(nodeName, address string) string {
	var init strings.Builder
	init.WriteString("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n")
	if nodeName != "" {
		fmt.Fprintf(&init, "nodeRegistration:\n  name: %s\n", nodeName)
	}
	fmt.Fprintf(&init, "localAPIEndpoint:\n  advertiseAddress: %s\n", address)
	return init.String() + `---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: qemu-fast
---
apiVersion: kubeboot.dev/v1alpha1
kind: BootConfiguration
joinSecret:
  sinks:
  - virtioSerial:
      name: ` + joinPort + "\n"
}

var fwCfgCase = fastCase{
	name:     "fw_cfg",
	address:  "192.0.2.10",
	nodeName: "qemu-fwcfg",
	userdata: func(t *testing.T, dir string) (map[string]string, []string) {
		ign := filepath.Join(dir, "config.ign")
		write(t, ign, IgnitionConfig(configYAML("qemu-fwcfg", "192.0.2.10")))
		return map[string]string{"opt/com.coreos/config": ign}, nil
	},
	hostRender: func(t *testing.T, kubeboot, dir, root string) {
		runKubeboot(t, kubeboot, "init", "--dry-run", "--root", root, "--userdata", filepath.Join(dir, "config.ign"))
	},
	source: "fw_cfg opt/com.coreos/config",
}

const (
	nocloudHostname = "qemu-nocloud"
	nocloudMetaData = "instance-id: iid-kubeboot-qemu-fast\nlocal-hostname: " + nocloudHostname + "\n"
)

// nocloudUserData is cloud-config with the configuration under the
// kubeboot key; the node name is left to meta-data's local-hostname.
func nocloudUserData() []byte {
	var b strings.Builder
	b.WriteString("#cloud-config\nkubeboot: |\n")
	for _, line := range strings.Split(strings.TrimRight(configYAML("", "192.0.2.20"), "\n"), "\n") {
		b.WriteString("  " + line + "\n")
	}
	return []byte(b.String())
}

var nocloudCase = fastCase{
	name:     "nocloud",
	address:  "192.0.2.20",
	nodeName: nocloudHostname,
	userdata: func(t *testing.T, dir string) (map[string]string, []string) {
		seed := filepath.Join(dir, "seed")
		write(t, filepath.Join(seed, "user-data"), nocloudUserData())
		write(t, filepath.Join(seed, "meta-data"), []byte(nocloudMetaData))
		iso := filepath.Join(dir, "seed.iso")
		cmd := exec.Command("genisoimage", "-quiet", "-output", iso, "-volid", "cidata", "-joliet", "-rock",
			filepath.Join(seed, "user-data"), filepath.Join(seed, "meta-data"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("genisoimage (make qemu-test installs it): %v\n%s", err, out)
		}
		return nil, []string{iso}
	},
	// The host has no cidata disk: the same seed reaches kubeboot through
	// ds=nocloud;s=file:// on a command line under the root prefix, so
	// the node is still named by meta-data.
	hostRender: func(t *testing.T, kubeboot, dir, root string) {
		write(t, filepath.Join(root, "proc/cmdline"), []byte("ds=nocloud;s=file:///seed/\n"))
		for _, f := range []string{"user-data", "meta-data"} {
			data, err := os.ReadFile(filepath.Join(dir, "seed", f))
			if err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(root, "seed", f), data)
		}
		runKubeboot(t, kubeboot, "init", "--dry-run", "--root", root)
	},
	source: "nocloud /dev/vda",
}

// deterministicFiles render the same from the same configuration, so the
// guest's and the host's digests must agree.
var deterministicFiles = []string{
	"/etc/kubernetes/manifests/etcd.yaml",
	"/etc/kubernetes/manifests/kube-apiserver.yaml",
	"/etc/kubernetes/manifests/kube-controller-manager.yaml",
	"/etc/kubernetes/manifests/kube-scheduler.yaml",
	"/etc/kubernetes/audit/audit.yaml",
	"/var/lib/kubelet/config.yaml",
	"/var/lib/kubelet/kubeadm-flags.env",
	"/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
	"/etc/modules-load.d/kubeboot.conf",
	"/etc/sysctl.d/90-kubeboot.conf",
}

var requiredModules = []string{"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack", "br_netfilter", "overlay"}

// fastTier is what both cases share: the kernel and the initramfs.
type fastTier struct {
	kernel Kernel
	// image is what QEMU boots: the PVH vmlinux, or the bzImage.
	image     string
	initramfs Initramfs
	kubeboot  string
	out       string
	accel     string
}

func setupFastTier(t *testing.T) *fastTier {
	t.Helper()
	// Booting guests takes half a minute: it runs from `make qemu-test`
	// (part of `make test`), not from every `go test ./...`.
	if os.Getenv("KUBEBOOT_QEMU_OUT") == "" {
		t.Skip("boots QEMU guests: run `make qemu-test` (it sets KUBEBOOT_QEMU_OUT)")
	}
	if _, err := exec.LookPath(Binary); err != nil {
		t.Skipf("QEMU is not installed (%s not in PATH): `make qemu-test` installs it, as root", Binary)
	}
	tree, explicit := KernelTree()
	if !explicit {
		if _, err := os.Stat(filepath.Join(tree, ".ready")); err != nil {
			if os.Geteuid() != 0 {
				t.Skipf("no kernel unpacked under %s and not root to fetch it: run `make qemu-test` as root", tree)
			}
			out, err := exec.Command("./setup.sh", "kernel").CombinedOutput()
			if err != nil {
				t.Fatalf("setup.sh kernel: %v\n%s", err, out)
			}
		}
	}
	k, err := FindKernel(tree)
	if err != nil {
		t.Fatal(err)
	}
	ft := &fastTier{kernel: k, accel: Accel(), out: os.Getenv("KUBEBOOT_QEMU_OUT")}
	if ft.out == "" {
		ft.out = t.TempDir()
	} else if err := os.MkdirAll(ft.out, 0o755); err != nil {
		t.Fatal(err)
	}
	if ft.image, err = k.PVHImage(ft.out); err != nil {
		t.Logf("booting the bzImage, about 4 s slower under TCG: %v", err)
		ft.image = k.Image()
	}
	bin := filepath.Join(ft.out, "bin")
	ft.kubeboot = os.Getenv("KUBEBOOT_QEMU_KUBEBOOT")
	start := time.Now()
	if ft.kubeboot == "" {
		ft.kubeboot = filepath.Join(bin, "kubeboot")
		if err := BuildStatic("github.com/kubeboot/kubeboot/cmd/kubeboot", ft.kubeboot); err != nil {
			t.Fatal(err)
		}
	}
	guestInit := filepath.Join(bin, "guestinit")
	if err := BuildStatic("github.com/kubeboot/kubeboot/test/qemu/guestinit", guestInit); err != nil {
		t.Fatal(err)
	}
	built := time.Since(start)
	start = time.Now()
	ft.initramfs, err = BuildInitramfs(k, guestInit, ft.kubeboot, ft.out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel %s (%s, booting %s); initramfs %s: %.1f MB gzip, %d modules (binaries built in %s, initramfs in %s); accel %s",
		k.Release, k.Tree, filepath.Base(ft.image), ft.initramfs.Path, float64(ft.initramfs.Size)/1e6, len(ft.initramfs.Modules),
		built.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), ft.accel)
	return ft
}

func TestFastTier(t *testing.T) {
	ft := setupFastTier(t)
	for _, c := range []fastCase{fwCfgCase, nocloudCase} {
		t.Run(c.name, func(t *testing.T) { ft.run(t, c) })
	}
}

func (ft *fastTier) run(t *testing.T, c fastCase) {
	dir := filepath.Join(ft.out, c.name)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fwCfg, disks := c.userdata(t, dir)
	join, report, console := filepath.Join(dir, "join-secret.json"), filepath.Join(dir, "report.json"), filepath.Join(dir, "console.log")
	ignores := make([]string, 0, len(preflightIgnores))
	for name := range preflightIgnores {
		ignores = append(ignores, name)
	}
	sort.Strings(ignores)
	appendArgs := []string{
		guestreport.ParamAddress + "=" + c.address + "/32",
		guestreport.ParamPorts + "=" + joinPort,
	}
	if len(ignores) > 0 {
		appendArgs = append(appendArgs, guestreport.ParamIgnore+"="+strings.Join(ignores, ","))
	}
	boot := Boot{
		Kernel:    ft.image,
		Initramfs: ft.initramfs.Path,
		Append:    appendArgs,
		Ports:     []Port{{Name: joinPort, File: join}, {Name: guestreport.PortName, File: report}},
		FwCfg:     fwCfg,
		Disks:     disks,
		Console:   console,
		Accel:     ft.accel,
		Timeout:   bootBudget,
		Watch:     JoinSecretWatcher(join),
	}
	res := boot.Run(context.Background())
	t.Cleanup(func() {
		if t.Failed() {
			data, _ := os.ReadFile(console)
			t.Logf("QEMU: %s %s\n%s\n--- serial console (%s) ---\n%s--- end of console ---", Binary, strings.Join(res.Args, " "), res.Output, console, data)
		}
	})
	if res.Err != nil {
		t.Fatalf("boot: %v", res.Err)
	}
	rep := readReport(t, report)
	for _, e := range rep.Errors {
		t.Errorf("guest init: %s", e)
	}

	// kubeboot's exit statuses, step by step.
	steps := map[string]guestreport.Step{}
	for _, s := range rep.Steps {
		steps[s.Name] = s
		switch {
		case s.Skipped != "":
			t.Logf("step %s skipped: %s", s.Name, s.Skipped)
		case s.Exit != 0:
			t.Errorf("step %s: kubeboot %s: exit %d\n%s", s.Name, strings.Join(s.Args, " "), s.Exit, s.Output)
		}
	}
	for _, name := range []string{"host", "preflight", "dry-run", "join-secret"} {
		if _, ok := steps[name]; !ok {
			t.Errorf("step %s missing from the report", name)
		}
	}
	if p := steps["preflight"]; p.Skipped == "" {
		var why []string
		for _, name := range ignores {
			why = append(why, fmt.Sprintf("%s (%s)", name, preflightIgnores[name]))
		}
		t.Logf("preflight passed, ignoring %s", strings.Join(why, ", "))
	}

	// Kernel modules, from real .ko files, and the sysctls read back.
	loaded := map[string]bool{}
	for _, m := range rep.Modules {
		loaded[m] = true
	}
	want := requiredModules
	if fwCfg != nil {
		want = append(append([]string{}, want...), "qemu_fw_cfg") // kubeboot loads it to read fw_cfg
	}
	for _, m := range want {
		if !loaded[m] {
			t.Errorf("module %s not in /proc/modules: %s", m, strings.Join(rep.Modules, " "))
		}
	}
	for _, k := range []string{"net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"} {
		if v := rep.Sysctls[k]; v != "1" {
			t.Errorf("sysctl %s = %q, want 1", k, v)
		}
	}

	// Where the userdata came from, and the timeline on the console.
	dry := steps["dry-run"].Output
	if !strings.Contains(dry, " from "+c.source) {
		t.Errorf("the dry run's userdata phase does not name %q as the source:\n%s", c.source, dry)
	}
	consoleLog, _ := os.ReadFile(console)
	if !regexp.MustCompile(`\[host\] [^\n]*modules: `).Match(consoleLog) {
		t.Errorf("serial console lacks the host phase's module line")
	}
	for _, line := range []string{"PHASE", "total", "sent to virtio-serial port " + joinPort} {
		if !bytes.Contains(consoleLog, []byte(line)) {
			t.Errorf("serial console lacks %q", line)
		}
	}

	// Case B's disk was mounted (iso9660 with Rock Ridge), not only read.
	if disks != nil && !strings.Contains(rep.KernelLog, "ISO 9660 Extensions") {
		t.Errorf("the kernel never mounted the cidata ISO (no \"ISO 9660 Extensions\" in its log)")
	}

	// The rendered files: digests, manifests that decode, node name.
	checkFiles(t, rep, c)

	// The join secret, as the host side of the port received it.
	secretDoc, err := os.ReadFile(join)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := joinsecret.Parse(join, secretDoc)
	if err != nil {
		t.Fatalf("join secret: %v", err)
	}
	if want := caHash(t, rep); len(secret.CACertHashes) != 1 || secret.CACertHashes[0] != want {
		t.Errorf("join secret CA hashes %v, want [%s] (the guest's ca.crt)", secret.CACertHashes, want)
	}
	if want := c.address + ":6443"; secret.APIServerEndpoint != want || secret.ClusterName != "qemu-fast" {
		t.Errorf("join secret endpoint %s cluster %s, want %s qemu-fast", secret.APIServerEndpoint, secret.ClusterName, want)
	}

	// The same configuration rendered on the host gives the same files.
	root := filepath.Join(dir, "host-root")
	c.hostRender(t, ft.kubeboot, dir, root)
	for _, p := range deterministicFiles {
		data, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Errorf("host render: %v", err)
			continue
		}
		sum := sha256.Sum256(data)
		if g := rep.Files[p]; g.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: guest sha256 %s, host render %s\n%s", p, g.SHA256, hex.EncodeToString(sum[:]), firstDiff(g.Data, string(data)))
		}
	}

	var stepTimes []string
	for _, s := range rep.Steps {
		if s.Skipped == "" {
			stepTimes = append(stepTimes, fmt.Sprintf("%s %.2fs", s.Name, s.Seconds))
		}
	}
	if res.Watched == 0 {
		t.Errorf("the join secret never arrived whole on the host while QEMU ran")
	}
	bench := fmt.Sprintf("BENCH qemu fast tier %s (%s, initramfs %.1f MB): boot → join secret on the host %.2fs; QEMU start → exit %.2fs; guest uptime at init %.2fs, at report %.2fs; kubeboot: %s",
		c.name, ft.accel, float64(ft.initramfs.Size)/1e6, res.Watched.Seconds(), res.Wall.Seconds(), rep.UptimeStart, rep.UptimeEnd, strings.Join(stepTimes, ", "))
	t.Log(bench)
	if f := os.Getenv("KUBEBOOT_BENCH_OUT"); f != "" {
		if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintf(fh, "%s %s\n", time.Now().UTC().Format(time.RFC3339), bench)
			fh.Close()
		}
	}
}

func readReport(t *testing.T, file string) guestreport.Report {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	var rep guestreport.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report (%d bytes): %v", len(data), err)
	}
	return rep
}

func checkFiles(t *testing.T, rep guestreport.Report, c fastCase) {
	t.Helper()
	for _, p := range append([]string{"/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/admin.conf", "/var/lib/kubeboot/journal.json"}, deterministicFiles...) {
		if _, ok := rep.Files[p]; !ok {
			t.Errorf("%s not rendered in the guest", p)
		}
	}
	var digests []string
	for p, f := range rep.Files {
		if f.Data != "" {
			sum := sha256.Sum256([]byte(f.Data))
			if hex.EncodeToString(sum[:]) != f.SHA256 {
				t.Errorf("%s: reported digest does not match its contents", p)
			}
		}
		digests = append(digests, fmt.Sprintf("%s %s", f.SHA256[:16], p))
	}
	sort.Strings(digests)
	t.Logf("%d files rendered in the guest", len(rep.Files))
	for _, p := range deterministicFiles {
		if f, ok := rep.Files[p]; ok {
			t.Logf("  sha256 %s  %s", f.SHA256, p)
		}
	}
	manifests := map[string]string{"etcd": "", "kube-apiserver": "", "kube-controller-manager": "", "kube-scheduler": ""}
	for name := range manifests {
		p := "/etc/kubernetes/manifests/" + name + ".yaml"
		var pod corev1.Pod
		if err := sigsyaml.UnmarshalStrict([]byte(rep.Files[p].Data), &pod); err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if pod.Kind != "Pod" || pod.APIVersion != "v1" || pod.Name != name || len(pod.Spec.Containers) != 1 || !pod.Spec.HostNetwork {
			t.Errorf("%s: not the static pod expected: %s/%s %s, %d containers, hostNetwork %v", p, pod.APIVersion, pod.Kind, pod.Name, len(pod.Spec.Containers), pod.Spec.HostNetwork)
			continue
		}
		if name == "etcd" {
			if !contains(pod.Spec.Containers[0].Command, "--name="+c.nodeName) {
				t.Errorf("etcd's member is not named %s: %v", c.nodeName, pod.Spec.Containers[0].Command)
			}
		}
	}
	if flags := rep.Files["/var/lib/kubelet/kubeadm-flags.env"].Data; !strings.Contains(flags, "--hostname-override="+c.nodeName) {
		t.Errorf("kubelet flags do not name the node %s: %s", c.nodeName, flags)
	}
}

// caHash is the kubeadm-style hash of the guest's CA: sha256 of the
// certificate's SubjectPublicKeyInfo.
func caHash(t *testing.T, rep guestreport.Report) string {
	t.Helper()
	block, _ := pem.Decode([]byte(rep.Files["/etc/kubernetes/pki/ca.crt"].Data))
	if block == nil {
		t.Fatal("the report holds no ca.crt PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("ca.crt: %v", err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func runKubeboot(t *testing.T, kubeboot string, args ...string) {
	t.Helper()
	out, err := exec.Command(kubeboot, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubeboot %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func write(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// firstDiff shows the first line where two renderings differ.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d: guest %q, host %q", i+1, x, y)
		}
	}
	return "(contents equal; digest of something else)"
}
