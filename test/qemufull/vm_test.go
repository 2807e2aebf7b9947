package qemufull

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kubeboot/kubeboot/test/qemu"
)

// vm is one boot of the image: QEMU with the disk read-write, user-mode
// networking (the host is 10.0.2.2 to the guest), virtio-serial ports
// whose host sides are files, and a monitor socket for an ACPI power-off.
type vm struct {
	Kernel, Initrd, Disk string
	Append               []string
	Ports                map[string]string // port name -> host file
	FwCfg                map[string]string // fw_cfg name -> file
	// HostFwd forwards 127.0.0.1:<host port> to the guest's port.
	HostFwd map[int]int
	Console string
	Monitor string
	Accel   string
	Memory  string
	CPUs    int

	cmd     *exec.Cmd
	out     strings.Builder
	started time.Time
	done    chan struct{}
	mu      sync.Mutex
	err     error
}

func (v *vm) args() []string {
	cmdline := append([]string{"console=ttyS0", "panic=-1", "root=/dev/vda", "rw", "systemd.unified_cgroup_hierarchy=1"}, v.Append...)
	netdev := "user,id=n0"
	for host, guest := range v.HostFwd {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", host, guest)
	}
	args := []string{
		"-accel", v.Accel,
		"-cpu", "max",
		"-m", v.Memory,
		"-smp", fmt.Sprint(v.CPUs),
		"-nographic", "-nodefaults", "-no-user-config", "-no-reboot",
		"-serial", "file:" + v.Console,
		"-monitor", "unix:" + v.Monitor + ",server=on,wait=off",
		"-kernel", v.Kernel,
		"-initrd", v.Initrd,
		"-append", strings.Join(cmdline, " "),
		"-drive", "if=virtio,format=raw,cache=unsafe,file=" + v.Disk,
		"-netdev", netdev,
		"-device", "virtio-net-pci,netdev=n0",
		"-device", "virtio-rng-pci",
	}
	if len(v.Ports) > 0 {
		args = append(args, "-device", "virtio-serial")
		i := 0
		for name, file := range v.Ports {
			id := fmt.Sprintf("port%d", i)
			args = append(args, "-chardev", fmt.Sprintf("file,id=%s,path=%s", id, file),
				"-device", fmt.Sprintf("virtserialport,chardev=%s,name=%s", id, name))
			i++
		}
	}
	for name, file := range v.FwCfg {
		args = append(args, "-fw_cfg", fmt.Sprintf("name=%s,file=%s", name, file))
	}
	return args
}

// CommandLine is QEMU's command line, for logs.
func (v *vm) CommandLine() string {
	return qemu.Binary + " " + strings.Join(v.args(), " ")
}

func (v *vm) Start() error {
	os.Remove(v.Monitor)
	v.cmd = exec.Command(qemu.Binary, v.args()...)
	v.cmd.Stdout, v.cmd.Stderr = &v.out, &v.out
	v.cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true, Pdeathsig: unix.SIGKILL}
	v.done = make(chan struct{})
	v.started = time.Now()
	if err := v.cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", qemu.Binary, err)
	}
	go func() {
		err := v.cmd.Wait()
		v.mu.Lock()
		v.err = err
		v.mu.Unlock()
		close(v.done)
	}()
	return nil
}

// Since is the time since QEMU started.
func (v *vm) Since() time.Duration { return time.Since(v.started) }

// Exited tells whether QEMU has exited.
func (v *vm) Exited() bool {
	select {
	case <-v.done:
		return true
	default:
		return false
	}
}

// Output is what QEMU itself printed.
func (v *vm) Output() string { return v.out.String() }

// PowerOff presses the ACPI power button and waits for the guest to shut
// down (systemd stops the kubelet, containerd and the file systems); after
// timeout, or if the monitor does not answer, QEMU is killed. It reports
// whether the shutdown was clean.
func (v *vm) PowerOff(timeout time.Duration) (clean bool, took time.Duration) {
	start := time.Now()
	if v.Exited() {
		return true, 0
	}
	if c, err := net.DialTimeout("unix", v.Monitor, 5*time.Second); err == nil {
		fmt.Fprintf(c, "system_powerdown\n")
		select {
		case <-v.done:
			c.Close()
			return true, time.Since(start)
		case <-time.After(timeout):
		}
		c.Close()
	}
	v.Kill()
	return false, time.Since(start)
}

// Kill stops QEMU at once.
func (v *vm) Kill() {
	if v.cmd == nil || v.cmd.Process == nil || v.Exited() {
		return
	}
	unix.Kill(-v.cmd.Process.Pid, unix.SIGKILL)
	<-v.done
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// copySparse copies the golden disk so that the golden one stays
// pristine; holes stay holes.
func copySparse(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := exec.Command("cp", "--sparse=always", "--reflink=auto", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp %s: %v: %s", src, err, out)
	}
	return nil
}
