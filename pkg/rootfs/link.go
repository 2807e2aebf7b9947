package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Owner is a numeric owner for a file, directory or link.
type Owner struct {
	UID, GID int
}

// Directory is a directory to create with a mode (and, in Writer.Dir,
// the mode is applied to an existing directory too).
type Directory struct {
	Path string
	Mode fs.FileMode
}

// Link is a symbolic link (Target is stored as given) or, when Hard is set,
// a hard link to the host path Target.
type Link struct {
	Path   string
	Target string
	Hard   bool
}

// Dir creates a directory and its parents under the root and sets its mode.
// A non-directory in its place is an error.
func (w Writer) Dir(d Directory) (Result, error) {
	target := w.HostPath(d.Path)
	if err := w.checkInsideRoot(target); err != nil {
		return Unchanged, err
	}
	mode := d.Mode.Perm()
	if mode == 0 {
		mode = 0o755
	}
	st, err := os.Lstat(target)
	switch {
	case err == nil && st.IsDir():
		if st.Mode().Perm() == mode {
			return Unchanged, nil
		}
		if err := os.Chmod(target, mode); err != nil {
			return Unchanged, fmt.Errorf("directory %s: %w", d.Path, err)
		}
		return Updated, nil
	case err == nil:
		return Unchanged, fmt.Errorf("directory %s: exists and is not a directory", d.Path)
	case !errors.Is(err, fs.ErrNotExist):
		return Unchanged, fmt.Errorf("directory %s: %w", d.Path, err)
	}
	if err := os.MkdirAll(target, mode); err != nil {
		return Unchanged, fmt.Errorf("directory %s: %w", d.Path, err)
	}
	// MkdirAll applies the umask; the mode asked for is the mode wanted.
	if err := os.Chmod(target, mode); err != nil {
		return Unchanged, fmt.Errorf("directory %s: %w", d.Path, err)
	}
	return Created, nil
}

// Link creates a symbolic or hard link under the root, replacing an
// existing link or file atomically (through a temporary name and rename).
// A directory in its place is an error.
func (w Writer) Link(l Link) (Result, error) {
	target := w.HostPath(l.Path)
	if err := w.checkInsideRoot(target); err != nil {
		return Unchanged, err
	}
	result := Created
	st, err := os.Lstat(target)
	switch {
	case err == nil && st.IsDir():
		return Unchanged, fmt.Errorf("link %s: a directory is in the way", l.Path)
	case err == nil:
		if !l.Hard && st.Mode().Type() == fs.ModeSymlink {
			if cur, rerr := os.Readlink(target); rerr == nil && cur == l.Target {
				return Unchanged, nil
			}
		}
		if l.Hard {
			if same, serr := w.sameFile(target, l.Target); serr == nil && same {
				return Unchanged, nil
			}
		}
		result = Updated
	case !errors.Is(err, fs.ErrNotExist):
		return Unchanged, fmt.Errorf("link %s: %w", l.Path, err)
	}
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Unchanged, fmt.Errorf("link %s: %w", l.Path, err)
	}
	tmp := filepath.Join(dir, "."+filepath.Base(target)+".tmp-link")
	_ = os.Remove(tmp)
	if l.Hard {
		src := w.HostPath(l.Target)
		if err := w.checkInsideRoot(src); err != nil {
			return Unchanged, err
		}
		err = os.Link(src, tmp)
	} else {
		err = os.Symlink(l.Target, tmp)
	}
	if err != nil {
		return Unchanged, fmt.Errorf("link %s: %w", l.Path, err)
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		return Unchanged, fmt.Errorf("link %s: %w", l.Path, err)
	}
	if err := syncDir(dir); err != nil {
		return Unchanged, fmt.Errorf("link %s: %w", l.Path, err)
	}
	return result, nil
}

func (w Writer) sameFile(a, hostTarget string) (bool, error) {
	sa, err := os.Lstat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Lstat(w.HostPath(hostTarget))
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}

// Chown sets the numeric owner of a host path under the root without
// following a symbolic link at that path.
func (w Writer) Chown(p string, o Owner) error {
	target := w.HostPath(p)
	if err := w.checkInsideRoot(target); err != nil {
		return err
	}
	if err := os.Lchown(target, o.UID, o.GID); err != nil {
		return fmt.Errorf("chown %s %d:%d: %w", p, o.UID, o.GID, err)
	}
	return nil
}

// maxSymlinks bounds symbolic link resolution, as the kernel does (ELOOP).
const maxSymlinks = 40

// Resolve maps a host path to the host path that the root actually holds
// it at, following symbolic links in its parent directories the way the
// host would see them once the root is its "/": absolute link targets are
// taken from the root, and no link may lead out of it. The last element is
// not followed. The result is a clean absolute host path (not prefixed with
// the root); use HostPath to reach it.
func (w Writer) Resolve(p string) (string, error) {
	p = Clean(p)
	if p == "/" {
		return p, nil
	}
	dir, last := path.Split(p)
	resolved, err := w.resolveDir(dir, 0)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", p, err)
	}
	return path.Join(resolved, last), nil
}

// resolveDir follows every element of the clean absolute host path dir.
func (w Writer) resolveDir(dir string, depth int) (string, error) {
	cur := "/"
	parts := strings.Split(strings.Trim(dir, "/"), "/")
	for i := 0; i < len(parts); i++ {
		part := parts[i]
		switch part {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, part)
		st, err := os.Lstat(w.HostPath(next))
		if errors.Is(err, fs.ErrNotExist) {
			// The rest will be created as directories.
			cur = next
			continue
		}
		if err != nil {
			return "", err
		}
		if st.Mode().Type() != fs.ModeSymlink {
			if !st.IsDir() {
				return "", fmt.Errorf("%s is not a directory", next)
			}
			cur = next
			continue
		}
		depth++
		if depth > maxSymlinks {
			return "", fmt.Errorf("too many levels of symbolic links at %s", next)
		}
		target, err := os.Readlink(w.HostPath(next))
		if err != nil {
			return "", err
		}
		if target, err = ResolveLinkTarget(next, target); err != nil {
			return "", err
		}
		// Continue from the link's target with the remaining elements.
		rest := append([]string{}, parts[i+1:]...)
		parts = append(strings.Split(strings.Trim(path.Clean(target), "/"), "/"), rest...)
		i = -1
		cur = "/"
	}
	return cur, nil
}

// ResolveLinkTarget tells where a symbolic link at host path link with the
// given target points, as a host path, or an error if a relative target
// climbs above the root.
func ResolveLinkTarget(link, target string) (string, error) {
	if path.IsAbs(target) {
		return path.Clean(target), nil
	}
	dir := path.Dir(Clean(link))
	depth := 0
	if dir != "/" {
		depth = strings.Count(dir, "/")
	}
	for _, part := range strings.Split(target, "/") {
		switch part {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return "", fmt.Errorf("link %s: target %q climbs above the root", link, target)
			}
		default:
			depth++
		}
	}
	return path.Join(dir, target), nil
}

// Chmod sets the mode of a host path under the root, special bits
// (setuid, setgid, sticky) included.
func (w Writer) Chmod(p string, mode fs.FileMode) error {
	target := w.HostPath(p)
	if err := w.checkInsideRoot(target); err != nil {
		return err
	}
	if err := os.Chmod(target, mode); err != nil {
		return fmt.Errorf("chmod %s %v: %w", p, mode, err)
	}
	return nil
}
