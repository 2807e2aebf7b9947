// Package controlplane runs the real Kubernetes control plane from the
// static pod manifests kubeboot renders: each manifest's command line is
// executed as a process, with only host paths mapped into the test root.
// If a component rejects a flag, a certificate or a kubeconfig, the
// component exits and the test fails: that is the point.
package controlplane

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// Bins says where the project-built binaries are.
type Bins struct {
	K8s  string // kube-apiserver, kube-controller-manager, kube-scheduler, kubeadm
	Etcd string // etcd
}

// BinsFromEnv reads the directories the make target exports; ok is false
// when they are missing (the test then skips with the reason).
func BinsFromEnv() (Bins, string, bool) {
	b := Bins{K8s: os.Getenv("KUBEBOOT_K8S_BIN"), Etcd: os.Getenv("KUBEBOOT_ETCD_BIN")}
	for _, p := range []string{filepath.Join(b.K8s, "kube-apiserver"), filepath.Join(b.Etcd, "etcd")} {
		if _, err := os.Stat(p); err != nil {
			return b, "needs the Kubernetes binaries: run `make e2e-controlplane` (KUBEBOOT_K8S_BIN and KUBEBOOT_ETCD_BIN unset or incomplete)", false
		}
	}
	return b, "", true
}

func (b Bins) path(name string) string {
	if name == "etcd" {
		return filepath.Join(b.Etcd, name)
	}
	return filepath.Join(b.K8s, name)
}

// Component is one running static pod.
type Component struct {
	Name    string
	Args    []string
	Log     string
	Started time.Time
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// Exited reports whether the process has ended, and how.
func (c *Component) Exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
}

// Tail returns the last lines of the component's log.
func (c *Component) Tail(n int) string {
	data, _ := os.ReadFile(c.Log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop sends SIGTERM, then SIGKILL after a grace period.
func (c *Component) Stop() {
	if c.cmd.Process == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

// Plane is the set of processes.
type Plane struct {
	Root, LogDir string
	Bins         Bins
	mu           sync.Mutex
	Components   map[string]*Component
}

// ReadManifest decodes a rendered manifest strictly.
func ReadManifest(path string) (*corev1.Pod, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pod corev1.Pod
	if err := sigsyaml.UnmarshalStrict(data, &pod); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(pod.Spec.Containers) != 1 {
		return nil, fmt.Errorf("%s: %d containers", path, len(pod.Spec.Containers))
	}
	return &pod, nil
}

// MapArgs turns the container's command into a host command: each path
// under a volume mount becomes the volume's host path under root. Nothing
// else is changed.
func MapArgs(pod *corev1.Pod, root string) ([]string, error) {
	c := pod.Spec.Containers[0]
	hostPaths := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	type mapping struct{ from, to string }
	var maps []mapping
	for _, m := range c.VolumeMounts {
		hp, ok := hostPaths[m.Name]
		if !ok {
			return nil, fmt.Errorf("%s: volume %s is not a hostPath", pod.Name, m.Name)
		}
		maps = append(maps, mapping{m.MountPath, filepath.Join(root, hp)})
	}
	// Longest mount first, so nested mounts win.
	sort.Slice(maps, func(i, j int) bool { return len(maps[i].from) > len(maps[j].from) })
	args := append(append([]string{}, c.Command...), c.Args...)
	for i, a := range args {
		name, val, isFlag := strings.Cut(a, "=")
		if !isFlag || !strings.HasPrefix(name, "--") {
			continue
		}
		var parts []string
		for _, part := range strings.Split(val, ",") {
			for _, m := range maps {
				if part == m.from || strings.HasPrefix(part, m.from+"/") {
					part = m.to + strings.TrimPrefix(part, m.from)
					break
				}
			}
			parts = append(parts, part)
		}
		args[i] = name + "=" + strings.Join(parts, ",")
	}
	return args, nil
}

// Start runs one manifest's command line.
func (p *Plane) Start(manifest string) (*Component, error) {
	pod, err := ReadManifest(manifest)
	if err != nil {
		return nil, err
	}
	args, err := MapArgs(pod, p.Root)
	if err != nil {
		return nil, err
	}
	// Directories the kubelet would create for DirectoryOrCreate volumes.
	for _, v := range pod.Spec.Volumes {
		if v.HostPath != nil && v.HostPath.Type != nil && *v.HostPath.Type == corev1.HostPathDirectoryOrCreate {
			os.MkdirAll(filepath.Join(p.Root, v.HostPath.Path), 0o700)
		}
	}
	name := pod.Name
	log := filepath.Join(p.LogDir, name+".log")
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(p.Bins.path(args[0]), args[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	env := os.Environ()
	for _, e := range pod.Spec.Containers[0].Env {
		env = append(env, e.Name+"="+e.Value)
	}
	cmd.Env = env
	c := &Component{Name: name, Args: args, Log: log, cmd: cmd, done: make(chan struct{}), Started: time.Now()}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	p.mu.Lock()
	if p.Components == nil {
		p.Components = map[string]*Component{}
	}
	p.Components[name] = c
	p.mu.Unlock()
	return c, nil
}

// StopAll stops the API server before etcd: an API server without etcd
// retries for a long time before it exits.
func (p *Plane) StopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range []string{"kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		if c, ok := p.Components[n]; ok {
			c.Stop()
		}
	}
}

// Get returns a started component.
func (p *Plane) Get(name string) *Component {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.Components[name]
}
