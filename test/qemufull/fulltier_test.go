package qemufull

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sigsyaml "sigs.k8s.io/yaml"

	"github.com/kubeboot/kubeboot/pkg/joinsecret"
	"github.com/kubeboot/kubeboot/test/qemu"
)

// Environment:
//
//	KUBEBOOT_IMAGE_DIR     what `make image` built (kubeboot.raw, initrd.img, build-info); required
//	KUBEBOOT_CACHE         cache root (default ~/.cache/kubeboot); the kernel is under qemu/
//	KUBEBOOT_QEMU_KERNEL   the unpacked kernel tree instead of the cached one
//	KUBEBOOT_QEMU_OUT      keep the disk, console logs and join secrets there
//	KUBEBOOT_QEMU_ACCEL    tcg or kvm (default: kvm only where it works)
//	KUBEBOOT_QEMU_BUDGET   first boot's budget, QEMU start to join secret (default 15m)
//	KUBEBOOT_BENCH_OUT     append the BENCH lines to this file

const (
	joinPort = "kubeboot.join"
	nodeName = "qemu-full"
	// The guest's view of the host on QEMU's user network.
	hostFromGuest = "10.0.2.2"
)

func configYAML(httpPort int) string {
	return fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  name: %s
# Everything is 10-30 times slower under TCG.
timeouts:
  controlPlaneComponentHealthCheck: 15m
  kubeletHealthCheck: 10m
  kubernetesAPICall: 5m
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: qemu-full
networking:
  podSubnet: 10.244.0.0/16
---
apiVersion: kubeboot.dev/v1alpha1
kind: BootConfiguration
podNetwork:
  builtin: true
joinSecret:
  sinks:
  - virtioSerial:
      name: %s
  - http:
      url: http://%s:%d/join-secret
      timeout: 10m
`, nodeName, joinPort, hostFromGuest, httpPort)
}

// metadataServer is the host side of the HTTP sink.
type metadataServer struct {
	mu   sync.Mutex
	puts []put
}

type put struct {
	at   time.Time
	path string
	body []byte
}

func (m *metadataServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		http.Error(w, "PUT only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	m.mu.Lock()
	m.puts = append(m.puts, put{at: time.Now(), path: r.URL.Path, body: body})
	m.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (m *metadataServer) Puts() []put {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]put(nil), m.puts...)
}

type fullTier struct {
	imageDir, out     string
	kernel, initrd    string
	disk              string
	accel             string
	budget            time.Duration
	server            *metadataServer
	httpPort, apiPort int
	ign               string
	bench             []string
	kernelRelease     string
	imageBuild        string
	// joinSecret is what the first boot published; the second boot's
	// API server must take the same token and CA.
	joinSecret joinsecret.Secret
	// poweredOff tells that QEMU of the first boot is gone (cleanly or
	// killed), so the disk is free for the second.
	poweredOff bool
}

func setup(t *testing.T) *fullTier {
	t.Helper()
	ft := &fullTier{imageDir: os.Getenv("KUBEBOOT_IMAGE_DIR"), server: &metadataServer{}}
	if ft.imageDir == "" {
		t.Skip("boots the golden image for many minutes: run `make qemu-full` (it builds the image and sets KUBEBOOT_IMAGE_DIR)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (QEMU's disk and the image's files are root's)")
	}
	info, err := os.ReadFile(filepath.Join(ft.imageDir, "build-info"))
	if err != nil {
		t.Fatalf("no image in %s: run `make image`: %v", ft.imageDir, err)
	}
	ft.imageBuild = string(info)
	for _, line := range strings.Split(ft.imageBuild, "\n") {
		if v, ok := strings.CutPrefix(line, "kernel "); ok {
			ft.kernelRelease = v
		}
	}
	tree, _ := qemu.KernelTree()
	k, err := qemu.FindKernel(tree)
	if err != nil {
		t.Fatalf("kernel (test/qemu/setup.sh unpacks it): %v", err)
	}
	if k.Release != ft.kernelRelease {
		t.Fatalf("the image carries modules for kernel %s but %s is %s: run `make image` again", ft.kernelRelease, tree, k.Release)
	}
	ft.out = os.Getenv("KUBEBOOT_QEMU_OUT")
	if ft.out == "" {
		ft.out = t.TempDir()
	} else if err := os.MkdirAll(ft.out, 0o755); err != nil {
		t.Fatal(err)
	}
	if ft.kernel, err = k.PVHImage(ft.out); err != nil {
		t.Logf("booting the bzImage, about 4 s slower under TCG: %v", err)
		ft.kernel = k.Image()
	}
	ft.initrd = filepath.Join(ft.imageDir, "initrd.img")
	ft.accel = qemu.Accel()
	ft.budget = 15 * time.Minute
	if b := os.Getenv("KUBEBOOT_QEMU_BUDGET"); b != "" {
		if ft.budget, err = time.ParseDuration(b); err != nil {
			t.Fatalf("KUBEBOOT_QEMU_BUDGET: %v", err)
		}
	}

	// The disk both boots use: a copy, so that the golden image stays as built.
	ft.disk = filepath.Join(ft.out, "disk.raw")
	start := time.Now()
	if err := copySparse(filepath.Join(ft.imageDir, "kubeboot.raw"), ft.disk); err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s (%s); disk copied in %s; kernel %s; accel %s",
		ft.imageDir, strings.SplitN(ft.imageBuild, "\n", 2)[0], time.Since(start).Round(time.Millisecond), ft.kernel, ft.accel)

	// The metadata server, on the host's loopback: QEMU's user network
	// takes the guest's connections to 10.0.2.2 there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: ft.server}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	ft.httpPort = l.Addr().(*net.TCPAddr).Port
	if ft.apiPort, err = freePort(); err != nil {
		t.Fatal(err)
	}
	ft.ign = filepath.Join(ft.out, "config.ign")
	if err := os.WriteFile(ft.ign, qemu.IgnitionConfig(configYAML(ft.httpPort)), 0o600); err != nil {
		t.Fatal(err)
	}
	return ft
}

func (ft *fullTier) vm(boot string) *vm {
	dir := filepath.Join(ft.out, boot)
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o755)
	join := filepath.Join(dir, "join-secret.json")
	os.WriteFile(join, nil, 0o600)
	return &vm{
		Kernel:  ft.kernel,
		Initrd:  ft.initrd,
		Disk:    ft.disk,
		Ports:   map[string]string{joinPort: join},
		FwCfg:   map[string]string{"opt/com.coreos/config": ft.ign},
		HostFwd: map[int]int{ft.apiPort: 6443},
		Console: filepath.Join(dir, "console.log"),
		Monitor: filepath.Join(dir, "monitor.sock"),
		Accel:   ft.accel,
		Memory:  "4096",
		CPUs:    2,
	}
}

func (ft *fullTier) benchf(t *testing.T, format string, args ...any) {
	line := "BENCH qemu-full " + fmt.Sprintf(format, args...)
	t.Log(line)
	ft.bench = append(ft.bench, line)
}

func TestFullTier(t *testing.T) {
	ft := setup(t)
	t.Cleanup(func() {
		if f := os.Getenv("KUBEBOOT_BENCH_OUT"); f != "" && len(ft.bench) > 0 {
			if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				fmt.Fprintf(fh, "# %s\n%s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(ft.bench, "\n"))
				fh.Close()
			}
		}
	})
	t.Run("first-boot", ft.firstBoot)
	if ft.joinSecret.Token == "" || !ft.poweredOff {
		t.Fatal("first boot did not publish a join secret and stop: the second boot would tell nothing")
	}
	t.Run("second-boot", ft.secondBoot)
}

// phaseLine matches kubeboot's phase lines as journald forwards them to
// the console: "[  57.84] kubeboot[298]: [userdata] ...", possibly after
// other output on the same line (getty's login prompt).
var phaseLine = regexp.MustCompile(`\[\s*([0-9.]+)\]\s+kubeboot\[\d+\]: \[([a-z-]+)\] (.*)$`)

// consoleLines returns the console's lines (carriage returns dropped).
func consoleLines(file string) []string {
	data, _ := os.ReadFile(file)
	data = bytes.ReplaceAll(data, []byte("\r"), nil)
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

type phaseSeen struct {
	uptime float64
	name   string
	text   string
}

func phasesOn(file string) []phaseSeen {
	var out []phaseSeen
	for _, l := range consoleLines(file) {
		if m := phaseLine.FindStringSubmatch(l); m != nil {
			up, _ := strconv.ParseFloat(m[1], 64)
			out = append(out, phaseSeen{uptime: up, name: m[2], text: m[3]})
		}
	}
	return out
}

// lineOn returns the first console line containing s.
func lineOn(file, s string) (string, bool) {
	for _, l := range consoleLines(file) {
		if strings.Contains(l, s) {
			return l, true
		}
	}
	return "", false
}

func parseSecret(source string, data []byte) (joinsecret.Secret, bool) {
	if len(bytes.TrimSpace(data)) == 0 {
		return joinsecret.Secret{}, false
	}
	s, err := joinsecret.Parse(source, data)
	if err != nil {
		return joinsecret.Secret{}, false
	}
	return s, true
}

func (ft *fullTier) firstBoot(t *testing.T) {
	v := ft.vm("boot1")
	join := v.Ports[joinPort]
	if err := v.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("boot 1: %s", v.CommandLine())
	defer v.Kill()
	failed := true
	defer func() {
		if failed || t.Failed() {
			ft.howFar(t, v)
		}
	}()

	var (
		firstPhase, virtioAt, httpAt time.Duration
		virtio, viaHTTP              joinsecret.Secret
		lastPhase                    string
	)
	deadline := time.Now().Add(ft.budget)
	progress := time.Now()
	for virtioAt == 0 || httpAt == 0 {
		if v.Exited() {
			t.Fatalf("QEMU exited before the join secret arrived (after %s): %s", v.Since().Round(time.Second), v.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no join secret within %s of QEMU's start (virtio %v, http %v); last phase line: %q", ft.budget, virtioAt != 0, httpAt != 0, lastPhase)
		}
		time.Sleep(time.Second)
		phases := phasesOn(v.Console)
		if len(phases) > 0 {
			if firstPhase == 0 {
				firstPhase = v.Since()
			}
			p := phases[len(phases)-1]
			if cur := p.name + ": " + p.text; cur != lastPhase {
				lastPhase = cur
				t.Logf("boot 1 +%s (guest %.1fs): [%s] %s", v.Since().Round(time.Second), p.uptime, p.name, truncate(p.text, 160))
			}
		}
		if virtioAt == 0 {
			data, _ := os.ReadFile(join)
			if s, ok := parseSecret("virtio-serial", data); ok {
				virtio, virtioAt = s, v.Since()
			}
		}
		if httpAt == 0 {
			for _, p := range ft.server.Puts() {
				if s, ok := parseSecret("http", p.body); ok {
					viaHTTP, httpAt = s, v.Since()
					if p.path != "/join-secret" {
						t.Errorf("HTTP sink: PUT to %s, want /join-secret", p.path)
					}
				}
			}
		}
		if time.Since(progress) > time.Minute {
			progress = time.Now()
			t.Logf("boot 1 +%s: waiting (virtio %v, http %v)", v.Since().Round(time.Second), virtioAt != 0, httpAt != 0)
		}
	}
	ft.benchf(t, "boot1 QEMU start -> first kubeboot phase line on the console: %.1f s", firstPhase.Seconds())
	ft.benchf(t, "boot1 QEMU start -> join secret on the host: virtio-serial %.1f s, HTTP PUT %.1f s", virtioAt.Seconds(), httpAt.Seconds())

	// Both sinks carry the same secret, and it is a real one: the API
	// server (forwarded to the host) serves a CA with that hash and
	// accepts the bootstrap token.
	if virtio.Token != viaHTTP.Token || strings.Join(virtio.CACertHashes, ",") != strings.Join(viaHTTP.CACertHashes, ",") {
		t.Errorf("the two sinks got different secrets: virtio %+v, http %+v", virtio.Redacted(), viaHTTP.Redacted())
	}
	if virtio.ClusterName != "qemu-full" {
		t.Errorf("clusterName %q, want qemu-full", virtio.ClusterName)
	}
	if !strings.HasPrefix(virtio.APIServerEndpoint, "10.0.2.15:") {
		t.Errorf("apiServerEndpoint %q: want the guest's DHCP address 10.0.2.15", virtio.APIServerEndpoint)
	}
	ft.joinSecret = virtio
	ft.checkAPIServer(t, virtio, 2*time.Minute)

	// Phase lines and the timeline on the serial console.
	phases := phasesOn(v.Console)
	seen := map[string]bool{}
	var uptime float64
	for _, p := range phases {
		seen[p.name] = true
		if p.name == "join-secret" && uptime == 0 {
			uptime = p.uptime
		}
	}
	for _, want := range []string{"userdata", "config", "host", "preflight", "images", "certs", "etcd", "control-plane",
		"kubelet-start", "wait-control-plane", "bootstrap-token", "addons", "join-secret"} {
		if !seen[want] {
			t.Errorf("no [%s] phase line on the serial console", want)
		}
	}
	if l, ok := lineOn(v.Console, "[userdata]"); ok && !strings.Contains(l, "fw_cfg") {
		t.Errorf("userdata did not come from fw_cfg: %s", l)
	}
	timeline := ft.timeline(v.Console)
	if len(timeline) == 0 {
		t.Errorf("no timeline (PHASE DURATION RESULT) on the serial console")
	}
	for _, l := range timeline {
		t.Logf("timeline: %s", l)
	}
	if uptime > 0 {
		ft.benchf(t, "boot1 guest uptime at the join-secret phase line: %.1f s", uptime)
	}

	// kubeboot.service completes: the status line follows.
	status := ft.waitLine(t, v, "kubeboot-status:", 3*time.Minute)
	if !strings.Contains(status, "first boot completed") {
		t.Errorf("status line after first boot: %s", status)
	}
	if data, _ := os.ReadFile(v.Console); bytes.Contains(data, []byte("FAILED")) {
		for _, l := range consoleLines(v.Console) {
			if strings.Contains(l, "FAILED") {
				t.Logf("console: %s", l)
			}
		}
	}

	clean, took := v.PowerOff(3 * time.Minute)
	ft.poweredOff = true
	ft.benchf(t, "boot1 ACPI power-off -> QEMU exit: %.1f s (clean %v)", took.Seconds(), clean)
	if !clean {
		t.Logf("the guest did not power off within 3 min of the ACPI button: QEMU killed (the second boot replays ext4's journal)")
	}
	failed = false
}

func (ft *fullTier) secondBoot(t *testing.T) {
	putsBefore := len(ft.server.Puts())
	v := ft.vm("boot2")
	join := v.Ports[joinPort]
	if err := v.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("boot 2: %s", v.CommandLine())
	defer v.Kill()
	failed := true
	defer func() {
		if failed || t.Failed() {
			ft.howFar(t, v)
		}
	}()

	status := ft.waitLine(t, v, "kubeboot-status:", 10*time.Minute)
	statusAt := v.Since()
	if !strings.Contains(status, "node already initialized") {
		t.Errorf("second boot: kubeboot-status says %q, want \"node already initialized\"", status)
	}
	ft.benchf(t, "boot2 QEMU start -> status line (kubeboot skipped by its stamp): %.1f s", statusAt.Seconds())

	// The control plane comes back from the disk: the kubelet (enabled by
	// kubeboot at first boot) restarts the static pods.
	ft.checkAPIServer(t, ft.joinSecret, 10*time.Minute)
	ft.benchf(t, "boot2 QEMU start -> API server /readyz through the bootstrap token: %.1f s", v.Since().Seconds())

	if p := phasesOn(v.Console); len(p) > 0 {
		t.Errorf("kubeboot ran again on the second boot: [%s] %s", p[0].name, p[0].text)
	}
	if data, _ := os.ReadFile(join); len(bytes.TrimSpace(data)) > 0 {
		t.Errorf("a join secret was written again to the virtio-serial port on the second boot")
	}
	if n := len(ft.server.Puts()); n != putsBefore {
		t.Errorf("the HTTP sink got %d PUTs on the second boot, want none", n-putsBefore)
	}
	clean, took := v.PowerOff(3 * time.Minute)
	t.Logf("boot 2 power-off: clean %v in %s", clean, took.Round(time.Second))
	failed = false
}

// waitLine waits for a console line containing s.
func (ft *fullTier) waitLine(t *testing.T, v *vm, s string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if l, ok := lineOn(v.Console, s); ok {
			return l
		}
		if v.Exited() {
			t.Fatalf("QEMU exited before %q appeared on the console: %s", s, v.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q did not appear on the console within %s", s, timeout)
		}
		time.Sleep(time.Second)
	}
}

// checkAPIServer reads cluster-info as kubeadm join's discovery does
// (anonymously), checks that its CA has the join secret's hash, then
// asks /readyz with the CA pinned and the bootstrap token.
func (ft *fullTier) checkAPIServer(t *testing.T, s joinsecret.Secret, timeout time.Duration) {
	t.Helper()
	base := fmt.Sprintf("https://127.0.0.1:%d", ft.apiPort)
	insecure := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	var last error
	deadline := time.Now().Add(timeout)
	for ; time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		var ca *x509.Certificate
		ca, last = clusterInfoCA(insecure, base)
		if last != nil {
			continue
		}
		sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
		hash := "sha256:" + hex.EncodeToString(sum[:])
		if !contains(s.CACertHashes, hash) {
			t.Fatalf("cluster-info's CA has hash %s; the join secret pins %v", hash, s.CACertHashes)
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		pinned := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "kubernetes"}}}
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+s.Token)
		resp, err := pinned.Do(req)
		if err != nil {
			last = err
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "ok" {
			return
		}
		last = fmt.Errorf("/readyz: %s: %s", resp.Status, truncate(string(body), 300))
	}
	t.Fatalf("API server through 127.0.0.1:%d: %v", ft.apiPort, last)
}

func clusterInfoCA(c *http.Client, base string) (*x509.Certificate, error) {
	resp, err := c.Get(base + "/api/v1/namespaces/kube-public/configmaps/cluster-info")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cluster-info: %s: %s", resp.Status, truncate(string(body), 300))
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal(body, &cm); err != nil {
		return nil, fmt.Errorf("cluster-info: %w", err)
	}
	var kc struct {
		Clusters []struct {
			Cluster struct {
				CAData string `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
	}
	if err := sigsyaml.Unmarshal([]byte(cm.Data["kubeconfig"]), &kc); err != nil || len(kc.Clusters) == 0 {
		return nil, fmt.Errorf("cluster-info: kubeconfig: %v", err)
	}
	pemData, err := base64.StdEncoding.DecodeString(kc.Clusters[0].Cluster.CAData)
	if err != nil {
		return nil, fmt.Errorf("cluster-info: CA data: %w", err)
	}
	block, _ := pem.Decode(pemData)
	if block == nil {
		return nil, fmt.Errorf("cluster-info: CA data is not PEM")
	}
	return x509.ParseCertificate(block.Bytes)
}

