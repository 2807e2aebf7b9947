package qemu

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// GuestModules are the modules the initramfs carries (with everything they
// need): what kubeboot loads by default, qemu_fw_cfg, which kubeboot
// loads to read fw_cfg, and what the guest init needs for the
// virtio-serial ports and the cidata disk.
var GuestModules = []string{
	"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack", "br_netfilter", "overlay",
	"qemu_fw_cfg",
	"virtio_pci", "virtio_console", "virtio_blk", "isofs",
}

// goBin is the go command: the one in PATH, else the toolchain's own
// (go test puts its GOROOT/bin first in PATH, so this rarely matters).
func goBin() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// BuildStatic builds a static, stripped binary of pkg (an import path of
// this module) into out.
func BuildStatic(pkg, out string) error {
	cmd := exec.Command(goBin(), "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// Initramfs is what BuildInitramfs made.
type Initramfs struct {
	Path    string
	Size    int64
	Modules []string
}

// BuildInitramfs stages /init (guestInit), /usr/bin/kubeboot and the
// kernel's modules for GuestModules under dir/stage and writes
// dir/initramfs.cpio.gz.
func BuildInitramfs(k Kernel, guestInit, kubeboot, dir string) (Initramfs, error) {
	stage := filepath.Join(dir, "stage")
	if err := os.RemoveAll(stage); err != nil {
		return Initramfs{}, err
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "root", "etc", "var/lib", "usr/bin", "usr/sbin"} {
		if err := os.MkdirAll(filepath.Join(stage, d), 0o755); err != nil {
			return Initramfs{}, err
		}
	}
	for src, dst := range map[string]string{guestInit: "init", kubeboot: "usr/bin/kubeboot"} {
		data, err := os.ReadFile(src)
		if err != nil {
			return Initramfs{}, err
		}
		if err := os.WriteFile(filepath.Join(stage, dst), data, 0o755); err != nil {
			return Initramfs{}, err
		}
	}
	mods, err := StageModules(k, GuestModules, stage)
	if err != nil {
		return Initramfs{}, err
	}
	out := filepath.Join(dir, "initramfs.cpio.gz")
	if err := WriteInitramfs(stage, out); err != nil {
		return Initramfs{}, err
	}
	fi, err := os.Stat(out)
	if err != nil {
		return Initramfs{}, err
	}
	return Initramfs{Path: out, Size: fi.Size(), Modules: mods}, nil
}
