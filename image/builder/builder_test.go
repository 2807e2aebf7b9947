package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kubeboot/kubeboot/image/addons"
	"github.com/kubeboot/kubeboot/pkg/config"
	"github.com/kubeboot/kubeboot/pkg/cri"
)

// kubeadmList is `kubeadm config images list --kubernetes-version v1.37.2`
// of the kubeadm v1.37.2 that test/k8sbin builds.
var kubeadmList = []string{
	"registry.k8s.io/kube-apiserver:v1.37.2",
	"registry.k8s.io/kube-controller-manager:v1.37.2",
	"registry.k8s.io/kube-scheduler:v1.37.2",
	"registry.k8s.io/kube-proxy:v1.37.2",
	"registry.k8s.io/coredns/coredns:v1.14.6",
	"registry.k8s.io/pause:3.10.2",
	"registry.k8s.io/etcd:3.7.0-0",
}

func TestImageNames(t *testing.T) {
	var refs, addonRefs, files []string
	for _, im := range images(inputs{kubernetesVersion: config.KubernetesVersion}) {
		if im.addon {
			addonRefs = append(addonRefs, im.ref)
		} else {
			refs = append(refs, im.ref)
		}
		files = append(files, im.archiveName())
		if _, err := parseRef(im.ref); err != nil {
			t.Error(err)
		}
	}
	if !slices.Equal(refs, kubeadmList) {
		t.Errorf("refs\n%s\nkubeadm says\n%s", strings.Join(refs, "\n"), strings.Join(kubeadmList, "\n"))
	}
	if want := []string{addons.FlannelImage}; !slices.Equal(addonRefs, want) {
		t.Errorf("add-on refs %v, want %v (image/addons)", addonRefs, want)
	}
	wantFiles := []string{
		"kube-apiserver_v1.37.2.tar", "kube-controller-manager_v1.37.2.tar", "kube-scheduler_v1.37.2.tar",
		"kube-proxy_v1.37.2.tar", "coredns_v1.14.6.tar", "pause_3.10.2.tar", "etcd_3.7.0-0.tar",
		"flannel_" + addons.FlannelVersion + ".tar",
	}
	if !slices.Equal(files, wantFiles) {
		t.Errorf("archive names %v, want %v", files, wantFiles)
	}
}

