package userdata

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// NoCloud filesystem labels, as cloud-init looks for them.
var cidataLabels = []string{"cidata", "CIDATA"}

// Filesystem types of a NoCloud disk.
const (
	fsISO9660 = "iso9660"
	fsVFAT    = "vfat"
)

// DiskSeed finds the NoCloud disk: the filesystem labelled cidata or
// CIDATA, through /dev/disk/by-label or, when udev has not named it (yet),
// by reading the label of every block device itself. It mounts the disk
// read-only, reads the seed and unmounts it. An ISO 9660 disk that cannot
// be mounted (no privilege, no iso9660 module) is read without mounting.
type DiskSeed struct {
	// Root is the root prefix of /dev and /sys.
	Root string
	// Devices, when set, are the only devices probed (host paths).
	Devices []string
	// NoMount reads ISO 9660 disks directly and never mounts.
	NoMount bool
}

func (ds DiskSeed) hostPath(p string) string {
	root := ds.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, filepath.Clean("/"+p))
}

// candidate is a device with a cidata label.
type candidate struct {
	dev    string // host path, for messages
	path   string // path under the root, to open
	fstype string
	label  string
}

func (ds DiskSeed) Seed(ctx context.Context) (*Seed, error) {
	c, err := ds.find()
	if err != nil {
		return nil, err
	}
	where := fmt.Sprintf("%s (%s, label %s)", c.dev, c.fstype, c.label)
	if !ds.NoMount {
		seed, err := ds.mountAndRead(c, where)
		if err == nil {
			return seed, nil
		}
		if c.fstype != fsISO9660 {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		seed, rerr := ISOSeed{Path: c.path, Name: where}.Seed(ctx)
		if rerr != nil {
			return nil, rerr
		}
		seed.Warnings = append(seed.Warnings, fmt.Sprintf("nocloud: %s read without mounting (%v)", c.dev, err))
		return seed, nil
	}
	if c.fstype != fsISO9660 {
		return nil, fmt.Errorf("%s: a %s disk cannot be read without mounting", where, c.fstype)
	}
	return ISOSeed{Path: c.path, Name: where}.Seed(ctx)
}

// find returns the first device labelled cidata.
func (ds DiskSeed) find() (*candidate, error) {
	devs := ds.Devices
	if len(devs) == 0 {
		for _, l := range cidataLabels {
			link := ds.hostPath("/dev/disk/by-label/" + l)
			target, err := os.Readlink(link)
			if err != nil {
				continue
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join("/dev/disk/by-label", target)
			}
			devs = append(devs, filepath.Clean(target))
		}
		devs = append(devs, ds.blockDevices()...)
	}
	for _, dev := range devs {
		p := ds.hostPath(dev)
		fstype, label, err := probeLabel(p)
		if err != nil {
			continue
		}
		for _, l := range cidataLabels {
			if label == l {
				return &candidate{dev: dev, path: p, fstype: fstype, label: label}, nil
			}
		}
	}
	return nil, ErrNotFound
}

// blockDevices lists /dev/NAME for every block device in /sys/class/block.
func (ds DiskSeed) blockDevices() []string {
	entries, err := os.ReadDir(ds.hostPath("/sys/class/block"))
	if err != nil {
		return nil
	}
	var devs []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "zram") || strings.HasPrefix(name, "dm-") {
			continue
		}
		devs = append(devs, "/dev/"+name)
	}
	sort.Strings(devs)
	return devs
}

// probeLabel reads the filesystem type and label of a device or image:
// ISO 9660 (primary volume descriptor at 32768, volume identifier at +40)
// or FAT (boot sector volume label). No blkid.
func probeLabel(p string) (fstype, label string, err error) {
	f, err := os.Open(p)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	return ProbeLabel(f)
}

// ProbeLabel reads the type and label of an ISO 9660 or FAT filesystem.
func ProbeLabel(r io.ReaderAt) (fstype, label string, err error) {
	pvd := make([]byte, 2048)
	if n, _ := r.ReadAt(pvd, 32768); n == len(pvd) && pvd[0] == 1 && string(pvd[1:6]) == "CD001" {
		return fsISO9660, strings.TrimRight(string(pvd[40:72]), " \x00"), nil
	}
	bs := make([]byte, 512)
	if n, _ := r.ReadAt(bs, 0); n != len(bs) || bs[510] != 0x55 || bs[511] != 0xaa {
		return "", "", errors.New("no ISO 9660 or FAT filesystem")
	}
	var off int
	switch {
	case bs[0x42] == 0x29 && string(bs[0x52:0x57]) == "FAT32":
		off = 0x47
	case bs[0x26] == 0x29 && strings.HasPrefix(string(bs[0x36:0x3e]), "FAT"):
		off = 0x2b
	default:
		return "", "", errors.New("no ISO 9660 or FAT filesystem")
	}
	label = strings.TrimRight(string(bs[off:off+11]), " \x00")
	if label == "NO NAME" {
		label = ""
	}
	return fsVFAT, label, nil
}

// mountAndRead mounts the device read-only on a fresh directory, reads
// the seed and unmounts.
func (ds DiskSeed) mountAndRead(c *candidate, where string) (seed *Seed, err error) {
	dir, err := os.MkdirTemp("", "kubeboot-cidata-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(dir)
	flags := uintptr(unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount(c.path, dir, c.fstype, flags, ""); err != nil {
		return nil, fmt.Errorf("mount %s on %s: %w", c.dev, dir, err)
	}
	defer func() {
		if uerr := unix.Unmount(dir, 0); uerr != nil {
			if derr := unix.Unmount(dir, unix.MNT_DETACH); derr != nil && err == nil {
				seed, err = nil, fmt.Errorf("unmount %s: %w", dir, uerr)
			}
		}
	}()
	return readSeed(os.DirFS(dir), where)
}
