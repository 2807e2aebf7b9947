package userdata

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const isoUserData = "#cloud-config\nkubeboot: |\n"

func seedFiles() map[string]string {
	return map[string]string{
		"user-data": isoUserData + indent(testConfig, "  ") + "write_files:\n- path: /etc/from-iso\n  content: iso\n",
		"meta-data": "instance-id: iid-iso-1\nlocal-hostname: iso-node\n",
	}
}

// buildISO makes a NoCloud ISO with genisoimage or xorriso, as
// cloud-localds does; it skips the test when neither is installed.
func buildISO(t *testing.T, label string, rockRidge bool) string {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, seedFiles())
	out := filepath.Join(t.TempDir(), "seed.iso")
	var cmd *exec.Cmd
	if p, err := exec.LookPath("genisoimage"); err == nil {
		args := []string{"-quiet", "-output", out, "-volid", label, "-joliet"}
		if rockRidge {
			args = append(args, "-rock")
		}
		cmd = exec.Command(p, append(args, filepath.Join(dir, "user-data"), filepath.Join(dir, "meta-data"))...)
	} else if p, err := exec.LookPath("xorriso"); err == nil {
		rr := "on"
		if !rockRidge {
			rr = "off"
		}
		cmd = exec.Command(p, "-as", "mkisofs", "-quiet", "-output", out, "-volid", label, "-joliet", "-rock", "-rational-rock",
			filepath.Join(dir, "user-data"), filepath.Join(dir, "meta-data"))
		_ = rr
	} else {
		t.Skip("neither genisoimage nor xorriso is installed (apt-get install genisoimage): cannot build a NoCloud ISO")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
	return out
}

func checkISOResult(t *testing.T, r *Result) {
	t.Helper()
	if r == nil {
		t.Fatal("no userdata found")
	}
	if r.InstanceID != "iid-iso-1" || r.Hostname != "iso-node" || string(r.Config) != testConfig {
		t.Errorf("Result = %+v", r)
	}
	if f := fileByPath(r, "/etc/from-iso"); f == nil || string(f.Data) != "iso" {
		t.Errorf("files = %+v", r.Files)
	}
}

func TestProbeLabelISO(t *testing.T) {
	for _, label := range []string{"cidata", "CIDATA"} {
		iso := buildISO(t, label, true)
		f, err := os.Open(iso)
		if err != nil {
			t.Fatal(err)
		}
		fstype, got, err := ProbeLabel(f)
		f.Close()
		if err != nil || fstype != "iso9660" || got != label {
			t.Errorf("ProbeLabel = %q, %q, %v; want iso9660, %q", fstype, got, err, label)
		}
	}
}

func TestProbeLabelVFAT(t *testing.T) {
	mkfs, err := exec.LookPath("mkfs.vfat")
	if err != nil {
		t.Skip("mkfs.vfat is not installed (apt-get install dosfstools)")
	}
	for _, fat := range []string{"12", "16", "32"} {
		img := filepath.Join(t.TempDir(), "fat.img")
		size := map[string]int64{"12": 1 << 20, "16": 16 << 20, "32": 64 << 20}[fat]
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Truncate(img, size)
		if b, err := exec.Command(mkfs, "-F", fat, "-n", "CIDATA", img).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.vfat: %v\n%s", err, b)
		}
		f, _ := os.Open(img)
		fstype, label, err := ProbeLabel(f)
		f.Close()
		if err != nil || fstype != "vfat" || label != "CIDATA" {
			t.Errorf("FAT%s: ProbeLabel = %q, %q, %v", fat, fstype, label, err)
		}
	}
}

func TestProbeLabelNothing(t *testing.T) {
	if _, _, err := ProbeLabel(bytes.NewReader(make([]byte, 64<<10))); err == nil {
		t.Error("zeros have a label")
	}
	if _, _, err := ProbeLabel(bytes.NewReader([]byte("short"))); err == nil {
		t.Error("short input has a label")
	}
}

