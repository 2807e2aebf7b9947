package userdata

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/kubeboot/kubeboot/pkg/rootfs"
)

// UnitDir is where units and drop-ins from userdata go.
const UnitDir = "/etc/systemd/system"

// Apply writes what r asks for under w's root, in Ignition's order:
// directories, files, links, then systemd units and drop-ins (masks are
// links to /dev/null), then SSH authorized keys. Paths are resolved inside
// the root (symbolic links in parent directories are followed as the host
// would, and none may lead out of the root).
//
// Everything that can be checked without writing is checked first: paths
// resolve, nothing is in the way of an entry without overwrite, the users
// whose keys are authorized exist. A conflict therefore writes nothing.
//
// Apply does not enable or disable units: the caller does, through
// systemd, for the units whose Enabled is set (see UnitStates).
func (r *Result) Apply(w rootfs.Writer) error {
	p, err := r.plan(w)
	if err != nil {
		return fmt.Errorf("userdata: %s: %w", r.Source, err)
	}
	if err := p.write(w); err != nil {
		return fmt.Errorf("userdata: %s: %w", r.Source, err)
	}
	return nil
}

// UnitStates lists the units to enable and to disable.
func (r *Result) UnitStates() (enable, disable []string) {
	for _, u := range r.Units {
		if u.Enabled == nil {
			continue
		}
		if *u.Enabled {
			enable = append(enable, u.Name)
		} else {
			disable = append(disable, u.Name)
		}
	}
	return enable, disable
}

type plan struct {
	dirs    []Directory
	files   []File
	links   []Link
	units   []File // unit files and drop-ins
	removes []string
	masks   []Link
	keys    []File
	chowns  map[string]rootfs.Owner
}

func (r *Result) plan(w rootfs.Writer) (*plan, error) {
	p := &plan{chowns: map[string]rootfs.Owner{}}
	resolve := func(what, host string) (string, os.FileInfo, error) {
		resolved, err := w.Resolve(host)
		if err != nil {
			return "", nil, fmt.Errorf("%s %s: %w", what, host, err)
		}
		st, err := os.Lstat(w.HostPath(resolved))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", nil, fmt.Errorf("%s %s: %w", what, host, err)
		}
		return resolved, st, nil
	}
	dirs := append([]Directory(nil), r.Directories...)
	sort.SliceStable(dirs, func(i, j int) bool {
		return strings.Count(dirs[i].Path, "/") < strings.Count(dirs[j].Path, "/")
	})
	for _, d := range dirs {
		resolved, st, err := resolve("directory", d.Path)
		if err != nil {
			return nil, err
		}
		if st != nil && !st.IsDir() && !d.Overwrite {
			return nil, fmt.Errorf("directory %s: a non-directory is in the way and overwrite is false", d.Path)
		}
		d.Path = resolved
		p.dirs = append(p.dirs, d)
	}
	for _, f := range r.Files {
		resolved, st, err := resolve("file", f.Path)
		if err != nil {
			return nil, err
		}
		if st != nil {
			if st.IsDir() {
				return nil, fmt.Errorf("file %s: a directory is in the way", f.Path)
			}
			if f.HasContents && !f.Overwrite {
				return nil, fmt.Errorf("file %s: exists and overwrite is false", f.Path)
			}
		}
		f.Path = resolved
		p.files = append(p.files, f)
	}
	for _, l := range r.Links {
		resolved, st, err := resolve("link", l.Path)
		if err != nil {
			return nil, err
		}
		if st != nil {
			if st.IsDir() {
				return nil, fmt.Errorf("link %s: a directory is in the way", l.Path)
			}
			same := false
			if st.Mode().Type() == fs.ModeSymlink && !l.Hard {
				cur, _ := os.Readlink(w.HostPath(resolved))
				same = cur == l.Target
			}
			if !same && !l.Overwrite {
				return nil, fmt.Errorf("link %s: exists and overwrite is false", l.Path)
			}
		}
		if l.Hard {
			if l.Target, err = w.Resolve(l.Target); err != nil {
				return nil, fmt.Errorf("link %s: target: %w", l.Path, err)
			}
		}
		l.Path = resolved
		p.links = append(p.links, l)
	}
	for _, u := range r.Units {
		unit := path.Join(UnitDir, u.Name)
		if u.Mask {
			resolved, _, err := resolve("unit", unit)
			if err != nil {
				return nil, err
			}
			p.masks = append(p.masks, Link{Link: rootfs.Link{Path: resolved, Target: "/dev/null"}, Overwrite: true})
		} else if u.Contents != nil {
			resolved, st, err := resolve("unit", unit)
			if err != nil {
				return nil, err
			}
			if st != nil && st.IsDir() {
				return nil, fmt.Errorf("unit %s: a directory is in the way", u.Name)
			}
			p.units = append(p.units, File{File: rootfs.File{Path: resolved, Mode: 0o644, Data: []byte(*u.Contents)}, HasContents: true, Overwrite: true})
		}
		for _, d := range u.Dropins {
			resolved, _, err := resolve("drop-in", path.Join(unit+".d", d.Name))
			if err != nil {
				return nil, err
			}
			if d.Contents == nil {
				p.removes = append(p.removes, resolved)
				continue
			}
			p.units = append(p.units, File{File: rootfs.File{Path: resolved, Mode: 0o644, Data: []byte(*d.Contents)}, HasContents: true, Overwrite: true})
		}
	}
	users := make([]string, 0, len(r.SSHAuthorizedKeys))
	for u := range r.SSHAuthorizedKeys {
		users = append(users, u)
	}
	sort.Strings(users)
	o := &owners{root: w.Root}
	for _, user := range users {
		e, ok := o.home(user)
		if !ok {
			return nil, fmt.Errorf("ssh authorized keys: user %q is not in the image's /etc/passwd (kubeboot creates no users)", user)
		}
		if e.Home == "" || !path.IsAbs(e.Home) {
			return nil, fmt.Errorf("ssh authorized keys: user %q has no home directory", user)
		}
		owner := rootfs.Owner{UID: e.UID, GID: e.GID}
		sshDir, _, err := resolve("ssh directory", path.Join(e.Home, ".ssh"))
		if err != nil {
			return nil, err
		}
		file, st, err := resolve("ssh keys", path.Join(e.Home, ".ssh", "authorized_keys"))
		if err != nil {
			return nil, err
		}
		var data []byte
		if st != nil {
			if !st.Mode().IsRegular() {
				return nil, fmt.Errorf("ssh keys %s: not a regular file", file)
			}
			if data, err = os.ReadFile(w.HostPath(file)); err != nil {
				return nil, fmt.Errorf("ssh keys %s: %w", file, err)
			}
		}
		have := map[string]bool{}
		for _, line := range strings.Split(string(data), "\n") {
			have[strings.TrimSpace(line)] = true
		}
		if len(data) > 0 && !strings.HasSuffix(string(data), "\n") {
			data = append(data, '\n')
		}
		for _, k := range r.SSHAuthorizedKeys[user] {
			if !have[k] {
				data = append(data, k+"\n"...)
				have[k] = true
			}
		}
		p.dirs = append(p.dirs, Directory{Directory: rootfs.Directory{Path: sshDir, Mode: 0o700}, Owner: &owner})
		p.keys = append(p.keys, File{File: rootfs.File{Path: file, Mode: 0o600, Data: data}, HasContents: true, Overwrite: true, Owner: &owner})
	}
	return p, nil
}

