package rootfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Writer writes Files under Root atomically: write a temporary file in the
// same directory, fsync it, rename it over the target, fsync the directory.
// A crash therefore leaves either the old or the new file, never a torn one.
type Writer struct {
	Root string
}

// Result tells what Write did with one file.
type Result int

const (
	Unchanged Result = iota
	Created
	Updated
)

func (r Result) String() string {
	switch r {
	case Created:
		return "created"
	case Updated:
		return "updated"
	}
	return "unchanged"
}

// HostPath maps an absolute host path to its place under the root.
func (w Writer) HostPath(p string) string {
	root := w.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, Clean(p))
}

// Write writes every file and reports per path what happened. Files whose
// contents and mode already match are left alone so that a re-run changes
// nothing, not even modification times.
//
// Each file is synced before its rename; each directory is synced once
// after all renames into it, which makes a batch durable at the cost of
// one directory sync per directory rather than per file.
func (w Writer) Write(files []File) (map[string]Result, error) {
	results := make(map[string]Result, len(files))
	dirs := map[string]bool{}
	for _, f := range files {
		r, err := w.writeFile(f, dirs)
		if err != nil {
			return results, err
		}
		results[f.Path] = r
	}
	for dir := range dirs {
		if err := syncDir(dir); err != nil {
			return results, fmt.Errorf("sync %s: %w", dir, err)
		}
	}
	return results, nil
}

// WriteFile writes one file durably; see Write.
func (w Writer) WriteFile(f File) (Result, error) {
	res, err := w.Write([]File{f})
	return res[f.Path], err
}

func (w Writer) writeFile(f File, dirs map[string]bool) (Result, error) {
	target := w.HostPath(f.Path)
	if err := w.checkInsideRoot(target); err != nil {
		return Unchanged, err
	}
	mode := f.Mode.Perm()
	if mode == 0 {
		mode = 0o644
	}
	result := Created
	if st, err := os.Lstat(target); err == nil {
		if st.Mode().Type() == fs.ModeSymlink {
			return Unchanged, fmt.Errorf("write %s: refusing to write through a symbolic link", f.Path)
		}
		old, rerr := os.ReadFile(target)
		if rerr == nil && bytes.Equal(old, f.Data) {
			if st.Mode().Perm() == mode {
				return Unchanged, nil
			}
			if err := os.Chmod(target, mode); err != nil {
				return Unchanged, fmt.Errorf("write %s: %w", f.Path, err)
			}
			return Updated, nil
		}
		result = Updated
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Unchanged, fmt.Errorf("write %s: %w", f.Path, err)
	}
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, dirMode(f)); err != nil {
		return Unchanged, fmt.Errorf("write %s: %w", f.Path, err)
	}
	if err := atomicWrite(dir, target, f.Data, mode); err != nil {
		return Unchanged, fmt.Errorf("write %s: %w", f.Path, err)
	}
	dirs[dir] = true
	return result, nil
}

// dirMode keeps directories that hold secrets closed to other users.
func dirMode(f File) fs.FileMode {
	if f.Secret || f.Mode.Perm()&0o077 == 0 {
		return 0o700
	}
	return 0o755
}

func atomicWrite(dir, target string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	// Chmod before writing so secrets are never readable by others, not even briefly.
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, target); err != nil {
		return err
	}
	ok = true
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (w Writer) checkInsideRoot(target string) error {
	root := filepath.Clean(w.Root)
	if w.Root == "" || root == "/" {
		return nil
	}
	if target != root && !strings.HasPrefix(target, root+string(filepath.Separator)) {
		return fmt.Errorf("write %s: path escapes root %s", target, root)
	}
	return nil
}

// Remove deletes a host path under the root; a missing path is not an error.
func (w Writer) Remove(p string) error {
	if err := os.Remove(w.HostPath(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// ReadFile reads a host path under the root.
func (w Writer) ReadFile(p string) ([]byte, error) {
	return os.ReadFile(w.HostPath(p))
}

// FS gives read access to the host below the root, for renderers that must
// reuse what already exists (keys, certificates, encryption keys).
func (w Writer) FS() fs.FS {
	root := w.Root
	if root == "" {
		root = "/"
	}
	return os.DirFS(root)
}

// RemoveAll deletes a host path under the root and everything below it;
// a missing path is not an error. A directory that is a mount point (etcd's
// data on its own disk, say) is emptied and kept.
func (w Writer) RemoveAll(p string) error {
	if Clean(p) == "/" {
		return fmt.Errorf("refusing to remove the root")
	}
	target := w.HostPath(p)
	err := os.RemoveAll(target)
	if err == nil || !errors.Is(err, syscall.EBUSY) {
		return err
	}
	entries, rerr := os.ReadDir(target)
	if rerr != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(target, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