func TestISOSeedReader(t *testing.T) {
	for _, rr := range []bool{true, false} {
		t.Run(fmt.Sprintf("rockridge=%v", rr), func(t *testing.T) {
			iso := buildISO(t, "cidata", rr)
			s := Sources{Root: t.TempDir(), Cmdline: "-", NoCloud: ISOSeed{Path: iso, Name: "seed.iso"}}
			r, err := Find(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			checkISOResult(t, r)
			if r.Source != "nocloud seed.iso" {
				t.Errorf("Source = %q", r.Source)
			}
		})
	}
}

func TestISOSeedCorrupt(t *testing.T) {
	iso := buildISO(t, "cidata", true)
	data, _ := os.ReadFile(iso)
	// Point the root directory record at an absurd extent.
	copy(data[32768+156+2:], []byte{0xff, 0xff, 0xff, 0x7f})
	os.WriteFile(iso, data, 0o644)
	_, err := ISOSeed{Path: iso}.Seed(context.Background())
	if err == nil {
		t.Fatal("corrupt ISO read")
	}
}

// attachLoop attaches a file to a free loop device; it skips the test
// when loop devices cannot be used here.
func attachLoop(t *testing.T, file string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: loop devices need root; the ISO is read with the ISO 9660 reader in TestISOSeedReader")
	}
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("loop devices cannot be used (%v); the ISO is read with the ISO 9660 reader in TestISOSeedReader", err)
	}
	defer ctl.Close()
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		t.Skipf("no free loop device (%v)", err)
	}
	dev := fmt.Sprintf("/dev/loop%d", n)
	if _, err := os.Stat(dev); errors.Is(err, os.ErrNotExist) {
		if err := unix.Mknod(dev, unix.S_IFBLK|0o600, int(unix.Mkdev(7, uint32(n)))); err != nil {
			t.Skipf("cannot create %s: %v", dev, err)
		}
		t.Cleanup(func() { os.Remove(dev) })
	}
	loop, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Skipf("open %s: %v", dev, err)
	}
	img, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if err := unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_SET_FD, int(img.Fd())); err != nil {
		loop.Close()
		t.Skipf("attach %s to %s: %v", file, dev, err)
	}
	t.Cleanup(func() {
		unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_CLR_FD, 0)
		loop.Close()
	})
	return dev
}

func filesystemSupported(fstype string) bool {
	data, _ := os.ReadFile("/proc/filesystems")
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(strings.TrimPrefix(line, "nodev")) == fstype {
			return true
		}
	}
	return false
}