func TestTreePathsAndResolve(t *testing.T) {
	tr := tree{}
	tr.file("usr/lib/x86_64-linux-gnu/libc.so.6", "/dev/null", 0o644)
	tr.symlink("usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	tr.file("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/dev/null", 0o755)
	tr.symlink("lib", "usr/lib")
	tr.symlink("lib64", "usr/lib64")
	tr.symlink("usr/sbin/iptables", "/etc/alternatives/iptables")
	tr.symlink("etc/alternatives/iptables", "/usr/sbin/iptables-nft")
	tr.symlink("usr/sbin/iptables-nft", "xtables-nft-multi")
	tr.file("usr/sbin/xtables-nft-multi", "/dev/null", 0o755)
	tr.file("usr/lib-extra/x", "/dev/null", 0o644)
	tr.symlink("usr/sbin/dangling", "nothing")

	got := tr.paths()
	want := []string{
		"etc", "etc/alternatives", "etc/alternatives/iptables", "lib", "lib64",
		"usr", "usr/lib", "usr/lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		"usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib-extra", "usr/lib-extra/x",
		"usr/lib64", "usr/lib64/ld-linux-x86-64.so.2",
		"usr/sbin", "usr/sbin/dangling", "usr/sbin/iptables", "usr/sbin/iptables-nft", "usr/sbin/xtables-nft-multi",
	}
	if !slices.Equal(got, want) {
		t.Errorf("paths\n%v\nwant\n%v", got, want)
	}

	for _, c := range []struct {
		path, want string
		ok         bool
	}{
		{"/lib64/ld-linux-x86-64.so.2", "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", true},
		{"lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libc.so.6", true},
		{"/usr/sbin/iptables", "usr/sbin/xtables-nft-multi", true},
		{"usr/lib", "usr/lib", true},
		{"usr/sbin/dangling", "usr/sbin/nothing", false},
		{"lib/libfoo.so.1", "usr/lib/libfoo.so.1", false},
	} {
		got, ok := tr.resolve(c.path)
		if got != c.want || ok != c.ok {
			t.Errorf("resolve(%q) = %q, %t; want %q, %t", c.path, got, ok, c.want, c.ok)
		}
	}
}

func TestDebianPaths(t *testing.T) {
	for _, c := range []struct {
		in, merged string
		dropped    bool
	}{
		{"lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libc.so.6", false},
		{"lib64/ld-linux-x86-64.so.2", "usr/lib64/ld-linux-x86-64.so.2", false},
		{"sbin/ldconfig", "usr/sbin/ldconfig", false},
		{"libexec/x", "libexec/x", false},
		{"usr/share/doc/libc6", "usr/share/doc/libc6", true},
		{"usr/lib/x86_64-linux-gnu/gconv", "usr/lib/x86_64-linux-gnu/gconv", true},
		{"lib/systemd", "usr/lib/systemd", true},
		{"usr/sbin/iptables-apply", "usr/sbin/iptables-apply", true},
		{"usr/share/iptables", "usr/share/iptables", false},
	} {
		m := usrMerge(c.in)
		if m != c.merged || isDropped(m) != c.dropped {
			t.Errorf("%s: merged %s dropped %t, want %s %t", c.in, m, isDropped(m), c.merged, c.dropped)
		}
	}
	for file, v := range map[string]string{
		"conntrack_1%3a1.4.7-1+b2_amd64.deb": "1:1.4.7-1+b2",
		"libc6_2.36-9+deb12u14_amd64.deb":    "2.36-9+deb12u14",
	} {
		if got := (deb{File: "/cache/" + file}).version(); got != v {
			t.Errorf("version of %s = %q, want %q", file, got, v)
		}
	}
	if got := etcdMinor("3.7.0-0"); got != "3.7." {
		t.Errorf("etcdMinor = %q", got)
	}
	if got := requiredVersion([]byte("module x\n\nrequire github.com/coredns/coredns v1.14.6\n"), "github.com/coredns/coredns"); got != "v1.14.6" {
		t.Errorf("requiredVersion = %q", got)
	}
}

// buildPauseArchive builds the pause image alone into a temporary cache
// and archive directory; no network.
func buildPauseArchive(t *testing.T) (string, []result) {
	t.Helper()
	src, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	o := options{
		cache: filepath.Join(dir, "cache"), out: filepath.Join(dir, "out"), src: src,
		kubernetesVersion: config.KubernetesVersion, compression: gzipped, goProcs: 1, check: true,
		only: []string{"pause"},
	}
	res, err := build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(o.out, "pause_"+config.PauseVersion+".tar"), res
}

func TestPauseArchive(t *testing.T) {
	file, res := buildPauseArchive(t)
	if len(res) != 1 || res[0].cached || res[0].file != file {
		t.Fatalf("results %+v", res)
	}
	ref := "registry.k8s.io/pause:" + config.PauseVersion

	// The docker-save side, through go-containerregistry's reader.
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(file, &tag)
	if err != nil {
		t.Fatalf("tarball.ImageFromPath(%s): %v", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/pause"}) || len(cf.Config.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [/pause] and none", cf.Config.Entrypoint, cf.Config.Cmd)
	}
	if cf.Config.User != "65535:65535" || !slices.Contains(cf.Config.Env, pathEnv) {
		t.Errorf("user %q env %q", cf.Config.User, cf.Config.Env)
	}
	if !cf.Created.Time.Equal(epoch) {
		t.Errorf("created %v, want the epoch", cf.Created)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	files := layerFiles(t, layers[0])
	if fi, ok := files["pause"]; !ok || fi.Mode&0o111 == 0 || fi.Size < 100_000 || fi.Uid != 0 || !fi.ModTime.Equal(epoch) {
		t.Errorf("layer: pause is %+v (present: %t)", fi, ok)
	}
	if len(files) != 1 {
		t.Errorf("layer holds %d entries, want only /pause", len(files))
	}

	// The OCI layout side, as containerd reads it.
	var index v1.IndexManifest
	if err := json.Unmarshal(archiveMember(t, file, "index.json"), &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 {
		t.Fatalf("index.json: %d manifests", len(index.Manifests))
	}
	m := index.Manifests[0]
	if m.MediaType != types.OCIManifestSchema1 || m.Annotations[annotationImageName] != ref || m.Annotations[annotationRefName] != config.PauseVersion ||
		m.Platform == nil || m.Platform.OS != "linux" || m.Platform.Architecture != runtime.GOARCH {
		t.Errorf("index.json entry %+v, want an OCI manifest named %s for linux/%s", m, ref, runtime.GOARCH)
	}
	raw := archiveMember(t, file, "blobs/sha256/"+m.Digest.Hex)
	if h, _, _ := v1.SHA256(bytes.NewReader(raw)); h != m.Digest || int64(len(raw)) != m.Size {
		t.Errorf("manifest blob: digest %s size %d, index says %s %d", h, len(raw), m.Digest, m.Size)
	}
	var manifest v1.Manifest
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	cfgName, _ := img.ConfigName()
	if manifest.MediaType != types.OCIManifestSchema1 || manifest.Config.MediaType != types.OCIConfigJSON || manifest.Config.Digest != cfgName ||
		len(manifest.Layers) != 1 || manifest.Layers[0].MediaType != types.OCILayer {
		t.Errorf("manifest %+v: want OCI media types, config %s, one gzip layer", manifest, cfgName)
	}
	if got := string(archiveMember(t, file, "oci-layout")); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout %s", got)
	}
}

// TestPauseArchiveIdempotent: a second run skips the image; a build from
// the same inputs into another directory is the same bytes.
func TestPauseArchiveIdempotent(t *testing.T) {
	file, _ := buildPauseArchive(t)
	before, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	src, _ := moduleRoot()
	dir := filepath.Dir(filepath.Dir(file))
	o := options{cache: filepath.Join(dir, "cache"), out: filepath.Join(dir, "out"), src: src,
		kubernetesVersion: config.KubernetesVersion, compression: gzipped, goProcs: 1, only: []string{"pause"}}
	res, err := build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(file)
	if !res[0].cached || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("second run rebuilt the archive: %+v", res[0])
	}

	// A stamp that does not match (other inputs) rebuilds it, to the same
	// bytes: archives are reproducible.
	sumBefore, err := fileSHA256(file)
	if err != nil {
		t.Fatal(err)
	}
	stamp := filepath.Join(o.out, ".stamps", filepath.Base(file))
	if err := os.WriteFile(stamp, []byte("key=other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	sumAfter, _ := fileSHA256(file)
	if res[0].cached || sumAfter != sumBefore {
		t.Errorf("rebuild: cached %t, sha256 %s then %s", res[0].cached, sumBefore, sumAfter)
	}
}

// TestContainerdImport imports the pause archive into a containerd of its
// own, as `ctr -n k8s.io images import` (containerd's import API) does on a
// node, lists it, and runs it: it must stay up until SIGTERM, then exit 0.
func TestContainerdImport(t *testing.T) {
	ctr := needContainerd(t)
	file, _ := buildPauseArchive(t)
	ref := "registry.k8s.io/pause:" + config.PauseVersion

	out := ctr.run(t, "images", "import", file)
	if !strings.Contains(out, ref) {
		t.Errorf("import said %q, want %s in it", out, ref)
	}
	list := ctr.run(t, "images", "ls", "-q")
	if !slices.Contains(strings.Fields(list), ref) {
		t.Fatalf("images ls:\n%s\nwant %s (an image without os/architecture is filtered out silently)", list, ref)
	}
	check := ctr.run(t, "images", "check")
	if !strings.Contains(check, ref) || !strings.Contains(check, "complete") {
		t.Errorf("images check:\n%s", check)
	}

	if _, err := exec.LookPath("runc"); err != nil {
		t.Log("no runc: pause not run")
		return
	}
	t.Log("imported and listed; running it")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, "ctr", ctr.args("run", "--rm", ref, "pause-test")...)
	runOut := &strings.Builder{}
	run.Stdout, run.Stderr = runOut, runOut
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- run.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(ctr.run(t, "tasks", "ls"), "RUNNING") {
		select {
		case err := <-done:
			t.Fatalf("pause exited before SIGTERM: %v\n%s", err, runOut)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pause not running after 30 s:\n%s", runOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctr.run(t, "tasks", "kill", "-s", "SIGTERM", "pause-test")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("pause after SIGTERM: %v, want exit 0\n%s", err, runOut)
		}
		t.Logf("pause ran and exited 0 on SIGTERM: %q", strings.TrimSpace(runOut.String()))
	case <-time.After(20 * time.Second):
		t.Fatalf("pause still running 20 s after SIGTERM:\n%s", runOut)
	}
}

// flannelRules are rules of the kind flanneld writes with --ip-masq
// (masquerading with --random-fully, forwarding, comments), for
// iptables-restore.
const flannelRules = `*nat
:FLANNEL-POSTRTG - [0:0]
-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
-A FLANNEL-POSTRTG -s 10.244.1.0/24 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully
COMMIT
*filter
:FLANNEL-FWD - [0:0]
-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT
COMMIT
`

// TestDebianTools builds the Debian part of kube-proxy's and flannel's
// images from the packages apt names (downloaded once into
// $KUBEBOOT_CACHE/debs), checks its linkage, runs the image's tool checks
// inside it, and runs each tool for real, each in a network namespace of
// its own.
func TestDebianTools(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chroot into the layer")
	}
	for _, tool := range []string{"apt-get", "dpkg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	triplet, err := debianTriplet(runtime.GOARCH)
	if err != nil {
		t.Skip(err)
	}
	type command struct {
		argv  []string
		stdin string
	}
	for _, tc := range []struct {
		image  string
		debs   []string
		checks []check
		run    []command
	}{
		{"kube-proxy", kubeProxyDebs, kubeProxyToolChecks, []command{
			{argv: []string{"iptables-save"}}, {argv: []string{"ip6tables-save"}}, {argv: []string{"iptables", "-w", "-t", "nat", "-L", "-n"}},
			{argv: []string{"iptables-legacy-save"}}, {argv: []string{"nft", "list", "ruleset"}}, {argv: []string{"conntrack", "-L"}},
			{argv: []string{"ipset", "list"}},
		}},
		{"flannel", flannelDebs, flannelToolChecks, []command{
			{argv: []string{"iptables-save"}}, {argv: []string{"iptables", "-w", "-t", "nat", "-L", "-n"}},
			{argv: []string{"iptables-restore", "-w", "--noflush"}, stdin: flannelRules},
			{argv: []string{"nft", "list", "ruleset"}},
		}},
	} {
		t.Run(tc.image, func(t *testing.T) {
			ctx := context.Background()
			debs, err := fetchDebs(ctx, filepath.Join(o.cache, "debs"), tc.debs)
			if err != nil {
				t.Fatal(err)
			}
			work := t.TempDir()
			tr := base()
			if err := addDebs(ctx, tr, debs, work); err != nil {
				t.Fatal(err)
			}
			if err := checkLinked(tr, triplet); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"usr/share/doc", "usr/lib/" + triplet + "/gconv"} {
				if _, ok := tr.resolve(want); ok {
					t.Errorf("%s is in the layer", want)
				}
			}
			root := filepath.Join(work, "rootfs")
			if _, err := writeLayerChecked(ctx, tr, filepath.Join(work, "layer"), gzipped, []string{pathEnv}, tc.checks, root); err != nil {
				t.Fatal(err)
			}

			// The real thing, each in a fresh network namespace.
			for _, c := range tc.run {
				cmd := exec.Command(lookPathIn(root, c.argv[0], []string{pathEnv}), c.argv[1:]...)
				cmd.Args[0] = c.argv[0]
				cmd.Env = []string{pathEnv}
				cmd.Dir = "/"
				cmd.Stdin = strings.NewReader(c.stdin)
				cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Cloneflags: syscall.CLONE_NEWNET}
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%s: %v\n%s", strings.Join(c.argv, " "), err, out)
				}
			}
			if fi, err := os.Stat(filepath.Join(root, "tmp")); err != nil || fi.Mode()&fs.ModeSticky == 0 {
				t.Errorf("/tmp: %v %v", fi, err)
			}
		})
	}
}

