package rootfs

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDirLinkResolve(t *testing.T) {
	root := t.TempDir()
	w := Writer{Root: root}
	if r, err := w.Dir(Directory{Path: "/var/lib/x", Mode: 0o700}); err != nil || r != Created {
		t.Fatalf("Dir = %v, %v", r, err)
	}
	if r, err := w.Dir(Directory{Path: "/var/lib/x", Mode: 0o700}); err != nil || r != Unchanged {
		t.Fatalf("Dir again = %v, %v", r, err)
	}
	if st, _ := os.Stat(filepath.Join(root, "var/lib/x")); st.Mode().Perm() != 0o700 {
		t.Errorf("mode %v", st.Mode())
	}
	if _, err := w.WriteFile(File{Path: "/usr/bin/tool", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if r, err := w.Link(Link{Path: "/bin", Target: "usr/bin"}); err != nil || r != Created {
		t.Fatalf("Link = %v, %v", r, err)
	}
	if r, err := w.Link(Link{Path: "/bin", Target: "usr/bin"}); err != nil || r != Unchanged {
		t.Fatalf("Link again = %v, %v", r, err)
	}
	if r, err := w.Link(Link{Path: "/tool-hard", Target: "/usr/bin/tool", Hard: true}); err != nil || r != Created {
		t.Fatalf("hard Link = %v, %v", r, err)
	}
	if got, err := w.Resolve("/bin/tool"); err != nil || got != "/usr/bin/tool" {
		t.Errorf("Resolve(/bin/tool) = %q, %v", got, err)
	}
	// An absolute link target is taken from the root, not the host.
	os.Symlink("/usr", filepath.Join(root, "u"))
	if got, err := w.Resolve("/u/bin/new"); err != nil || got != "/usr/bin/new" {
		t.Errorf("Resolve(/u/bin/new) = %q, %v", got, err)
	}
	os.Symlink("../../..", filepath.Join(root, "up"))
	if _, err := w.Resolve("/up/etc/passwd"); err == nil || !strings.Contains(err.Error(), "climbs above the root") {
		t.Errorf("Resolve through an escaping link: %v", err)
	}
	os.Symlink("loop", filepath.Join(root, "loop"))
	if _, err := w.Resolve("/loop/x"); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("Resolve through a loop: %v", err)
	}
	if _, err := w.Dir(Directory{Path: "/usr/bin/tool"}); err == nil {
		t.Error("Dir over a file")
	}
	if _, err := w.Link(Link{Path: "/var/lib/x", Target: "y"}); err == nil {
		t.Error("Link over a directory")
	}
	if err := w.Chown("/usr/bin/tool", Owner{UID: os.Getuid(), GID: os.Getgid()}); err != nil {
		t.Error(err)
	}
	if err := w.Chmod("/usr/bin/tool", fs.ModeSetuid|0o755); err != nil {
		t.Error(err)
	}
	if st, _ := os.Stat(filepath.Join(root, "usr/bin/tool")); st.Mode() != fs.ModeSetuid|0o755 {
		t.Errorf("mode after Chmod: %v", st.Mode())
	}
}
