package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// A deb is one Debian package file, as apt's candidate version names it.
type deb struct {
	Pkg    string `json:"pkg"`
	File   string `json:"file"` // in the deb cache
	SHA256 string `json:"sha256"`
}

// fetchDebs returns the package files of apt's candidate versions of pkgs,
// downloading into dir (with `apt-get download`) those not there yet.
// Deciding needs no network: `apt-get download --print-uris` reads the
// local package lists, and while those and apt's configuration are
// unchanged the last answer is reused. With no lists yet, it runs
// `apt-get update` once.
func fetchDebs(ctx context.Context, dir string, pkgs []string) ([]deb, error) {
	memo := filepath.Join(dir, ".resolved.json")
	state := aptState(pkgs)
	debs, err := resolvedDebs(memo, state)
	if err != nil {
		debs, err = aptURIs(ctx, pkgs)
	}
	if err != nil {
		logf("debs: %v; running apt-get update", err)
		if uerr := command(ctx, "", "apt-get", "update").Run(); uerr != nil {
			return nil, fmt.Errorf("debs: %w (apt-get update: %v)", err, uerr)
		}
		if debs, err = aptURIs(ctx, pkgs); err != nil {
			return nil, fmt.Errorf("debs: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("debs: %w", err)
	}
	if b, err := json.Marshal(resolved{State: state, Debs: debs}); err == nil {
		os.WriteFile(memo, b, 0o644) // only a shortcut
	}
	var missing []deb
	var out []deb
	for _, d := range debs {
		d.File = filepath.Join(dir, d.File)
		out = append(out, d)
		if got, err := fileSHA256(d.File); err != nil || got != d.SHA256 {
			missing = append(missing, d)
		}
	}
	debs = out
	if len(missing) == 0 {
		return debs, nil
	}
	tmp, err := os.MkdirTemp(dir, ".download")
	if err != nil {
		return nil, fmt.Errorf("debs: %w", err)
	}
	defer os.RemoveAll(tmp)
	args := []string{"download"}
	if os.Geteuid() == 0 {
		// apt's _apt user cannot write to a root-owned cache.
		args = append(args, "-o", "APT::Sandbox::User=root")
	}
	var names []string
	for _, d := range missing {
		args = append(args, d.Pkg+"="+d.version())
		names = append(names, d.Pkg)
	}
	logf("debs: downloading %s", strings.Join(names, " "))
	cmd := command(ctx, tmp, "apt-get", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("debs: apt-get download: %w\n%s", err, out)
	}
	for _, d := range missing {
		got := filepath.Join(tmp, filepath.Base(d.File))
		sum, err := fileSHA256(got)
		if err != nil {
			return nil, fmt.Errorf("debs: %s: %w", d.Pkg, err)
		}
		if sum != d.SHA256 {
			return nil, fmt.Errorf("debs: %s: sha256 %s, apt says %s", filepath.Base(d.File), sum, d.SHA256)
		}
		if err := os.Rename(got, d.File); err != nil {
			return nil, fmt.Errorf("debs: %w", err)
		}
	}
	return debs, nil
}

// debPackages is every package the images take from Debian, once each,
// in the order the images name them.
func debPackages(ims []image) []string {
	var pkgs []string
	for _, im := range ims {
		for _, p := range im.debs {
			if !slices.Contains(pkgs, p) {
				pkgs = append(pkgs, p)
			}
		}
	}
	return pkgs
}

// resolved is apt's last answer and the state it was given in.
type resolved struct {
	State string `json:"state"`
	Debs  []deb  `json:"debs"`
}

func resolvedDebs(memo, state string) ([]deb, error) {
	b, err := os.ReadFile(memo)
	if err != nil {
		return nil, err
	}
	var r resolved
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r.State != state || len(r.Debs) == 0 {
		return nil, errors.New("apt's state changed")
	}
	return r.Debs, nil
}

// aptState fingerprints what apt's answer depends on: the packages asked
// for, the package lists, apt's configuration and dpkg's status (names,
// sizes and modification times, as apt checks its own cache). Asking apt
// costs about a second here, where it keeps no pkgcache.bin.
func aptState(pkgs []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%q\n", pkgs)
	for _, dir := range []string{"/var/lib/apt/lists", "/etc/apt", "/etc/apt/sources.list.d", "/etc/apt/preferences.d", "/etc/apt/apt.conf.d"} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if fi, err := e.Info(); err == nil {
				fmt.Fprintf(h, "%s/%s %d %d\n", dir, e.Name(), fi.Size(), fi.ModTime().UnixNano())
			}
		}
	}
	if fi, err := os.Stat("/var/lib/dpkg/status"); err == nil {
		fmt.Fprintf(h, "status %d %d\n", fi.Size(), fi.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// version is the package version in the file name apt chose
// (conntrack_1%3a1.4.7-1+b2_amd64.deb is 1:1.4.7-1+b2).
func (d deb) version() string {
	parts := strings.Split(filepath.Base(d.File), "_")
	if len(parts) < 3 {
		return ""
	}
	v, err := url.PathUnescape(parts[1])
	if err != nil {
		return parts[1]
	}
	return v
}

// aptURIs asks apt which file each package's candidate version is.
func aptURIs(ctx context.Context, pkgs []string) ([]deb, error) {
	out, err := command(ctx, "", "apt-get", append([]string{"download", "--print-uris"}, pkgs...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("apt-get download --print-uris: %w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, fmt.Errorf("apt-get download --print-uris: %w", err)
	}
	byPkg := map[string]deb{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		// 'URI' file size SHA256:hex
		f := strings.Fields(sc.Text())
		if len(f) != 4 || !strings.HasPrefix(f[3], "SHA256:") {
			continue
		}
		pkg, _, _ := strings.Cut(f[1], "_")
		byPkg[pkg] = deb{Pkg: pkg, File: f[1], SHA256: strings.TrimPrefix(f[3], "SHA256:")}
	}
	var debs []deb
	for _, p := range pkgs {
		d, ok := byPkg[p]
		if !ok {
			return nil, fmt.Errorf("apt-get download --print-uris: no file for %s", p)
		}
		debs = append(debs, d)
	}
	return debs, nil
}

// dropped are the parts of the packages a container needs not: docs,
// manual pages, locales, shell completions, systemd units, glibc's iconv
// modules, and iptables-apply (a bash script; there is no shell).
var dropped = []string{
	"usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian",
	"usr/share/locale", "usr/share/bash-completion", "usr/share/bug",
	"usr/lib/systemd", "usr/lib/*/gconv",
	"usr/sbin/iptables-apply", "usr/sbin/ip6tables-apply",
}

// usrMerged are the top-level directories Debian 12 has as symlinks into
// /usr; the packages' files under them go under /usr.
var usrMerged = []string{"bin", "sbin", "lib", "lib64"}

// alternatives are what iptables's postinst registers with
// update-alternatives, resolved as Debian resolves them: to the choice of
// highest priority, the nft variants (20; the legacy ones have 10). Each
// command is a symlink to /etc/alternatives/<name>, which points at the
// variant, exactly as on an installed system.
var alternatives = [][2]string{
	{"iptables", "iptables-nft"}, {"iptables-restore", "iptables-nft-restore"}, {"iptables-save", "iptables-nft-save"},
	{"ip6tables", "ip6tables-nft"}, {"ip6tables-restore", "ip6tables-nft-restore"}, {"ip6tables-save", "ip6tables-nft-save"},
	{"arptables", "arptables-nft"}, {"arptables-restore", "arptables-nft-restore"}, {"arptables-save", "arptables-nft-save"},
	{"ebtables", "ebtables-nft"}, {"ebtables-restore", "ebtables-nft-restore"}, {"ebtables-save", "ebtables-nft-save"},
}

// addDebs extracts the packages with `dpkg -x` into work and adds their
// files to t: merged into /usr as on Debian 12, without what `dropped`
// names, with the alternatives set. Files that dpkg extracted as hard
// links stay hard links.
func addDebs(ctx context.Context, t tree, debs []deb, work string) error {
	root := filepath.Join(work, "debs")
	for _, d := range debs {
		if out, err := command(ctx, "", "dpkg", "-x", d.File, root).CombinedOutput(); err != nil {
			return fmt.Errorf("dpkg -x %s: %w\n%s", filepath.Base(d.File), err, out)
		}
	}
	type inode struct{ dev, ino uint64 }
	first := map[inode]string{}
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = usrMerge(filepath.ToSlash(rel))
		if isDropped(rel) {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		prev, had := t[rel]
		switch {
		case fi.IsDir():
			if !had {
				t.dir(rel, fi.Mode().Perm()|fi.Mode()&(fs.ModeSticky|fs.ModeSetgid))
			}
			return nil
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if had && (prev.mode&fs.ModeSymlink == 0 || prev.link != target) {
				return fmt.Errorf("%s: in two packages, differently", rel)
			}
			t.symlink(rel, target)
			return nil
		case fi.Mode().IsRegular():
			if had {
				return fmt.Errorf("%s: in two packages (or in /%s and /usr/%s)", rel, rel, rel)
			}
			st, ok := fi.Sys().(*syscall.Stat_t)
			if ok && st.Nlink > 1 {
				key := inode{uint64(st.Dev), st.Ino}
				if f, seen := first[key]; seen {
					t[rel] = entry{mode: fi.Mode().Perm(), link: f, hard: true}
					return nil
				}
				first[key] = rel
			}
			t[rel] = entry{mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), src: p}
			return nil
		default:
			return fmt.Errorf("%s: unexpected file type %s", rel, fi.Mode().Type())
		}
	})
	if err != nil {
		return fmt.Errorf("debs: %w", err)
	}
	for _, d := range usrMerged {
		t.symlink(d, "usr/"+d)
	}
	for _, a := range alternatives {
		if _, ok := t["usr/sbin/"+a[1]]; !ok {
			return fmt.Errorf("debs: alternative %s: no /usr/sbin/%s in the packages", a[0], a[1])
		}
		t.symlink("usr/sbin/"+a[0], "/etc/alternatives/"+a[0])
		t.symlink("etc/alternatives/"+a[0], "/usr/sbin/"+a[1])
	}
	return nil
}

func usrMerge(rel string) string {
	for _, d := range usrMerged {
		if rel == d || strings.HasPrefix(rel, d+"/") {
			return "usr/" + rel
		}
	}
	return rel
}

// isDropped reports whether rel or a directory above it is dropped.
func isDropped(rel string) bool {
	for p := rel; p != "." && p != "/"; p = path.Dir(p) {
		for _, pat := range dropped {
			if ok, _ := path.Match(pat, p); ok {
				return true
			}
		}
	}
	return false
}

// checkLinked checks that the tree is complete for its dynamically linked
// programs: every symlink resolves, and every ELF file finds its
// interpreter and each DT_NEEDED library where glibc's loader looks when
// there is no ld.so.cache (Debian's multiarch directories, then /lib and
// /usr/lib). It is ldd's answer, worked out without running anything.
func checkLinked(t tree, triplet string) error {
	dirs := []string{"lib/" + triplet, "usr/lib/" + triplet, "lib", "usr/lib"}
	var problems []string
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for p := range t {
			if !yield(p) {
				return
			}
		}
	}) {
		e := t[p]
		if e.mode&fs.ModeSymlink != 0 {
			if _, ok := t.resolve(p); !ok {
				problems = append(problems, fmt.Sprintf("%s -> %s: dangling symlink", p, e.link))
			}
			continue
		}
		if e.src == "" || e.hard || !e.mode.IsRegular() {
			continue
		}
		f, err := elf.Open(e.src)
		if err != nil {
			continue // not ELF
		}
		interp := ""
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				b, _ := io.ReadAll(prog.Open())
				interp = strings.TrimRight(string(b), "\x00")
			}
		}
		needed, err := f.ImportedLibraries()
		f.Close()
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		if interp != "" {
			if _, ok := t.resolve(interp); !ok {
				problems = append(problems, fmt.Sprintf("%s: interpreter %s is missing", p, interp))
			}
		}
		for _, lib := range needed {
			found := false
			for _, d := range dirs {
				if _, ok := t.resolve(d + "/" + lib); ok {
					found = true
					break
				}
			}
			if !found {
				problems = append(problems, fmt.Sprintf("%s needs %s: not in the layer (add the Debian package that ships it)", p, lib))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("layer is incomplete:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// debianTriplet is the multiarch directory name for a Go architecture.
func debianTriplet(goarch string) (string, error) {
	switch goarch {
	case "amd64":
		return "x86_64-linux-gnu", nil
	case "arm64":
		return "aarch64-linux-gnu", nil
	}
	return "", fmt.Errorf("no Debian multiarch triplet known for %s", goarch)
}

func fileSHA256(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