func (p *plan) write(w rootfs.Writer) error {
	for _, d := range p.dirs {
		if d.Overwrite {
			if st, err := os.Lstat(w.HostPath(d.Path)); err == nil && !st.IsDir() {
				if err := w.Remove(d.Path); err != nil {
					return err
				}
			}
		}
		if _, err := w.Dir(d.Directory); err != nil {
			return err
		}
		if err := chown(w, d.Path, d.Owner); err != nil {
			return err
		}
	}
	for _, f := range append(append(p.files, p.units...), p.keys...) {
		if err := writeFile(w, f); err != nil {
			return err
		}
	}
	for _, l := range append(p.links, p.masks...) {
		if _, err := w.Link(l.Link); err != nil {
			return err
		}
		if err := chown(w, l.Path, l.Owner); err != nil {
			return err
		}
	}
	for _, r := range p.removes {
		if err := w.Remove(r); err != nil {
			return fmt.Errorf("remove %s: %w", r, err)
		}
	}
	return nil
}

func writeFile(w rootfs.Writer, f File) error {
	target := w.HostPath(f.Path)
	st, err := os.Lstat(target)
	exists := err == nil
	data := f.Data
	if !f.HasContents && exists && st.Mode().IsRegular() {
		if data, err = os.ReadFile(target); err != nil {
			return fmt.Errorf("file %s: %w", f.Path, err)
		}
	}
	if len(f.Append) > 0 {
		data = append(append([]byte(nil), data...), f.Append...)
	}
	if exists && st.Mode().Type() == fs.ModeSymlink {
		// Overwrite was checked in plan: replace the link, not its target.
		if err := w.Remove(f.Path); err != nil {
			return err
		}
	}
	if _, err := w.WriteFile(rootfs.File{Path: f.Path, Mode: f.Mode, Data: data, Secret: f.Secret}); err != nil {
		return err
	}
	if f.Mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		if err := w.Chmod(f.Path, f.Mode); err != nil {
			return err
		}
	}
	return chown(w, f.Path, f.Owner)
}

func chown(w rootfs.Writer, p string, o *rootfs.Owner) error {
	if o == nil {
		return nil
	}
	return w.Chown(p, *o)
}
