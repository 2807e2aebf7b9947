package host

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestKernelLoader runs the real loader with the two syscalls replaced:
// a plain .ko goes to finit_module, a compressed one is decompressed by
// kmodule's readers and goes to init_module.
func TestKernelLoader(t *testing.T) {
	image := []byte("\x7fELF module image bytes")
	tests := []struct {
		file      string
		finitErr  error
		wantFinit bool
		wantInit  bool
		err       string
	}{
		{file: "a.ko", wantFinit: true},
		{file: "a.ko", finitErr: unix.EPERM, wantFinit: true, err: "operation not permitted"},
		{file: "a.ko", finitErr: unix.ENOSYS, wantFinit: true, wantInit: true}, // no finit_module: fall back
		{file: "a.ko.zst", wantInit: true},
		{file: "a.ko.xz", wantInit: true},
		{file: "a.ko.gz", wantInit: true},
		{file: "a.ko.bz2", err: "decompress"},
	}
	for _, tc := range tests {
		name := tc.file
		if tc.finitErr != nil {
			name += "/" + unix.ErrnoName(tc.finitErr.(unix.Errno))
		}
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), tc.file)
			data := image
			if filepath.Ext(tc.file) != ".bz2" {
				data = compress(t, tc.file, image)
			}
			writeFile(t, p, data)
			var finit, init bool
			var got []byte
			l := kernelLoader{
				finit: func(fd int, params string, flags int) error {
					finit = true
					if params != "a=1" || flags != 0 {
						t.Errorf("finit_module(%q, %d)", params, flags)
					}
					return tc.finitErr
				},
				init: func(img []byte, params string) error {
					init = true
					got = img
					if params != "a=1" {
						t.Errorf("init_module params %q", params)
					}
					return nil
				},
			}
			err := l.Load(p, "a=1")
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			if finit != tc.wantFinit || init != tc.wantInit {
				t.Errorf("finit_module called %v, init_module %v; want %v, %v", finit, init, tc.wantFinit, tc.wantInit)
			}
			if tc.wantInit && string(got) != string(image) {
				t.Errorf("init_module image %q, want %q", got, image)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		err := KernelLoader().Load(filepath.Join(t.TempDir(), "none.ko"), "")
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("error %v, want not exist", err)
		}
	})
}
