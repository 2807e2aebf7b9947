package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Node is one machine of the cluster: an agent process in its own network,
// mount and UTS namespaces, with containerd running, and the processes the
// test starts in it.
type Node struct {
	Name string // also its hostname, e.g. kb-1
	IP   string // on the bridge, e.g. 10.251.0.11
	Dir  string // on the host: the node's logs

	t      *testing.T
	cgroup string // relative, e.g. /kbc-4242/kb-1
	procs  string // the pids cgroup's cgroup.procs, which every process of the node joins

	agent     *exec.Cmd
	agentIn   io.WriteCloser
	agentDone chan struct{}
	agentErr  error

	mu   sync.Mutex
	sups map[string]*supervised
}

// PID is the agent's process id: /proc/PID/ns/* are the node's namespaces.
func (n *Node) PID() int { return n.agent.Process.Pid }

// CgroupRoot is the node's kubelet --cgroup-root (e.g. /kbc-4242/kb-1),
// the same relative path in every hierarchy.
func (n *Node) CgroupRoot() string { return n.cgroup }

// Path is where the test process finds the node's file p, through the
// agent's root.
func (n *Node) Path(p string) string { return fmt.Sprintf("/proc/%d/root%s", n.PID(), p) }

// ReadFile reads the node's file p.
func (n *Node) ReadFile(p string) ([]byte, error) { return os.ReadFile(n.Path(p)) }

// WriteFile writes the node's file p, creating its directory.
func (n *Node) WriteFile(p string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(n.Path(p)), 0o755); err != nil {
		return err
	}
	return os.WriteFile(n.Path(p), data, mode)
}

// Command runs args inside the node: its namespaces (nsenter), and its
// cgroup in the pids hierarchy, so that teardown finds whatever it leaves
// running.
func (n *Node) Command(ctx context.Context, args ...string) *exec.Cmd {
	ns := []string{"-t", strconv.Itoa(n.PID()), "-m", "-n", "-u", "--",
		"/bin/sh", "-c", `echo $$ > "$0" && exec "$@"`, n.procs}
	return exec.CommandContext(ctx, "nsenter", append(ns, args...)...)
}

