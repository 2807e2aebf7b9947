// The tests in this file run a real containerd. Debian packages they need:
//
//	containerd runc
//
// (apt-get install -y containerd runc). Without the containerd binary, or
// when not root, they skip and say why.

package cri

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// testContainerd is one containerd with its own root, state, socket and
// configuration under a temporary directory.
type testContainerd struct {
	dir      string
	sock     string
	endpoint string
	config   string
	cmd      *exec.Cmd
	log      string
	started  time.Duration
}

const testPause = "registry.k8s.io/pause:3.10.2"

func startContainerd(t *testing.T) *testContainerd {
	t.Helper()
	bin, err := exec.LookPath("containerd")
	if err != nil {
		t.Skip("containerd is not installed (apt-get install -y containerd runc): skipping the real-containerd test")
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: containerd needs root to mount snapshots and run containers")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed (apt-get install -y runc)")
	}
	// A short directory: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "kubeboot-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &testContainerd{dir: dir, sock: filepath.Join(dir, "c.sock"), config: filepath.Join(dir, "config.toml"), log: filepath.Join(dir, "containerd.log")}
	c.endpoint = "unix://" + c.sock
	// containerd 1.6 keeps shim sockets in /run/containerd/s whatever its
	// state directory; remove what it creates there if nothing was before.
	if _, err := os.Stat("/run/containerd"); errors.Is(err, fs.ErrNotExist) {
		t.Cleanup(func() {
			for _, d := range []string{"/run/containerd/s", "/run/containerd/runc/k8s.io", "/run/containerd/runc", "/run/containerd"} {
				os.Remove(d)
			}
		})
	}
	for _, d := range []string{"root", "state", "cni/bin", "cni/conf", "opt"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, so runc
	// cannot give the sandbox oom_score_adj -998 otherwise. The cgroup
	// driver is cgroupfs, matching a kubelet on a host whose PID 1 is not
	// systemd.
	cfg := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[ttrpc]
  address = "%[3]s.ttrpc"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    restrict_oom_score_adj = true
    sandbox_image = %[4]q
    enable_selinux = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "%[5]s/cni/bin"
      conf_dir = "%[5]s/cni/conf"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = "%[5]s/runc"
  [plugins."io.containerd.internal.v1.opt"]
    path = "%[5]s/opt"
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock, testPause, dir)
	if err := os.WriteFile(c.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.cmd = exec.Command(bin, "--config", c.config, "--log-level", "info")
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.cmd.Wait(); logf.Close() }()
	t.Cleanup(func() { c.stop(t, exited) })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if _, err := os.Stat(c.sock); err == nil {
			cl, err := Dial(ctx, c.endpoint)
			if err == nil {
				cl.Close()
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("containerd exited at start: %v\n%s", err, c.tail())
		case <-ctx.Done():
			t.Fatalf("containerd did not serve the CRI within 30 s\n%s", c.tail())
		case <-time.After(50 * time.Millisecond):
		}
	}
	c.started = time.Since(start)
	return c
}

func (c *testContainerd) tail() string {
	b, _ := os.ReadFile(c.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// stop removes every pod through the CRI (so the shims exit), stops
// containerd, kills any shim it left by its process id, and unmounts
// whatever is still mounted under the test's directory.
func (c *testContainerd) stop(t *testing.T, exited chan error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cl, err := Dial(ctx, c.endpoint); err == nil {
		if r, err := cl.runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, p := range r.Items {
				cl.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.Id})
				cl.runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.Id})
			}
		}
		cl.Close()
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-exited
	}
	for _, pid := range shimsOf(c.sock) {
		t.Logf("killing leftover shim %d", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, m := range mountsUnder(c.dir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", m, err)
		}
	}
	if left := mountsUnder(c.dir); len(left) > 0 {
		t.Errorf("still mounted after cleanup: %q", left)
		return
	}
	if err := os.RemoveAll(c.dir); err != nil {
		t.Errorf("remove %s: %v", c.dir, err)
	}
}

// shimsOf finds the shim processes serving this containerd: their command
// line carries its socket address.
func shimsOf(sock string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && strings.Contains(args[0], "containerd-shim") && slices.Contains(args, sock) {
			out = append(out, pid)
		}
	}
	return out
}

