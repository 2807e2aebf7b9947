// Package qemu boots Debian's kernel in QEMU with a small initramfs that
// holds kubeboot, the kernel modules it needs and a minimal init
// (./guestinit), and checks what kubeboot did inside: the fast tier of the
// first-boot tests. setup.sh installs QEMU and unpacks the kernel.
package qemu

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Kernel is a kernel unpacked from Debian's .deb by setup.sh.
type Kernel struct {
	// Tree is the unpacked package: boot/vmlinuz-<Release>, lib/modules/<Release>.
	Tree    string
	Release string
}

// FindKernel reads the tree setup.sh unpacked.
func FindKernel(tree string) (Kernel, error) {
	entries, err := os.ReadDir(filepath.Join(tree, "lib/modules"))
	if err != nil {
		return Kernel{}, err
	}
	for _, e := range entries {
		k := Kernel{Tree: tree, Release: e.Name()}
		if _, err := os.Stat(k.Image()); err == nil {
			if _, err := os.Stat(filepath.Join(k.ModulesDir(), "modules.dep")); err != nil {
				return Kernel{}, fmt.Errorf("%s: no modules.dep (run depmod -b %s %s)", k.ModulesDir(), tree, k.Release)
			}
			return k, nil
		}
	}
	return Kernel{}, fmt.Errorf("%s: no boot/vmlinuz-<release> with lib/modules/<release>", tree)
}

func (k Kernel) Image() string      { return filepath.Join(k.Tree, "boot", "vmlinuz-"+k.Release) }
func (k Kernel) ModulesDir() string { return filepath.Join(k.Tree, "lib/modules", k.Release) }

// modIndex is the part of a modules directory's index that picks files:
// modules.dep, exact aliases, softdeps and built-ins.
type modIndex struct {
	files   map[string]string   // module name → path relative to the modules dir
	deps    map[string][]string // module name → dependency names
	aliases map[string][]string // exact alias → module names
	soft    map[string][]string // module name → softdep names (pre and post)
	builtin map[string]bool
}

func normName(s string) string { return strings.ReplaceAll(s, "-", "_") }

func modFileName(p string) string {
	b := path.Base(p)
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if n, ok := strings.CutSuffix(b, ext); ok {
			return normName(n)
		}
	}
	return ""
}

func readModIndex(dir string) (*modIndex, error) {
	ix := &modIndex{files: map[string]string{}, deps: map[string][]string{}, aliases: map[string][]string{}, soft: map[string][]string{}, builtin: map[string]bool{}}
	read := func(name string, required bool, each func(fields []string, line string)) error {
		f, err := os.Open(filepath.Join(dir, name))
		if os.IsNotExist(err) && !required {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "#") {
				continue
			}
			if fields := strings.Fields(line); len(fields) > 0 {
				each(fields, line)
			}
		}
		return sc.Err()
	}
	err := read("modules.dep", true, func(_ []string, line string) {
		file, deps, ok := strings.Cut(line, ":")
		if !ok {
			return
		}
		name := modFileName(file)
		ix.files[name] = strings.TrimSpace(file)
		for _, d := range strings.Fields(deps) {
			ix.deps[name] = append(ix.deps[name], modFileName(d))
		}
	})
	if err != nil {
		return nil, err
	}
	if err := read("modules.alias", false, func(f []string, _ string) {
		if len(f) == 3 && f[0] == "alias" && !strings.ContainsAny(f[1], "*?[") {
			ix.aliases[normName(f[1])] = append(ix.aliases[normName(f[1])], normName(f[2]))
		}
	}); err != nil {
		return nil, err
	}
	if err := read("modules.softdep", false, func(f []string, _ string) {
		if len(f) < 2 || f[0] != "softdep" {
			return
		}
		for _, s := range f[2:] {
			if s != "pre:" && s != "post:" {
				ix.soft[normName(f[1])] = append(ix.soft[normName(f[1])], normName(s))
			}
		}
	}); err != nil {
		return nil, err
	}
	if err := read("modules.builtin", false, func(f []string, _ string) {
		ix.builtin[modFileName(f[0])] = true
	}); err != nil {
		return nil, err
	}
	return ix, nil
}

// resolve maps a module name or exact alias to module names with files.
func (ix *modIndex) resolve(name string) []string {
	n := normName(name)
	if _, ok := ix.files[n]; ok {
		return []string{n}
	}
	var out []string
	for _, m := range ix.aliases[n] {
		if _, ok := ix.files[m]; ok {
			out = append(out, m)
		}
	}
	return out
}