// Run runs args inside the node and returns their combined output.
func (n *Node) Run(ctx context.Context, args ...string) (string, error) {
	out, err := n.Command(ctx, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s: %w\n%s", n.Name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// supervised is a long-running process of the node; restarted when it
// exits, if asked, as systemd's Restart=always would.
type supervised struct {
	name    string
	mu      sync.Mutex
	cmd     *exec.Cmd
	stopped bool
	stop    chan struct{}
	done    chan struct{}
}

// Start starts a long-running process inside the node, its output in
// Dir/NAME.log (appended to), with env added to the test's environment.
func (n *Node) Start(name string, args, env []string) error {
	return n.start(name, func() ([]string, error) { return args, nil }, env, false)
}

func (n *Node) start(name string, args func() ([]string, error), env []string, restart bool) error {
	n.mu.Lock()
	if s := n.sups[name]; s != nil {
		select {
		case <-s.done:
		default:
			n.mu.Unlock()
			return fmt.Errorf("%s: %s is running already", n.Name, name)
		}
	}
	s := &supervised{name: name, stop: make(chan struct{}), done: make(chan struct{})}
	n.sups[name] = s
	n.mu.Unlock()

	logf, err := os.OpenFile(filepath.Join(n.Dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		close(s.done)
		return err
	}
	run := func() (*exec.Cmd, error) {
		a, err := args()
		if err != nil {
			return nil, err
		}
		cmd := n.Command(context.Background(), a...)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.Env = append(os.Environ(), env...)
		// Its own process group: Stop signals what it forked too.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.stopped {
			return nil, errors.New("stopped")
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("%s: start %s: %w", n.Name, name, err)
		}
		s.cmd = cmd
		return cmd, nil
	}
	first, err := run()
	if err != nil {
		logf.Close()
		close(s.done)
		return err
	}
	go func() {
		defer close(s.done)
		defer logf.Close()
		cmd := first
		for {
			err := cmd.Wait()
			s.mu.Lock()
			stopped := s.stopped
			s.mu.Unlock()
			if !restart || stopped {
				return
			}
			fmt.Fprintf(logf, "==== harness: %s exited (%v); restarting in 2 s\n", name, err)
			for {
				select {
				case <-s.stop:
					return
				case <-time.After(2 * time.Second):
				}
				if cmd, err = run(); err == nil {
					break
				}
				fmt.Fprintf(logf, "==== harness: restart %s: %v\n", name, err)
			}
		}
	}()
	return nil
}

// Stop stops a process Start started: SIGTERM to its process group, SIGKILL
// after 10 s. Stopping what is not running is not an error.
func (n *Node) Stop(name string) { n.stop(name, 10*time.Second) }

func (n *Node) stop(name string, grace time.Duration) {
	n.mu.Lock()
	s := n.sups[name]
	n.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	if !s.stopped {
		s.stopped = true
		close(s.stop)
	}
	cmd := s.cmd
	s.mu.Unlock()
	if cmd != nil && grace > 0 {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
			return
		case <-time.After(grace):
		}
	}
	if cmd != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	<-s.done
}

// Running tells whether a process Start started is running.
func (n *Node) Running(name string) bool {
	n.mu.Lock()
	s := n.sups[name]
	n.mu.Unlock()
	if s == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Tail returns the last lines of Dir/NAME.log.
func (n *Node) Tail(name string, lines int) string {
	data, _ := os.ReadFile(filepath.Join(n.Dir, name+".log"))
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// StartKubelet (re)starts the node's kubelet with the command line of
// kubelet.service and its kubeadm drop-in, the flags of the node's
// /var/lib/kubelet/kubeadm-flags.env, and --cgroup-root=CgroupRoot(). It
// is restarted 2 s after it exits (re-reading the flags), as systemd would,
// until Stop("kubelet").
func (n *Node) StartKubelet(k8sBin string) error {
	n.stop("kubelet", 0)
	return n.start("kubelet", func() ([]string, error) { return n.kubeletArgs(k8sBin) },
		[]string{"PATH=" + k8sBin + ":" + os.Getenv("PATH")}, true)
}

func (n *Node) kubeletArgs(k8sBin string) ([]string, error) {
	env, err := n.ReadFile("/var/lib/kubelet/kubeadm-flags.env")
	if err != nil {
		return nil, err
	}
	flags := strings.Trim(strings.TrimPrefix(strings.TrimSpace(string(env)), "KUBELET_KUBEADM_ARGS="), `"`)
	args := []string{filepath.Join(k8sBin, "kubelet"),
		"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf", "--kubeconfig=/etc/kubernetes/kubelet.conf",
		"--config=/var/lib/kubelet/config.yaml"}
	args = append(args, strings.Fields(flags)...)
	// Last, so that it wins over the same flag in the env file.
	return append(args, "--cgroup-root="+n.cgroup), nil
}

// Boot runs args inside the node — `kubeboot init`, `kubeboot join`, a
// real `kubeadm join` — with k8sBin first in PATH, logs each line of its
// output (t.Log and Dir/boot.log), and starts the kubelet (StartKubelet)
// once the output says kubelet-start has written the kubelet's files: what
// systemd does on a real machine. It returns the output; the error says
// how the command or the kubelet's start failed.
//
// The signal is a line starting with "[kubelet-start]" that is not one of
// kubeadm's "Writing ..." lines (printed before the file is written) while
// /var/lib/kubelet/config.yaml and kubeadm-flags.env exist: kubeboot's
// "[kubelet-start] warning: kubelet not started ..." and kubeadm's
// "[kubelet-start] Starting the kubelet" (init and join alike).
func (n *Node) Boot(ctx context.Context, k8sBin string, args ...string) (string, error) {
	cmd := n.Command(ctx, args...)
	cmd.Env = append(os.Environ(), "PATH="+k8sBin+":"+os.Getenv("PATH"))
	cmd.WaitDelay = 5 * time.Second
	logf, err := os.OpenFile(filepath.Join(n.Dir, "boot.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "==== harness: %s\n", strings.Join(args, " "))
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var out bytes.Buffer
	var kubeletErr error
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		started := false
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			out.WriteString(line + "\n")
			fmt.Fprintln(logf, line)
			n.t.Logf("%s| %s", n.Name, line)
			if !started && n.kubeletFilesWritten(line) {
				started = true
				if kubeletErr = n.StartKubelet(k8sBin); kubeletErr == nil {
					n.t.Logf("%s: kubelet started by the harness", n.Name)
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	start := time.Now()
	err = cmd.Run()
	pw.Close()
	<-scanned
	fmt.Fprintf(logf, "==== harness: exit %v after %s\n", err, time.Since(start).Round(time.Millisecond))
	if err != nil {
		err = fmt.Errorf("%s: %s: %w", n.Name, strings.Join(args, " "), err)
	}
	if kubeletErr != nil {
		err = errors.Join(err, fmt.Errorf("%s: start the kubelet: %w", n.Name, kubeletErr))
	}
	return out.String(), err
}

func (n *Node) kubeletFilesWritten(line string) bool {
	if !strings.HasPrefix(line, "[kubelet-start]") || strings.Contains(line, " Writing ") {
		return false
	}
	for _, f := range []string{"/var/lib/kubelet/config.yaml", "/var/lib/kubelet/kubeadm-flags.env"} {
		if _, err := os.Stat(n.Path(f)); err != nil {
			return false
		}
	}
	return true
}

// shutdown is the node's part of the teardown: every supervised process
// killed (the kubelet first, or it restarts the containers), then the
// agent told to go, which kills what is left in the node's cgroup.
func (n *Node) shutdown() error {
	n.stop("kubelet", 0)
	n.mu.Lock()
	var names []string
	for name := range n.sups {
		names = append(names, name)
	}
	n.mu.Unlock()
	for _, name := range names {
		n.stop(name, 0)
	}
	if n.agent == nil || n.agent.Process == nil {
		return nil
	}
	n.agentIn.Close()
	select {
	case <-n.agentDone:
	case <-time.After(60 * time.Second):
		n.agent.Process.Kill()
		<-n.agentDone
		return fmt.Errorf("%s: the agent did not exit within 60 s of its stdin closing: killed", n.Name)
	}
	if n.agentErr != nil {
		return fmt.Errorf("%s: agent: %w\n%s", n.Name, n.agentErr, n.Tail("agent", 10))
	}
	return nil
}

// ImportImages imports image archives (docker or OCI) into the node's
// containerd, as kubeboot's images phase does for its own list: what a
// node joined by plain kubeadm needs before its pods can start.
func (n *Node) ImportImages(ctx context.Context, archives ...string) error {
	for _, a := range archives {
		if _, err := n.Run(ctx, "ctr", "--address", "/run/containerd/containerd.sock", "-n", "k8s.io", "images", "import", a); err != nil {
			return err
		}
	}
	return nil
}
