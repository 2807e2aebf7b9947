package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A check runs a command inside a layer and looks for want in its output.
type check struct {
	argv []string
	want string
}

// errNoChroot says the checks could not run here; the image is fine.
var errNoChroot = errors.New("not root")

// writeLayerChecked writes the layer as writeLayer does and, when it has
// checks and may chroot (root), unpacks the same tar stream into dir on
// the way and runs them there; otherwise it returns errNoChroot beside
// the layer.
func writeLayerChecked(ctx context.Context, t tree, file string, c compression, env []string, checks []check, dir string) (v1.Layer, error) {
	if len(checks) == 0 {
		return writeLayer(t, file, c)
	}
	if os.Geteuid() != 0 {
		l, err := writeLayer(t, file, c)
		if err != nil {
			return nil, err
		}
		return l, errNoChroot
	}
	pr, pw := io.Pipe()
	extracted := make(chan error, 1)
	go func() {
		err := extract(pr, dir)
		io.Copy(io.Discard, pr) // the tar's end padding, or all of it after an error
		extracted <- err
	}()
	l, err := writeLayer(t, file, c, pw)
	pw.Close()
	if xerr := <-extracted; err == nil && xerr != nil {
		err = fmt.Errorf("checks: unpack layer: %w", xerr)
	}
	if err != nil {
		return nil, err
	}
	return l, runChecks(ctx, env, checks, dir)
}

// runChecks runs each check in dir with the image's environment, chrooted
// into dir, as a container would run it (without namespaces:
// --version-style commands only).
func runChecks(ctx context.Context, env []string, checks []check, dir string) error {
	var failed []string
	for _, c := range checks {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		// The command is looked up in the chroot, through the image's PATH.
		cmd := exec.CommandContext(ctx, lookPathIn(dir, c.argv[0], env), c.argv[1:]...)
		cmd.Args[0] = c.argv[0]
		cmd.Env = env
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: dir}
		out, err := cmd.CombinedOutput()
		cancel()
		line := strings.Join(c.argv, " ")
		switch {
		case errors.Is(err, syscall.EPERM):
			return fmt.Errorf("%w: chroot: %v", errNoChroot, err)
		case err != nil:
			failed = append(failed, fmt.Sprintf("%s: %v: %s", line, err, firstLine(out)))
		case !strings.Contains(string(out), c.want):
			failed = append(failed, fmt.Sprintf("%s: %q, want %q in it", line, firstLine(out), c.want))
		default:
			logf("  ok: %s: %s", line, firstLine(out))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("checks in the layer failed:\n  %s", strings.Join(failed, "\n  "))
	}
	return nil
}

// lookPathIn finds name in the PATH of env under root and returns its
// path inside root; symlinks are left to the kernel to follow there.
func lookPathIn(root, name string, env []string) string {
	if strings.Contains(name, "/") {
		return name
	}
	pathList := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathList = v
		}
	}
	for _, d := range filepath.SplitList(pathList) {
		p := filepath.Join(d, name)
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			return p
		}
	}
	return "/" + name + " (not in PATH)"
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// extract writes a layer tar's files under dir: what the snapshotter
// would see, without whiteouts (the builder's layers have none).
func extract(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := clean(hdr.Name)
		if name == "" {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		mode := os.FileMode(hdr.Mode).Perm()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			if hdr.Mode&0o1000 != 0 {
				mode |= os.ModeSticky
			}
			if err := os.Chmod(p, mode); err != nil {
				return err
			}
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, p); err != nil {
				return err
			}
		case tar.TypeLink:
			if err := os.Link(filepath.Join(dir, filepath.FromSlash(clean(hdr.Linkname))), p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unexpected tar type %c", name, hdr.Typeflag)
		}
	}
}