// containerd is a containerd of the test's own, reached with ctr.
type containerd struct{ sock string }

func (c containerd) args(a ...string) []string {
	return append([]string{"--address", c.sock, "--namespace", "k8s.io"}, a...)
}

func (c containerd) run(t *testing.T, a ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ctr", c.args(a...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(a, " "), err, out)
	}
	return string(out)
}

// needContainerd starts containerd with its own root, state, socket and
// configuration under a temporary directory, or skips the test saying
// why it cannot.
func needContainerd(t *testing.T) containerd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run containerd")
	}
	for _, bin := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (Debian package containerd)", bin)
		}
	}
	dir := t.TempDir()
	c := containerd{sock: filepath.Join(dir, "containerd.sock")}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
[plugins."io.containerd.grpc.v1.cri"]
  # Root here lacks CAP_SYS_RESOURCE: runc cannot set oom_score_adj -998.
  restrict_oom_score_adj = true
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock, c.sock+".ttrpc", filepath.Join(dir, "opt"))
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("containerd log (tail):\n%s", tail(string(b), 30))
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if exec.Command("ctr", c.args("version")...).Run() == nil {
			return c
		}
		select {
		case err := <-done:
			b, _ := os.ReadFile(logFile.Name())
			t.Fatalf("containerd exited: %v\n%s", err, tail(string(b), 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd not answering after 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func layerFiles(t *testing.T, l v1.Layer) map[string]*tar.Header {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = hdr
	}
}

func archiveMember(t *testing.T, file, member string) []byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s (%v)", file, member, err)
		}
		if hdr.Name == member {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

func TestParseRef(t *testing.T) {
	long := func(ref string) string {
		n, err := reference.ParseDockerRef(ref)
		if err != nil {
			t.Fatal(err)
		}
		return n.String()
	}
	for _, c := range []struct {
		ref string
		ok  bool
	}{
		{config.DefaultImageRepository + "/pause:" + config.PauseVersion, true},
		{config.DefaultImageRepository + "/coredns/coredns:" + config.CoreDNSVersion, true},
		{addons.FlannelImage, true},
		{"kubeboot/flannel", false},        // no tag
		{long(addons.FlannelImage), false}, // the default registry spelled out
		{"kubeboot/flannel:v1@sha256:" + strings.Repeat("0", 64), false},
		{"kubeboot/Flannel:v1", false}, // upper case in the path
	} {
		_, err := parseRef(c.ref)
		if (err == nil) != c.ok {
			t.Errorf("parseRef(%q): %v, want ok %t", c.ref, err, c.ok)
		}
	}
}

// TestArchiveShortName writes an archive for a ref with no registry host,
// as an add-on's image is named, and reads it as containerd, kubeboot's
// importer and go-containerregistry do: each must find the image under
// the name the kubelet's runtime looks up for the manifest's image.
func TestArchiveShortName(t *testing.T) {
	const short = "kubeboot/archive-test:v1"
	ref, err := parseRef(short)
	if err != nil {
		t.Fatal(err)
	}
	full := ref.String() // what the CRI resolves the manifest's name to
	if full == short {
		t.Fatalf("%s: the full name is the short one", short)
	}
	dir := t.TempDir()
	tr := tree{}
	tr.bytes("hello", []byte("hello\n"), 0o644)
	layer, err := writeLayer(tr, filepath.Join(dir, "layer"), gzipped)
	if err != nil {
		t.Fatal(err)
	}
	img, err := newImage(layer, runtime.GOARCH, v1.Config{Env: []string{pathEnv}, Entrypoint: []string{"/hello"}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "archive-test_v1.tar")
	if err := writeArchive(file, ref, img); err != nil {
		t.Fatal(err)
	}

	var index v1.IndexManifest
	if err := json.Unmarshal(archiveMember(t, file, "index.json"), &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations[annotationImageName] != full || index.Manifests[0].Annotations[annotationRefName] != "v1" {
		t.Errorf("index.json %+v: want %s, tag v1", index.Manifests, full)
	}
	var docker []struct{ RepoTags []string }
	if err := json.Unmarshal(archiveMember(t, file, "manifest.json"), &docker); err != nil {
		t.Fatal(err)
	}
	if len(docker) != 1 || !slices.Equal(docker[0].RepoTags, []string{short}) {
		t.Errorf("manifest.json %+v: want RepoTags [%s], as docker save writes it", docker, short)
	}
	if _, err := tarball.ImageFromPath(file, nil); err != nil {
		t.Errorf("go-containerregistry: %v", err)
	}
	names, err := cri.ArchiveImages(file)
	if err != nil || !slices.Equal(names, []string{full}) {
		t.Errorf("pkg/cri sees %v (%v), want [%s]", names, err, full)
	}

	ctr := needContainerd(t)
	ctr.run(t, "images", "import", file)
	// Besides the names, the CRI plugin records the image by its ID.
	list := slices.DeleteFunc(strings.Fields(ctr.run(t, "images", "ls", "-q")), func(n string) bool { return strings.HasPrefix(n, "sha256:") })
	if !slices.Equal(list, []string{full}) {
		t.Errorf("containerd names %v after the import, want [%s]", list, full)
	}
}

// TestWrapperKey: CoreDNS's binary keeps the stamp it had before wrappers
// could build several binaries, so that no machine rebuilds it for that.
func TestWrapperKey(t *testing.T) {
	mod := t.TempDir()
	for _, f := range corednsWrapper.files {
		if err := os.WriteFile(filepath.Join(mod, f), []byte(f+" content\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const goVersion = "go1.26.8"
	old := sha256.New()
	fmt.Fprintf(old, "recipe=%s\nversion=%s\ngo=%s\narch=%s\nldflags=%s\ncgo=0 trimpath\n",
		"1", config.CoreDNSVersion, goVersion, runtime.GOARCH, "-s -w")
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		fmt.Fprintf(old, "%s %x\n", f, sha256.Sum256([]byte(f+" content\n")))
	}
	got, err := corednsWrapper.key(mod, goVersion)
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(old.Sum(nil)); got != want {
		t.Errorf("CoreDNS key %s, want %s as before", got, want)
	}
	if k, _ := flannelWrapper.key(filepath.Join(moduleRootT(t), flannelWrapper.dir), goVersion); k == "" {
		t.Error("flannel: no key")
	}
}

// TestFlannelMain derives flanneld's main.go from flannel's as the builder
// does: flannel's imports but the udp backend.
func TestFlannelMain(t *testing.T) {
	mod := filepath.Join(moduleRootT(t), flannelWrapper.dir)
	if out, err := exec.Command("go", "-C", mod, "mod", "download", flannelWrapper.module).CombinedOutput(); err != nil {
		t.Skipf("flannel's module is not at hand: %v\n%s", err, out)
	}
	b := flannelWrapper.bins[0]
	dir, err := flannelWrapper.derive(context.Background(), mod, filepath.Join(t.TempDir(), "src"), b)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, "main.go"), nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var imports []string
	for _, i := range f.Imports {
		imports = append(imports, strings.Trim(i.Path.Value, `"`))
	}
	if f.Name.Name != "main" || slices.Contains(imports, "github.com/flannel-io/flannel/pkg/backend/udp") ||
		!slices.Contains(imports, "github.com/flannel-io/flannel/pkg/backend/vxlan") {
		t.Errorf("package %s imports %v: want main, with vxlan, without udp", f.Name.Name, imports)
	}
	for _, name := range []string{"go.mod", "go.sum"} {
		want, _ := os.ReadFile(filepath.Join(mod, name))
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: not the wrapper's (%v)", name, err)
		}
	}

	gone := b
	gone.drop = []string{`_ "github.com/flannel-io/flannel/pkg/backend/nothing"`}
	if _, err := flannelWrapper.derive(context.Background(), mod, filepath.Join(t.TempDir(), "src"), gone); err == nil {
		t.Error("dropping a line that is not there: no error")
	}
}

func TestDebPackages(t *testing.T) {
	got := debPackages([]image{{debs: []string{"a", "b"}}, {}, {debs: []string{"b", "c", "a"}}})
	if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("debPackages = %v, want %v", got, want)
	}
}

func moduleRootT(t *testing.T) string {
	t.Helper()
	src, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return src
}
