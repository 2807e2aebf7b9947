package cluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/kubeboot/kubeboot/test/containerdconf"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// The agent is the test binary run again as a node's first process, under
// `unshare --net --mount --uts --propagation private`: it builds the node's
// private file system, runs its containerd, and on exit kills everything
// the node still runs. The test binary's TestMain calls AgentMain when
// AgentEnv is set.

// AgentEnv carries the agent's parameters (JSON).
const AgentEnv = "KUBEBOOT_CLUSTER_AGENT"

type agentParams struct {
	Name     string
	Hosts    string // the whole /etc/hosts
	Resolv   string // the whole /etc/resolv.conf
	Cgroup   string // the node's pids cgroup directory, which the agent joins first
	Cni      string // where the host's CNI plugins are, copied to /opt/cni/bin
	Pause    string // containerd's sandbox image
	Overlays []string
	Tmpfs    []string
}

// Lines the agent writes on stdout, for the test process.
const (
	agentInNamespaces = "namespaces"
	agentReady        = "ready"
)

// staging holds the node's overlay upper directories, on the node's /run.
const staging = "/run/.kbc"

// AgentMain runs the agent and returns its exit code. Its stderr is the
// node's agent.log; file descriptor 3 is the node's containerd.log.
func AgentMain() int {
	var p agentParams
	if err := json.Unmarshal([]byte(os.Getenv(AgentEnv)), &p); err != nil {
		fmt.Fprintf(os.Stderr, "agent: %s: %v\n", AgentEnv, err)
		return 2
	}
	lg := log.New(os.Stderr, p.Name+" agent: ", log.Lmicroseconds)
	// Before anything else, so that everything the node starts is found
	// in the node's cgroup at teardown.
	if err := os.WriteFile(filepath.Join(p.Cgroup, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		lg.Printf("join %s: %v", p.Cgroup, err)
		return 1
	}
	// Orphans of the node (a shim's children when the shim dies) are
	// reparented here, not to the machine's init, and reaped.
	if err := setSubreaper(); err != nil {
		lg.Printf("%v", err)
		return 1
	}
	// unshare has run: the test process may now wire this netns.
	fmt.Println(agentInNamespaces)

	start := time.Now()
	containerd, err := p.setUp(lg)
	if err != nil {
		lg.Printf("set up: %v", err)
		fmt.Println("error:", err)
		killTree(p.Cgroup, os.Getpid(), 20*time.Second)
		return 1
	}
	lg.Printf("file system private, containerd started (pid %d) in %s", containerd, time.Since(start).Round(time.Millisecond))
	fmt.Println(agentReady)

	exit := make(chan string, 2)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		exit <- "stdin closed"
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { exit <- (<-sig).String() }()
	go reap(lg, containerd)

	why := <-exit
	lg.Printf("%s: killing every process of the node", why)
	killed, left := killTree(p.Cgroup, os.Getpid(), 20*time.Second)
	if len(left) > 0 {
		lg.Printf("killed %d processes; %v survive SIGKILL", killed, left)
		return 1
	}
	lg.Printf("killed %d processes; exiting (the node's mounts go with its mount namespace)", killed)
	return 0
}

// setUp makes the node's file system private, writes the hostname and the
// hosts file, and starts containerd. It returns containerd's pid.
func (p agentParams) setUp(lg *log.Logger) (int, error) {
	if err := syscall.Sethostname([]byte(p.Name)); err != nil {
		return 0, fmt.Errorf("sethostname: %w", err)
	}
	// The node's own /run (containerd's state, the pod netns mounts under
	// /run/netns, kubeboot's, kube-proxy's xtables.lock ...), with the
	// overlays' upper directories in it.
	if err := mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		return 0, err
	}
	// Overlays over /etc, /var, /opt, /root and /tmp: the node may create and
	// change anything there (mount points included) without a byte
	// reaching the host's disk, and still sees the host's files.
	for _, d := range p.Overlays {
		up := filepath.Join(staging, filepath.Base(d))
		if err := os.MkdirAll(up+"/upper", 0o755); err != nil {
			return 0, err
		}
		if err := os.MkdirAll(up+"/work", 0o755); err != nil {
			return 0, err
		}
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s/upper,workdir=%s/work", d, up, up)
		if err := mount("overlay", d, "overlay", 0, opts); err != nil {
			return 0, err
		}
	}
	// Empty directories of the node's own, as in test/node (inside the
	// overlays, so their mount points are in memory too).
	for _, d := range p.Tmpfs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, err
		}
		if err := mount("tmpfs", d, "tmpfs", 0, "mode=0755"); err != nil {
			return 0, err
		}
	}
	// A private /opt/cni/bin, filled from the host's plugins, where a CNI
	// add-on's init container may install its own.
	plugins, err := filepath.Glob(filepath.Join(p.Cni, "*"))
	if err != nil || len(plugins) == 0 {
		return 0, fmt.Errorf("no CNI plugins in %s", p.Cni)
	}
	for _, src := range plugins {
		if err := copyFile(src, filepath.Join("/opt/cni/bin", filepath.Base(src))); err != nil {
			return 0, err
		}
	}
	// A sysfs of this network namespace (/sys/class/net lists the node's
	// links only), with the host's cgroup hierarchies moved over from the
	// old one.
	keep := filepath.Join(staging, "cgroup")
	if err := os.MkdirAll(keep, 0o755); err != nil {
		return 0, err
	}
	if err := mount("/sys/fs/cgroup", keep, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return 0, err
	}
	if err := mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		return 0, err
	}
	if err := mount(keep, "/sys/fs/cgroup", "", syscall.MS_MOVE, ""); err != nil {
		return 0, err
	}
	// /etc is the node's overlay: plain writes.
	if err := os.WriteFile("/etc/hosts", []byte(p.Hosts), 0o644); err != nil {
		return 0, err
	}
	if err := os.WriteFile("/etc/hostname", []byte(p.Name+"\n"), 0o644); err != nil {
		return 0, err
	}
	os.Remove("/etc/resolv.conf") // a symbolic link on some hosts
	if err := os.WriteFile("/etc/resolv.conf", []byte(p.Resolv), 0o644); err != nil {
		return 0, err
	}
	if err := os.WriteFile("/etc/containerd/config.toml", []byte(containerdconf.Render(p.Pause, "/opt/cni/bin")), 0o644); err != nil {
		return 0, err
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		return 0, err
	}
	logf := os.NewFile(3, "containerd.log")
	proc, err := os.StartProcess(bin, []string{"containerd", "--config", "/etc/containerd/config.toml"}, &os.ProcAttr{
		Dir:   "/",
		Env:   os.Environ(),
		Files: []*os.File{nil, logf, logf},
	})
	if err != nil {
		return 0, fmt.Errorf("start containerd: %w", err)
	}
	logf.Close()
	// Serving once the socket accepts; the test process then asks it for
	// its version through ctr, as a user would.
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.Dial("unix", "/run/containerd/containerd.sock")
		if err == nil {
			c.Close()
			return proc.Pid, nil
		}
		var ws syscall.WaitStatus
		if pid, _ := syscall.Wait4(proc.Pid, &ws, syscall.WNOHANG, nil); pid == proc.Pid {
			return 0, fmt.Errorf("containerd exited (%v) before serving: see containerd.log", ws)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("containerd: no socket after 60 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reap collects every child and orphan of the node, and says so if
// containerd dies before teardown.
func reap(lg *log.Logger, containerd int) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.ECHILD {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if pid == containerd {
			lg.Printf("containerd exited: %v", ws)
		}
	}
}

func setSubreaper() error {
	const prSetChildSubreaper = 36
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); e != 0 {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", e)
	}
	return nil
}

func mount(src, dst, fstype string, flags uintptr, data string) error {
	if err := syscall.Mount(src, dst, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s (%s %s): %w", src, dst, fstype, data, err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, bufio.NewReader(in)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