// mountsUnder lists mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			out = append(out, fields[4])
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// TestRealContainerd imports archives built here into a real containerd,
// sees them through the CRI, fails to pull an absent image with a clear
// error, runs a container and reads its log back.
func TestRealContainerd(t *testing.T) {
	ctrd := startContainerd(t)
	t.Logf("containerd serving the CRI %s after start", ctrd.started.Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	bin := buildTiny(t)
	img := tinyImage(t, bin, true)
	archives := filepath.Join(ctrd.dir, "images")
	if err := os.MkdirAll(archives, 0o755); err != nil {
		t.Fatal(err)
	}
	writeOCIArchive(t, filepath.Join(archives, "pause.tar"), img, testPause)
	const proxy = "registry.k8s.io/kube-proxy:v1.37.2"
	writeDockerArchive(t, filepath.Join(archives, "kube-proxy.tar"), img, proxy)
	const absent = "registry.k8s.io/kube-apiserver:v1.37.2"

	cl, err := Dial(ctx, ctrd.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v, err := cl.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "containerd" || v.RuntimeAPIVersion != "v1" {
		t.Errorf("Version = %+v, want containerd speaking v1", v)
	}
	t.Logf("runtime %s %s, CRI %s", v.RuntimeName, v.RuntimeVersion, v.RuntimeAPIVersion)

	cc, err := ReadContainerdConfig(ctrd.config)
	if err != nil {
		t.Fatal(err)
	}
	if w := cc.CheckSandboxImage(testPause, v.RuntimeVersion); w != "" {
		t.Errorf("sandbox warning on a matching config: %s", w)
	}
	if err := cc.CheckCgroupDriver("cgroupfs"); err != nil {
		t.Errorf("cgroup check on a matching config: %v", err)
	}

	var events []string
	ens := Ensure{
		Runtime:    cl,
		Importer:   Containerd{Address: ctrd.endpoint, Snapshotter: cc.Snapshotter},
		ArchiveDir: archives,
		Progress:   func(r ImageReport) { events = append(events, string(r.State)+" "+r.Image) },
	}
	start := time.Now()
	rep, err := ens.Run(ctx, []string{proxy, testPause, absent})
	took := time.Since(start)
	for _, a := range rep.Archives {
		t.Logf("archive %s: %q in %s (err %v)", filepath.Base(a.File), a.Images, a.Took.Round(time.Millisecond), a.Err)
	}
	for _, r := range rep.Images {
		t.Logf("report: %s", r)
	}
	t.Logf("ensure of 3 images (2 archives imported, 1 failed pull) took %s", took.Round(time.Millisecond))
	if err == nil {
		t.Fatal("Ensure succeeded although an image is in no archive and there is no registry")
	}
	want := map[string]State{proxy: Imported, testPause: Imported, absent: Missing}
	for _, r := range rep.Images {
		if r.State != want[r.Image] {
			t.Errorf("%s: state %s, want %s (%v)", r.Image, r.State, want[r.Image], r.Err)
		}
		if r.State == Imported && filepath.Dir(r.From) != archives {
			t.Errorf("%s: imported from %q", r.Image, r.From)
		}
	}
	msg := err.Error()
	for _, s := range []string{absent, "imageArchiveDir", archives} {
		if !strings.Contains(msg, s) {
			t.Errorf("pull error does not mention %q: %s", s, msg)
		}
	}
	t.Logf("pull error: %s", msg)
	if !slices.Contains(events, "pulling "+absent) || !slices.Contains(events, "imported "+testPause) {
		t.Errorf("progress events %q", events)
	}

	// The CRI lists what was imported.
	list, err := cl.ListImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, i := range list {
		tags = append(tags, i.RepoTags...)
	}
	for _, want := range []string{testPause, proxy} {
		if !slices.Contains(tags, want) {
			t.Errorf("ListImages tags %q lack %s", tags, want)
		}
	}
	for img, want := range map[string]bool{testPause: true, proxy: true, absent: false} {
		if ok, err := cl.ImagePresent(ctx, img); err != nil || ok != want {
			t.Errorf("ImagePresent(%s) = %t, %v; want %t", img, ok, err, want)
		}
	}

	// A second run finds everything present and imports nothing.
	start = time.Now()
	rep, err = Ensure{Runtime: cl, Importer: ens.Importer, ArchiveDir: archives}.Run(ctx, []string{testPause, proxy})
	if err != nil || len(rep.Archives) != 0 || rep.Summary() != "2 images: 2 present" {
		t.Errorf("second run: %s, archives %d, err %v", rep.Summary(), len(rep.Archives), err)
	}
	t.Logf("second ensure (all present) took %s", time.Since(start).Round(time.Millisecond))

	// `ctr images import` filters out an image whose config lacks
	// os/architecture; this importer takes a single image as it is, and the
	// CRI sees it.
	noPlat := filepath.Join(t.TempDir(), "noplatform.tar")
	writeOCIArchive(t, noPlat, tinyImage(t, bin, false), "registry.k8s.io/noplatform:v1")
	if names, err := ens.Importer.Import(ctx, noPlat); err != nil || !slices.Equal(names, []string{"registry.k8s.io/noplatform:v1"}) {
		t.Errorf("import without os/architecture: %q, %v", names, err)
	} else if ok, err := ens.waitPresent(ctx, "registry.k8s.io/noplatform:v1", time.Now().Add(10*time.Second)); !ok || err != nil {
		t.Errorf("image without os/architecture imported but not seen by the CRI: %v", err)
	}
	// An archive with only another platform's image is an error that says so.
	other := filepath.Join(t.TempDir(), "otherarch.tar")
	writeOCIArchiveForPlatform(t, other, tinyImage(t, bin, true), "registry.k8s.io/otherarch:v1", "s390x")
	if _, err := ens.Importer.Import(ctx, other); err == nil || !strings.Contains(err.Error(), "no linux/") {
		t.Errorf("import of another platform's image: %v, want an error naming the platform", err)
	} else {
		t.Logf("other-platform import: %v", err)
	}

	// Run a container named like a static pod's and read its log back.
	runAndReadLogs(t, ctx, cl, ctrd.dir, proxy)
}

func runAndReadLogs(t *testing.T, ctx context.Context, cl *Client, dir, image string) {
	logDir := filepath.Join(dir, "pods", "kube-system_kube-apiserver-node1_uid1")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	podCfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "kube-apiserver-node1", Namespace: "kube-system", Uid: "uid1"},
		LogDirectory: logDir,
		Labels:       map[string]string{labelPodName: "kube-apiserver-node1", labelPodNamespace: "kube-system"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			},
		},
	}
	start := time.Now()
	pod, err := cl.runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: podCfg})
	if err != nil {
		t.Fatalf("run pod sandbox (pause image from the archive): %v", err)
	}
	t.Logf("pod sandbox running %s after the request", time.Since(start).Round(time.Millisecond))
	for attempt := uint32(0); attempt < 2; attempt++ {
		ct, err := cl.runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
			PodSandboxId: pod.PodSandboxId,
			Config: &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "kube-apiserver", Attempt: attempt},
				Image:    &runtimeapi.ImageSpec{Image: image},
				Args:     []string{"say", "40", "3"},
				LogPath:  fmt.Sprintf("kube-apiserver/%d.log", attempt),
				Labels: map[string]string{
					labelContainerName: "kube-apiserver", labelPodName: "kube-apiserver-node1", labelPodNamespace: "kube-system",
				},
			},
			SandboxConfig: podCfg,
		})
		if err != nil {
			t.Fatalf("create container: %v", err)
		}
		if _, err := cl.runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ct.ContainerId}); err != nil {
			t.Fatalf("start container: %v", err)
		}
		for {
			st, err := cl.ContainerStatus(ctx, ct.ContainerId)
			if err != nil {
				t.Fatal(err)
			}
			if st.State == runtimeapi.ContainerState_CONTAINER_EXITED.String() {
				break
			}
			if ctx.Err() != nil {
				t.Fatal("container did not exit")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	logs, err := cl.Logs(ctx, "kube-apiserver", 5)
	if err != nil {
		t.Fatalf("Logs: %v", err)
	}
	t.Logf("Logs(kube-apiserver, 5):\n%s", logs)
	lines := strings.Split(strings.TrimSuffix(logs, "\n"), "\n")
	if len(lines) != 6 || !strings.Contains(lines[0], "exited with code 3") || !strings.Contains(lines[0], "restart 1") ||
		lines[1] != "line 36 of 40" || lines[5] != "line 40 of 40" {
		t.Errorf("Logs = %q, want an exit line and lines 36 to 40", lines)
	}
	if _, err := cl.Logs(ctx, "kube-scheduler", 5); err == nil || !strings.Contains(err.Error(), "no container named kube-scheduler") {
		t.Errorf("Logs of an absent container: %v", err)
	}
	cts, err := cl.Containers(ctx, "kube-apiserver")
	if err != nil || len(cts) != 2 || cts[0].Attempt != 1 || cts[0].Pod != "kube-apiserver-node1" {
		t.Errorf("Containers = %+v, %v; want 2, newest (attempt 1) first", cts, err)
	}
}