// timeline returns kubeboot's timeline table from the console.
func (ft *fullTier) timeline(console string) []string {
	var out []string
	in := false
	for _, l := range consoleLines(console) {
		_, rest, ok := strings.Cut(l, "kubeboot[")
		if !ok {
			continue
		}
		_, text, ok := strings.Cut(rest, "]: ")
		if !ok {
			continue
		}
		if strings.HasPrefix(text, "PHASE") && strings.Contains(text, "DURATION") {
			in = true
		}
		if in {
			out = append(out, strings.TrimSpace(text))
			if strings.HasPrefix(text, "total") {
				in = false
			}
		}
	}
	return out
}

// howFar logs where a boot got: kubeboot's phase lines, the units that
// failed and the end of the console.
func (ft *fullTier) howFar(t *testing.T, v *vm) {
	for _, p := range phasesOn(v.Console) {
		t.Logf("phase line (guest %.1fs): [%s] %s", p.uptime, p.name, truncate(p.text, 300))
	}
	for _, l := range consoleLines(v.Console) {
		if strings.Contains(l, "FAILED") || strings.Contains(l, "Failed to start") {
			t.Logf("console: %s", l)
		}
	}
	t.Logf("QEMU ran %s; %s\n--- last 60 console lines (%s) ---\n%s\n--- end ---",
		v.Since().Round(time.Second), v.CommandLine(), v.Console, tail(consoleLines(v.Console), 60))
}

func tail(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
