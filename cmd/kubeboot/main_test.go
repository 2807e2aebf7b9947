package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/kubeboot/kubeboot/firstboot"
)

var update = flag.Bool("update", false, "rewrite golden files")

var binary string

// TestMain builds kubeboot once; the tests run it as users do, so exit
// statuses, signals and stdout are the real ones.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kubeboot-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "kubeboot")
	cmd := exec.Command("go", "build", "-o", binary, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
	signaled       bool
}

func kubeboot(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.signaled = true
		}
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestExitStatuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"version", []string{"version"}, 0, "Kubernetes v1.37.2"},
		{"version json", []string{"version", "-o", "json"}, 0, `"kubernetesVersion": "v1.37.2"`},
		{"bad output", []string{"version", "-o", "xml"}, 2, "unknown output format"},
		{"unknown flag", []string{"init", "--frobnicate"}, 2, "unknown flag"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"unknown phase", []string{"init", "--dry-run", "--root", "ROOT", "--skip-phases", "certs,nope"}, 2, "unknown phase(s) nope"},
		{"missing file", []string{"config", "validate", "/nonexistent.yaml"}, 2, "no such file"},
		{"extra args", []string{"config", "validate"}, 2, "accepts 1 arg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, a := range tc.args {
				if a == "ROOT" {
					tc.args[i] = t.TempDir()
				}
			}
			r := kubeboot(t, nil, "", tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", r.code, tc.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout+r.stderr, tc.want) {
				t.Errorf("output lacks %q:\n%s%s", tc.want, r.stdout, r.stderr)
			}
		})
	}
}

func TestPrintDefaultsValidates(t *testing.T) {
	r := kubeboot(t, nil, "", "config", "print-defaults")
	if r.code != 0 {
		t.Fatalf("print-defaults: %d %s", r.code, r.stderr)
	}
	v := kubeboot(t, nil, r.stdout, "config", "validate", "-")
	if v.code != 0 || !strings.Contains(v.stdout, "<stdin>: valid") {
		t.Fatalf("validate -: %d %s %s", v.code, v.stdout, v.stderr)
	}
}

// TestBadInputWritesNothing runs every invalid configuration of the config
// package through `init`: exit status 2, a message naming the field, and
// an untouched root.
func TestBadInputWritesNothing(t *testing.T) {
	dir := "../../pkg/config/testdata/invalid"
	f, err := os.Open(filepath.Join(dir, "want.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		name, want, _ := strings.Cut(sc.Text(), "\t")
		n++
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			root := t.TempDir()
			r := kubeboot(t, nil, "", "init", "--dry-run", "--root", root, "--config", filepath.Join(dir, name))
			if r.code != 2 {
				t.Errorf("exit %d, want 2: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
			}
			entries, _ := os.ReadDir(root)
			if len(entries) != 0 {
				t.Errorf("root not empty after bad input: %v", entries)
			}
		})
	}
	if n < 40 {
		t.Fatalf("only %d cases", n)
	}
}

// snapshot maps each file under root to its digest, mode, inode and mtime.
type fileState struct {
	digest string
	mode   fs.FileMode
	ino    uint64
	mtime  int64
}

func snapshot(t *testing.T, root string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := os.ReadFile(p)
		st, _ := os.Stat(p)
		sum := sha256.Sum256(data)
		sys := st.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(root, p)
		out[rel] = fileState{hex.EncodeToString(sum[:]), st.Mode(), sys.Ino, st.ModTime().UnixNano()}
		return nil
	})
	return out
}

func TestSecondRunChangesNothing(t *testing.T) {
	root := t.TempDir()
	args := []string{"init", "--dry-run", "--root", root, "--config", "testdata/node.yaml"}
	if r := kubeboot(t, nil, "", args...); r.code != 0 {
		t.Fatalf("first run: %s%s", r.stdout, r.stderr)
	}
	before := snapshot(t, root)
	r := kubeboot(t, nil, "", args...)
	if r.code != 0 {
		t.Fatalf("second run: %s%s", r.stdout, r.stderr)
	}
	after := snapshot(t, root)
	if len(before) != len(after) {
		t.Errorf("file count %d → %d", len(before), len(after))
	}
	for p, b := range before {
		if a := after[p]; a != b {
			t.Errorf("%s changed on the second run: %+v → %+v", p, b, a)
		}
	}
	for _, phase := range []string{"certs", "kubeconfig", "audit", "encryption", "etcd", "control-plane", "pod-network"} {
		if !strings.Contains(r.stdout, "["+phase+"] already done") {
			t.Errorf("phase %s not reported as already done:\n%s", phase, r.stdout)
		}
	}
}

