// Command guestinit is /init of the QEMU fast tier's initramfs: it brings
// up the little a first boot needs (proc, sys, dev, run, tmp, cgroup2, lo,
// the virtio and isofs modules), runs kubeboot as a first boot would, writes
// a JSON report (package guestreport) to a virtio-serial port and powers
// the machine off. kubeboot's output goes to the console as it comes.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kubeboot/kubeboot/pkg/host"
	"github.com/kubeboot/kubeboot/test/qemu/guestreport"
)

const (
	kubeboot = "/usr/bin/kubeboot"
	// exitUsage is kubeboot's status for bad usage, an unknown command too.
	exitUsage = 2
)

// initModules are what the guest needs before kubeboot runs: the
// virtio-serial ports, the cidata disk and its filesystem. qemu_fw_cfg is
// left to kubeboot, which loads it itself when it looks for userdata.
var initModules = []host.Module{{Name: "virtio_pci"}, {Name: "virtio_console"}, {Name: "virtio_blk"}, {Name: "isofs"}}

// sysctls are read back after the host phase.
var sysctls = []string{"net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"}

// renderedTrees are where kubeboot writes; every file under them is digested.
var renderedTrees = []string{"/etc/kubernetes", "/etc/kubeboot", "/etc/modules-load.d", "/etc/sysctl.d", "/etc/systemd", "/var/lib/kubelet", "/var/lib/kubeboot"}

// public files are reported with their contents; everything else
// (keys, kubeconfigs, tokens, the encryption key) only by digest.
func public(p string) bool {
	switch {
	case strings.HasPrefix(p, "/etc/kubernetes/manifests/"),
		strings.HasPrefix(p, "/etc/modules-load.d/"),
		strings.HasPrefix(p, "/etc/sysctl.d/"),
		strings.HasPrefix(p, "/etc/systemd/"),
		strings.HasPrefix(p, "/etc/kubeboot/"):
		return true
	}
	switch p {
	case "/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/audit/audit.yaml",
		"/var/lib/kubelet/config.yaml", "/var/lib/kubelet/kubeadm-flags.env":
		return true
	}
	return false
}

