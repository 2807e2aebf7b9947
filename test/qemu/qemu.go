package qemu

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kubeboot/kubeboot/pkg/joinsecret"
)

// Binary is the QEMU system emulator the tests use.
const Binary = "qemu-system-x86_64"

// Accel returns the accelerator to use: KUBEBOOT_QEMU_ACCEL when set,
// otherwise kvm when /dev/kvm opens and the CPU has hardware
// virtualization, else tcg. (On a host whose /dev/kvm is a PVM backend
// without vmx, QEMU's KVM hangs a stock kernel right after the BIOS.)
func Accel() string {
	if a := os.Getenv("KUBEBOOT_QEMU_ACCEL"); a != "" {
		return a
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return "tcg"
	}
	f.Close()
	cpu, _ := os.ReadFile("/proc/cpuinfo")
	for _, flag := range strings.Fields(string(cpu)) {
		if flag == "vmx" || flag == "svm" {
			return "kvm"
		}
	}
	return "tcg"
}

// Port is a virtio-serial port whose host side is a file.
type Port struct {
	Name string
	File string
}

// Boot is one QEMU run.
type Boot struct {
	Kernel    string
	Initramfs string
	// Append is added to the kernel command line.
	Append []string
	Ports  []Port
	// FwCfg maps fw_cfg names to files.
	FwCfg map[string]string
	// Disks are raw images attached read-only as virtio disks.
	Disks []string
	// Console is the file the serial console is written to.
	Console string
	Accel   string
	Memory  string
	CPUs    int
	Timeout time.Duration
	// Watch, when set, is called every few milliseconds while QEMU runs;
	// it returning true records the time in Result.Watched.
	Watch func() bool
}

// Result is how the run went.
type Result struct {
	Args []string
	// Wall is QEMU start to exit; Watched is QEMU start to Watch's first
	// true (zero if never).
	Wall, Watched time.Duration
	// TimedOut tells that QEMU was killed at the timeout.
	TimedOut bool
	// Output is what QEMU itself printed (warnings, errors).
	Output string
	Err    error
}

// Args returns QEMU's command line.
func (b Boot) Args() []string {
	cmdline := append([]string{"console=ttyS0", "panic=-1"}, b.Append...)
	args := []string{
		"-accel", b.Accel,
		// max: RDRAND (the kernel's random pool is ready at once, not
		// seconds later; kubeboot's key generation waits for it) and SSE4.2.
		"-cpu", "max",
		"-m", b.Memory,
		"-smp", fmt.Sprint(b.CPUs),
		"-nographic", "-nodefaults", "-no-user-config", "-no-reboot",
		"-serial", "file:" + b.Console,
		"-net", "none",
		"-kernel", b.Kernel,
		"-initrd", b.Initramfs,
		"-append", strings.Join(cmdline, " "),
	}
	if len(b.Ports) > 0 {
		args = append(args, "-device", "virtio-serial")
		for i, p := range b.Ports {
			id := fmt.Sprintf("port%d", i)
			args = append(args, "-chardev", fmt.Sprintf("file,id=%s,path=%s", id, p.File),
				"-device", fmt.Sprintf("virtserialport,chardev=%s,name=%s", id, p.Name))
		}
	}
	for name, file := range b.FwCfg {
		args = append(args, "-fw_cfg", fmt.Sprintf("name=%s,file=%s", name, file))
	}
	for _, d := range b.Disks {
		args = append(args, "-drive", "if=virtio,format=raw,readonly=on,file="+d)
	}
	return args
}

// Run boots and waits for QEMU to exit (the guest powers off) or the
// timeout.
func (b Boot) Run(ctx context.Context) Result {
	if b.Accel == "" {
		b.Accel = "tcg"
	}
	if b.Memory == "" {
		b.Memory = "2048"
	}
	if b.CPUs == 0 {
		b.CPUs = 1
	}
	if b.Timeout == 0 {
		b.Timeout = 120 * time.Second
	}
	res := Result{Args: b.Args()}
	ctx, cancel := context.WithTimeout(ctx, b.Timeout)
	defer cancel()
	cmd := exec.Command(Binary, res.Args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true, Pdeathsig: unix.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		res.Err = err
		return res
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			res.Wall, res.Output = time.Since(start), out.String()
			if err != nil {
				res.Err = fmt.Errorf("%s: %w", Binary, err)
			}
			return res
		case <-tick.C:
			if b.Watch != nil && res.Watched == 0 && b.Watch() {
				res.Watched = time.Since(start)
			}
		case <-ctx.Done():
			unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
			<-done
			res.Wall, res.Output = time.Since(start), out.String()
			res.TimedOut = true
			res.Err = fmt.Errorf("%s killed after %s (timeout)", Binary, b.Timeout)
			return res
		}
	}
}

// JoinSecretWatcher returns a Watch function that reads file (the host
// side of the join-secret port) and tells when it holds a whole join
// secret.
func JoinSecretWatcher(file string) func() bool {
	var last int64 = -1
	return func() bool {
		fi, err := os.Stat(file)
		if err != nil || fi.Size() == 0 || fi.Size() == last {
			return false
		}
		last = fi.Size()
		data, err := os.ReadFile(file)
		if err != nil {
			return false
		}
		_, err = joinsecret.Parse(file, data)
		return err == nil
	}
}