func TestSecretsAreNotWorldReadableOrPrinted(t *testing.T) {
	root := t.TempDir()
	r := kubeboot(t, nil, "", "init", "--dry-run", "--root", root, "--config", "testdata/node.yaml", "-v", "2")
	if r.code != 0 {
		t.Fatalf("%s%s", r.stdout, r.stderr)
	}
	secretFile := regexp.MustCompile(`\.key$|^etc/kubernetes/[^/]+\.conf$|encryption/config\.yaml$|join-secret\.json$|bootstrap-tokens\.json$|certificate-key$`)
	for p, st := range snapshot(t, root) {
		if secretFile.MatchString(p) && !strings.HasSuffix(p, "10-kubeadm.conf") && st.mode.Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, st.mode.Perm())
		}
	}
	var js struct{ Token, CertificateKey string }
	data, _ := os.ReadFile(filepath.Join(root, "var/lib/kubeboot/join-secret.json"))
	if err := json.Unmarshal(data, &js); err != nil || js.Token == "" || js.CertificateKey == "" {
		t.Fatalf("join secret: %v %s", err, data)
	}
	_, secret, _ := strings.Cut(js.Token, ".")
	for _, leak := range []string{secret, js.CertificateKey} {
		if strings.Contains(r.stdout+r.stderr, leak) {
			t.Errorf("output leaks a secret")
		}
	}
}