func main() {
	defer powerOff()
	defer func() {
		if p := recover(); p != nil {
			say("panic: %v", p)
		}
	}()
	if err := mountAll(); err != nil {
		say("%v", err)
		return
	}
	os.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
	os.Setenv("HOME", "/root")
	rep := &guestreport.Report{Sysctls: map[string]string{}, Files: map[string]guestreport.File{}}
	rep.UptimeStart = uptime()
	rep.Kernel, _ = host.KernelRelease()
	params := cmdline()
	say("kubeboot QEMU fast tier: kernel %s, up %.2fs", rep.Kernel, rep.UptimeStart)
	ctx := context.Background()

	if err := setupLoopback(params[guestreport.ParamAddress]); err != nil {
		rep.Errors = append(rep.Errors, err.Error())
	}
	mods, err := host.LoadModules(ctx, "/", "", initModules, host.KernelLoader())
	for _, m := range mods {
		rep.InitModules = append(rep.InitModules, fmt.Sprintf("%s: %s %s", m.Name, m.State, strings.Join(m.Deps, ",")))
	}
	if err != nil {
		rep.Errors = append(rep.Errors, err.Error())
	}
	ports := append(splitList(params[guestreport.ParamPorts]), guestreport.PortName)
	if err := waitVirtio(ports, 10*time.Second); err != nil {
		rep.Errors = append(rep.Errors, err.Error())
	}
	say("devices ready, up %.2fs", uptime())

	// As a first boot would: the host phase for real, the preflight checks,
	// every render phase, then the join secret to its sink.
	rep.Steps = append(rep.Steps, run("host", "init", "phase", "host", "-v", "1"))
	// The init flow's preflight phase, which checks the configuration the
	// userdata carries (`kubeboot preflight` reads only --config).
	args := []string{"init", "phase", "preflight"}
	if ign := params[guestreport.ParamIgnore]; ign != "" {
		args = append(args, "--ignore-preflight-errors", ign)
	}
	pre := run("preflight", args...)
	if pre.Exit == exitUsage && strings.Contains(pre.Output, `unknown command "preflight"`) {
		pre.Skipped = "this kubeboot has no preflight phase"
	}
	rep.Steps = append(rep.Steps, pre)
	rep.Steps = append(rep.Steps, run("dry-run", "init", "--dry-run"))
	rep.Steps = append(rep.Steps, run("join-secret", "init", "phase", "join-secret"))

	rep.Modules = procModules()
	for _, k := range sysctls {
		data, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/")))
		if err != nil {
			rep.Sysctls[k] = "error: " + err.Error()
			continue
		}
		rep.Sysctls[k] = strings.TrimSpace(string(data))
	}
	for _, tree := range renderedTrees {
		if err := digestTree(tree, rep.Files); err != nil {
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
	rep.KernelLog = kernelLog()
	rep.UptimeEnd = uptime()
	if err := writeReport(rep); err != nil {
		say("report: %v", err)
		return
	}
	say("report written, up %.2fs; powering off", rep.UptimeEnd)
}

// say writes one line of the init's own to the console.
func say(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "kubeboot-guest: "+format+"\n", args...)
}

func mountAll() error {
	for _, m := range []struct {
		target, fstype string
		flags          uintptr
		data           string
	}{
		{"/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
		{"/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	} {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.fstype, m.target, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	return nil
}

// setupLoopback brings lo up and adds addr (a CIDR) to it.
func setupLoopback(addr string) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	if addr == "" {
		return nil
	}
	a, err := netlink.ParseAddr(addr)
	if err != nil {
		return fmt.Errorf("%s=%s: %w", guestreport.ParamAddress, addr, err)
	}
	if err := netlink.AddrAdd(lo, a); err != nil {
		return fmt.Errorf("add %s to lo: %w", addr, err)
	}
	return nil
}

func cmdline() map[string]string {
	data, _ := os.ReadFile("/proc/cmdline")
	out := map[string]string{}
	for _, f := range strings.Fields(string(data)) {
		k, v, _ := strings.Cut(f, "=")
		out[k] = v
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// waitVirtio waits until every virtio device has its driver and the named
// virtio-serial ports have their device nodes: virtio_console learns the
// port names from the host after the driver is bound.
func waitVirtio(ports []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		devs, _ := filepath.Glob("/sys/bus/virtio/devices/*")
		for _, d := range devs {
			if _, err := os.Stat(filepath.Join(d, "driver")); err != nil {
				missing = append(missing, "driver for "+filepath.Base(d))
			}
		}
		for _, p := range ports {
			if _, err := findPort(p); err != nil {
				missing = append(missing, "port "+p)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s still waiting for %s", timeout, strings.Join(missing, ", "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run runs kubeboot with args, its output going to the console and into
// the step.
func run(name string, args ...string) guestreport.Step {
	say("step %s: kubeboot %s", name, strings.Join(args, " "))
	var buf bytes.Buffer
	cmd := exec.Command(kubeboot, args...)
	w := io.MultiWriter(os.Stdout, &buf)
	cmd.Stdout, cmd.Stderr = w, w
	start := time.Now()
	err := cmd.Run()
	step := guestreport.Step{Name: name, Args: args, Output: buf.String(), Seconds: time.Since(start).Seconds()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		step.Exit = exit.ExitCode()
	default:
		step.Exit = -1
		step.Output += "\n" + err.Error()
	}
	say("step %s: exit %d after %.2fs", name, step.Exit, step.Seconds)
	return step
}

func procModules() []string {
	data, _ := os.ReadFile("/proc/modules")
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			out = append(out, f[0])
		}
	}
	sort.Strings(out)
	return out
}

func digestTree(root string, files map[string]guestreport.File) error {
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		f := guestreport.File{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), Mode: fmt.Sprintf("%#o", fi.Mode().Perm())}
		if public(p) {
			f.Data = string(data)
		}
		files[p] = f
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func uptime() float64 {
	data, _ := os.ReadFile("/proc/uptime")
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// findPort returns the device of a named virtio-serial port. Without udev
// there is no /dev/virtio-ports/NAME: the name is in sysfs. (kubeboot has
// its own lookup for its sink; this one is the test's.)
func findPort(name string) (string, error) {
	names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err == nil && strings.TrimSpace(string(data)) == name {
			dev := "/dev/" + filepath.Base(filepath.Dir(n))
			_, err := os.Stat(dev)
			return dev, err
		}
	}
	return "", fmt.Errorf("virtio-serial port %s not found", name)
}

// kernelLog is the kernel's message buffer (dmesg).
func kernelLog() string {
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil || n <= 0 {
		return ""
	}
	buf := make([]byte, n)
	n, err = unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func writeReport(rep *guestreport.Report) error {
	doc, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	dev, err := findPort(guestreport.PortName)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(doc, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", dev, err)
	}
	return f.Close()
}

// powerOff ends the guest; QEMU exits with it.
func powerOff() {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		say("power off: %v", err)
	}
	// Returning ends PID 1: the kernel panics, and with panic=-1 and QEMU's
	// -no-reboot that ends QEMU too.
}