// closure returns the module files (relative to the modules directory)
// that loading names needs: the modules, their modules.dep dependencies
// and their softdeps, each alias expanded to every module behind it (so
// crc32c brings both crc32c_intel and crc32c_generic). Built-in modules
// need no file.
func (ix *modIndex) closure(names []string) ([]string, error) {
	seen := map[string]bool{}
	var visit func(n string)
	visit = func(n string) {
		if seen[n] {
			return
		}
		seen[n] = true
		for _, d := range ix.deps[n] {
			visit(d)
		}
		for _, s := range ix.soft[n] {
			for _, m := range ix.resolve(s) {
				visit(m)
			}
		}
	}
	var missing []string
	for _, name := range names {
		mods := ix.resolve(name)
		if len(mods) == 0 {
			if !ix.builtin[normName(name)] {
				missing = append(missing, name)
			}
			continue
		}
		for _, m := range mods {
			visit(m)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("modules not in modules.dep, modules.alias or modules.builtin: %s", strings.Join(missing, ", "))
	}
	var files []string
	for n := range seen {
		files = append(files, ix.files[n])
	}
	sort.Strings(files)
	return files, nil
}

// StageModules copies the modules that names need (see closure) into
// stage/lib/modules/<release>, decompressed (a compressed module costs
// seconds under TCG), with the kernel's modules.builtin*, and runs depmod
// on the reduced tree. It returns the module files copied.
func StageModules(k Kernel, names []string, stage string) ([]string, error) {
	ix, err := readModIndex(k.ModulesDir())
	if err != nil {
		return nil, fmt.Errorf("modules index: %w", err)
	}
	files, err := ix.closure(names)
	if err != nil {
		return nil, err
	}
	dst := filepath.Join(stage, "lib/modules", k.Release)
	var copied []string
	for _, rel := range files {
		out := rel
		for _, ext := range []string{".xz", ".zst", ".gz"} {
			out = strings.TrimSuffix(out, ext)
		}
		if err := copyModule(filepath.Join(k.ModulesDir(), rel), filepath.Join(dst, out)); err != nil {
			return nil, err
		}
		copied = append(copied, out)
	}
	for _, name := range []string{"modules.builtin", "modules.builtin.modinfo", "modules.order"} {
		data, err := os.ReadFile(filepath.Join(k.ModulesDir(), name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if name == "modules.order" {
			data = keepLines(data, copied)
		}
		if err := os.WriteFile(filepath.Join(dst, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	depmod, err := exec.LookPath("depmod")
	if err != nil {
		depmod = "/usr/sbin/depmod"
	}
	if out, err := exec.Command(depmod, "-b", stage, k.Release).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("depmod -b %s %s: %v\n%s", stage, k.Release, err, out)
	}
	return copied, nil
}

// keepLines keeps the lines of data that are in keep.
func keepLines(data []byte, keep []string) []byte {
	set := map[string]bool{}
	for _, k := range keep {
		set[k] = true
	}
	var out []byte
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if set[strings.TrimSpace(line)] {
			out = append(out, line...)
		}
	}
	return out
}

func copyModule(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(src, ".xz"):
		if r, err = xz.NewReader(f); err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
	case strings.HasSuffix(src, ".zst"):
		d, err := zstd.NewReader(f)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		defer d.Close()
		r = d
	case strings.HasSuffix(src, ".gz"):
		if r, err = gzip.NewReader(f); err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return fmt.Errorf("%s: %w", src, err)
	}
	return out.Close()
}

// WriteInitramfs writes the tree under stage as a gzip-compressed newc
// cpio archive, every entry owned by root, plus /dev/console (the kernel
// opens it for init's standard streams before anything is mounted).
func WriteInitramfs(stage, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	w := &cpioWriter{w: gz, ino: 1}
	err = filepath.WalkDir(stage, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(stage, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			return w.entry(rel, 0o040000|uint32(fi.Mode().Perm()), 0, 0, nil)
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return w.entry(rel, 0o100000|uint32(fi.Mode().Perm()), 0, 0, data)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return w.entry(rel, 0o120777, 0, 0, []byte(target))
		}
		return fmt.Errorf("%s: unsupported file type %s", p, fi.Mode().Type())
	})
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(stage, "dev")); err != nil {
		if err := w.entry("dev", 0o040755, 0, 0, nil); err != nil {
			return err
		}
	}
	if err := w.entry("dev/console", 0o020600, 5, 1, nil); err != nil {
		return err
	}
	if err := w.entry("TRAILER!!!", 0, 0, 0, nil); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	return f.Close()
}

// cpioWriter writes the "newc" format the kernel unpacks.
type cpioWriter struct {
	w   io.Writer
	ino uint32
	n   int64
}

func (c *cpioWriter) entry(name string, mode, rmajor, rminor uint32, data []byte) error {
	var hdr bytes.Buffer
	nlink := uint32(1)
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	fmt.Fprintf(&hdr, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmajor, rminor, len(name)+1, 0)
	c.ino++
	hdr.WriteString(name)
	hdr.WriteByte(0)
	pad(&hdr, int64(hdr.Len()))
	hdr.Write(data)
	pad(&hdr, int64(len(data)))
	n, err := c.w.Write(hdr.Bytes())
	c.n += int64(n)
	return err
}

// pad aligns to 4 bytes: the header plus name, and the data, each end on
// a 4-byte boundary (the header is 110 bytes, so name padding counts it).
func pad(b *bytes.Buffer, n int64) {
	for ; n%4 != 0; n++ {
		b.WriteByte(0)
	}
}

// xenElfNotePhys32Entry is the ELF note that makes a vmlinux bootable
// through PVH (XEN_ELFNOTE_PHYS32_ENTRY).
const xenElfNotePhys32Entry = 18

// PVHImage returns the kernel as an uncompressed ELF vmlinux that QEMU
// boots directly through PVH, extracted from the bzImage once and kept
// beside it (or under fallbackDir when the tree is read-only). Under TCG
// this skips the bzImage's own decompression, about 4 s of each boot. It
// returns an error when the kernel has no PVH entry point; callers then
// boot the bzImage.
func (k Kernel) PVHImage(fallbackDir string) (string, error) {
	name := "vmlinux-" + k.Release + ".pvh"
	for _, p := range []string{filepath.Join(k.Tree, "boot", name), filepath.Join(fallbackDir, name)} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	img, err := os.ReadFile(k.Image())
	if err != nil {
		return "", err
	}
	elfData, err := bzImagePayload(img)
	if err != nil {
		return "", fmt.Errorf("%s: %w", k.Image(), err)
	}
	if err := checkPVH(elfData); err != nil {
		return "", fmt.Errorf("%s: %w", k.Image(), err)
	}
	var werr error
	for _, dir := range []string{filepath.Join(k.Tree, "boot"), fallbackDir} {
		p := filepath.Join(dir, name)
		if werr = writeAtomic(p, elfData); werr == nil {
			return p, nil
		}
	}
	return "", werr
}

// writeAtomic writes a file that concurrent readers see whole or not at all.
func writeAtomic(p string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), filepath.Base(p)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// bzImagePayload decompresses the kernel ELF a bzImage carries: the setup
// header gives where the protected-mode code starts (setup_sects) and,
// from there, the compressed payload's offset and length.
func bzImagePayload(img []byte) ([]byte, error) {
	if len(img) < 0x250 || string(img[0x202:0x206]) != "HdrS" {
		return nil, fmt.Errorf("not a bzImage")
	}
	setupSects := int(img[0x1f1])
	if setupSects == 0 {
		setupSects = 4
	}
	le32 := func(off int) int {
		return int(img[off]) | int(img[off+1])<<8 | int(img[off+2])<<16 | int(img[off+3])<<24
	}
	start := (setupSects+1)*512 + le32(0x248)
	end := start + le32(0x24c)
	if start <= 0 || end > len(img) || start >= end {
		return nil, fmt.Errorf("payload %d..%d outside the image", start, end)
	}
	payload := img[start:end]
	var r io.Reader
	switch {
	case bytes.HasPrefix(payload, []byte("\xfd7zXZ\x00")):
		// The kernel's xz has the x86 BCJ filter, which Go's xz readers
		// lack: xz-utils decompresses it.
		cmd := exec.Command("xz", "-dc", "--single-stream")
		cmd.Stdin = bytes.NewReader(payload)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("xz -dc: %v: %s", err, stderr.Bytes())
		}
		return out, nil
	case bytes.HasPrefix(payload, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(bytes.NewReader(payload))
		if err != nil {
			return nil, err
		}
		defer z.Close()
		r = z
	case bytes.HasPrefix(payload, []byte{0x1f, 0x8b}):
		g, err := gzip.NewReader(bytes.NewReader(payload))
		if err != nil {
			return nil, err
		}
		g.Multistream(false)
		r = g
	default:
		return nil, fmt.Errorf("payload compressed with a format this test does not read (magic % x)", payload[:min(6, len(payload))])
	}
	return io.ReadAll(r)
}

// checkPVH tells whether an ELF kernel has the PVH entry note.
func checkPVH(data []byte) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return err
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		notes, err := io.ReadAll(p.Open())
		if err != nil {
			return err
		}
		for len(notes) >= 12 {
			nameSize := int(f.ByteOrder.Uint32(notes[0:4]))
			descSize := int(f.ByteOrder.Uint32(notes[4:8]))
			typ := f.ByteOrder.Uint32(notes[8:12])
			nameEnd := 12 + (nameSize+3)&^3
			descEnd := nameEnd + (descSize+3)&^3
			if descEnd > len(notes) {
				break
			}
			if typ == xenElfNotePhys32Entry && strings.TrimRight(string(notes[12:12+nameSize]), "\x00") == "Xen" {
				return nil
			}
			notes = notes[descEnd:]
		}
	}
	return fmt.Errorf("no PVH entry point (the kernel lacks CONFIG_PVH)")
}

// KernelTree is where setup.sh unpacks Debian's kernel: KUBEBOOT_QEMU_KERNEL,
// else qemu/kernel/current under the cache (KUBEBOOT_CACHE, default
// ~/.cache/kubeboot). explicit tells whether the variable named it.
func KernelTree() (tree string, explicit bool) {
	if tree := os.Getenv("KUBEBOOT_QEMU_KERNEL"); tree != "" {
		return tree, true
	}
	cache := os.Getenv("KUBEBOOT_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache/kubeboot")
	}
	return filepath.Join(cache, "qemu/kernel/current"), false
}