func TestDiskSeedLoopISO(t *testing.T) {
	iso := buildISO(t, "cidata", true)
	dev := attachLoop(t, iso)
	s := Sources{Cmdline: "-", NoCloud: DiskSeed{Devices: []string{dev}}}
	r, err := Find(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	checkISOResult(t, r)
	if want := "nocloud " + dev + " (iso9660, label cidata)"; r.Source != want {
		t.Errorf("Source = %q, want %q", r.Source, want)
	}
	if filesystemSupported("iso9660") {
		if hasWarning(r, "read without mounting") {
			t.Errorf("iso9660 is supported but the disk was not mounted: %q", r.Warnings)
		}
		t.Logf("%s mounted read-only with the mount syscall", dev)
	} else {
		if !hasWarning(r, "read without mounting") {
			t.Errorf("warnings = %q", r.Warnings)
		}
		t.Logf("this kernel has no iso9660 file system: %s was read through the loop device with the ISO 9660 reader (%q)", dev, r.Warnings)
	}
	// The mount is gone.
	mounts, _ := os.ReadFile("/proc/self/mounts")
	if strings.Contains(string(mounts), "kubeboot-cidata-") {
		t.Errorf("cidata still mounted:\n%s", mounts)
	}
}

func TestDiskSeedByLabelAndProbe(t *testing.T) {
	iso := buildISO(t, "CIDATA", true)
	root := t.TempDir()
	data, _ := os.ReadFile(iso)
	// A fake /dev and /sys: vda (no label), vdb (the seed).
	writeTree(t, root, map[string]string{
		"dev/vda": strings.Repeat("\x00", 40000), "dev/vdb": string(data),
		"sys/class/block/vda/dev": "253:0", "sys/class/block/vdb/dev": "253:16",
	})
	t.Run("probe", func(t *testing.T) {
		r, err := Find(context.Background(), Sources{Root: root, Cmdline: "-", NoCloud: DiskSeed{Root: root, NoMount: true}})
		if err != nil {
			t.Fatal(err)
		}
		checkISOResult(t, r)
		if r.Source != "nocloud /dev/vdb (iso9660, label CIDATA)" {
			t.Errorf("Source = %q", r.Source)
		}
	})
	t.Run("by-label", func(t *testing.T) {
		os.MkdirAll(filepath.Join(root, "dev/disk/by-label"), 0o755)
		os.Symlink("../../vdb", filepath.Join(root, "dev/disk/by-label/CIDATA"))
		os.RemoveAll(filepath.Join(root, "sys"))
		r, err := Find(context.Background(), Sources{Root: root, Cmdline: "-", NoCloud: DiskSeed{Root: root, NoMount: true}})
		if err != nil {
			t.Fatal(err)
		}
		if r.Source != "nocloud /dev/vdb (iso9660, label CIDATA)" {
			t.Errorf("Source = %q", r.Source)
		}
	})
	t.Run("none", func(t *testing.T) {
		r, err := Find(context.Background(), Sources{Root: t.TempDir(), Cmdline: "-", NoCloud: DiskSeed{Root: t.TempDir()}})
		if r != nil || err != nil {
			t.Errorf("Find = %+v, %v", r, err)
		}
	})
}

func TestDiskSeedVFATNeedsMount(t *testing.T) {
	mkfs, err := exec.LookPath("mkfs.vfat")
	if err != nil {
		t.Skip("mkfs.vfat is not installed")
	}
	img := filepath.Join(t.TempDir(), "fat.img")
	os.WriteFile(img, nil, 0o644)
	os.Truncate(img, 4<<20)
	if b, err := exec.Command(mkfs, "-n", "CIDATA", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v\n%s", err, b)
	}
	_, err = DiskSeed{Devices: []string{img}, NoMount: true}.Seed(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot be read without mounting") {
		t.Errorf("err = %v", err)
	}
	if !filesystemSupported("vfat") {
		t.Logf("this kernel has no vfat file system: mounting a VFAT cidata disk is left to the QEMU guest test")
		return
	}
	mcopy, err := exec.LookPath("mcopy")
	if err != nil {
		t.Skip("mtools is not installed: cannot put files on the VFAT image")
	}
	dir := t.TempDir()
	writeTree(t, dir, seedFiles())
	for _, f := range []string{"user-data", "meta-data"} {
		if b, err := exec.Command(mcopy, "-i", img, filepath.Join(dir, f), "::"+f).CombinedOutput(); err != nil {
			t.Fatalf("mcopy: %v\n%s", err, b)
		}
	}
	dev := attachLoop(t, img)
	seed, err := DiskSeed{Devices: []string{dev}}.Seed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(seed.MetaData, []byte("iid-iso-1")) {
		t.Errorf("seed = %+v", seed)
	}
}

// TestDiskSeedMountSyscall exercises the mount, read and unmount path on
// a file system this kernel has (ext4), since iso9660 and vfat may be
// missing here; the QEMU guest test mounts the real cidata disk.
func TestDiskSeedMountSyscall(t *testing.T) {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil || !filesystemSupported("ext4") {
		t.Skip("mkfs.ext4 or the ext4 file system is missing")
	}
	dir := t.TempDir()
	writeTree(t, dir, seedFiles())
	img := filepath.Join(t.TempDir(), "ext4.img")
	if b, err := exec.Command(mkfs, "-q", "-d", dir, "-L", "cidata", img, "8M").CombinedOutput(); err != nil {
		t.Skipf("mkfs.ext4 -d: %v\n%s", err, b)
	}
	dev := attachLoop(t, img)
	seed, err := DiskSeed{}.mountAndRead(&candidate{dev: dev, path: dev, fstype: "ext4", label: "cidata"}, dev)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("mount not permitted here: %v", err)
		}
		t.Fatal(err)
	}
	if !bytes.Contains(seed.MetaData, []byte("iid-iso-1")) || !bytes.Contains(seed.UserData, []byte("kubeboot:")) {
		t.Errorf("seed = %+v", seed)
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	if strings.Contains(string(mounts), "kubeboot-cidata-") {
		t.Errorf("still mounted:\n%s", mounts)
	}
}