// TestKilledAfterEachPhaseConverges kills kubeboot with SIGKILL right after
// each phase, re-runs it, and expects the same set of files as an
// uninterrupted run and the CA that existed before the crash.
func TestKilledAfterEachPhaseConverges(t *testing.T) {
	ref := t.TempDir()
	args := func(root string) []string {
		return []string{"init", "--dry-run", "--root", root, "--config", "testdata/node.yaml"}
	}
	if r := kubeboot(t, nil, "", args(ref)...); r.code != 0 {
		t.Fatal(r.stderr)
	}
	want := keys(snapshot(t, ref))
	for _, p := range firstboot.InitPhases() {
		t.Run(p.Name, func(t *testing.T) {
			root := t.TempDir()
			r := kubeboot(t, []string{firstboot.FaultEnv + "=" + p.Name}, "", args(root)...)
			if !r.signaled {
				t.Fatalf("not killed after %s: exit %d\n%s", p.Name, r.code, r.stdout)
			}
			caBefore, _ := os.ReadFile(filepath.Join(root, "etc/kubernetes/pki/ca.key"))
			if r := kubeboot(t, nil, "", args(root)...); r.code != 0 {
				t.Fatalf("re-run after a kill: %s%s", r.stdout, r.stderr)
			}
			got := keys(snapshot(t, root))
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("files differ from an uninterrupted run:\n%s\nvs\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			caAfter, _ := os.ReadFile(filepath.Join(root, "etc/kubernetes/pki/ca.key"))
			if len(caBefore) > 0 && !bytes.Equal(caBefore, caAfter) {
				t.Errorf("CA key replaced after a crash in %s", p.Name)
			}
			if again := snapshot(t, root); len(again) != len(got) {
				t.Errorf("unstable")
			}
		})
	}
}

func keys(m map[string]fileState) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestResetRemovesEverythingInitWrote(t *testing.T) {
	root := t.TempDir()
	args := []string{"--root", root, "--config", "testdata/node.yaml"}
	if r := kubeboot(t, nil, "", append([]string{"init", "--dry-run"}, args...)...); r.code != 0 {
		t.Fatal(r.stderr)
	}
	dry := kubeboot(t, nil, "", append([]string{"reset", "--dry-run"}, args...)...)
	if dry.code != 0 || !strings.Contains(dry.stdout, "removes /etc/kubernetes/manifests/etcd.yaml") {
		t.Fatalf("reset --dry-run: %s%s", dry.stdout, dry.stderr)
	}
	if n := len(snapshot(t, root)); n < 40 {
		t.Fatalf("reset --dry-run removed files: %d left", n)
	}
	// A file kubeboot did not write stays.
	os.MkdirAll(filepath.Join(root, "etc/cni/net.d"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/cni/net.d/99-other.conflist"), []byte("{}"), 0o644)
	if r := kubeboot(t, nil, "", append([]string{"reset"}, args...)...); r.code != 0 {
		t.Fatalf("reset: %s%s", r.stdout, r.stderr)
	}
	left := keys(snapshot(t, root))
	if len(left) != 1 || left[0] != "etc/cni/net.d/99-other.conflist" {
		t.Errorf("after reset: %v", left)
	}
	if r := kubeboot(t, nil, "", append([]string{"init", "--dry-run"}, args...)...); r.code != 0 {
		t.Fatalf("init after reset: %s", r.stderr)
	}
}

// TestUserdataFormats renders the node each userdata format describes.
func TestUserdataFormats(t *testing.T) {
	for _, tc := range []struct{ file, node string }{
		{"ignition.ign", "ud-ignition"},
		{"cloud-config.yaml", "ud-cloud-config"},
		{"plain.yaml", "ud-plain"},
		{"multipart.txt", "ud-multipart"},
		{"../../../../ignition/control-plane.ign", ""},
	} {
		t.Run(tc.file, func(t *testing.T) {
			root := t.TempDir()
			r := kubeboot(t, nil, "", "init", "--dry-run", "--root", root, "--userdata", filepath.Join("testdata/userdata", tc.file))
			if r.code != 0 {
				t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
			}
			etcd, err := os.ReadFile(filepath.Join(root, "etc/kubernetes/manifests/etcd.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.node != "" && !strings.Contains(string(etcd), "--name="+tc.node) {
				t.Errorf("etcd manifest is not for node %s", tc.node)
			}
			if tc.node == "ud-cloud-config" {
				if motd, _ := os.ReadFile(filepath.Join(root, "etc/motd")); string(motd) != "hello from cloud-config" {
					t.Errorf("write_files not applied under the root: %q", motd)
				}
			}
			if !strings.Contains(r.stdout, "[userdata] ") || strings.Contains(r.stdout, "[userdata] no userdata") {
				t.Errorf("userdata phase did not apply the userdata:\n%s", r.stdout)
			}
		})
	}
}

// TestClonedDiskRefused: a NoCloud instance-id other than the one that
// initialised the disk means a cloned image; kubeboot refuses to reuse the
// old identity unless told to.
func TestClonedDiskRefused(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "proc"), 0o755)
	os.MkdirAll(filepath.Join(root, "seed"), 0o755)
	os.WriteFile(filepath.Join(root, "proc/cmdline"), []byte("console=ttyS0 ds=nocloud;s=file:///seed/\n"), 0o644)
	userData, _ := os.ReadFile("testdata/userdata/cloud-config.yaml")
	os.WriteFile(filepath.Join(root, "seed/user-data"), userData, 0o644)
	meta := func(id string) {
		os.WriteFile(filepath.Join(root, "seed/meta-data"), []byte("instance-id: "+id+"\nlocal-hostname: cloned\n"), 0o644)
	}
	meta("i-first")
	if r := kubeboot(t, nil, "", "init", "--root", root, "--skip-phases", "host,preflight,images,kubelet-start,wait-control-plane,upload-config,upload-certs,mark-control-plane,bootstrap-token,addons,join-secret"); r.code != 0 {
		t.Fatalf("first boot: %s%s", r.stdout, r.stderr)
	}
	caKey, _ := os.ReadFile(filepath.Join(root, "etc/kubernetes/pki/ca.key"))
	meta("i-second")
	r := kubeboot(t, nil, "", "init", "--root", root, "--skip-phases", "host,preflight,images,kubelet-start,wait-control-plane,upload-config,upload-certs,mark-control-plane,bootstrap-token,addons,join-secret")
	if r.code == 0 || !strings.Contains(r.stderr, `initialised by instance "i-first" and now runs as "i-second"`) {
		t.Fatalf("cloned disk accepted: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(root, "etc/kubernetes/pki/ca.key")); !bytes.Equal(caKey, after) {
		t.Errorf("the refused run changed the CA")
	}
	r = kubeboot(t, nil, "", "init", "--root", root, "--allow-new-instance", "--skip-phases", "host,preflight,images,kubelet-start,wait-control-plane,upload-config,upload-certs,mark-control-plane,bootstrap-token,addons,join-secret")
	if r.code != 0 {
		t.Fatalf("--allow-new-instance: %s%s", r.stdout, r.stderr)
	}
}
