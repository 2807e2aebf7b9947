package host

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// Loader puts one module file into the running kernel. path is the file to
// read (already under the root prefix), params the module's parameters as
// modprobe.d "options" give them. An error from the kernel is returned as
// the unix.Errno it is, so that callers can name it.
type Loader interface {
	Load(path, params string) error
}

// KernelLoader loads modules into the running kernel: finit_module(2) for
// a plain .ko, and for .ko.zst, .ko.xz and .ko.gz u-root's kmodule
// decompression followed by init_module(2). It needs CAP_SYS_MODULE.
func KernelLoader() Loader {
	return kernelLoader{finit: unix.FinitModule, init: kmodule.Init}
}

// kernelLoader holds the two syscalls so that tests can see which one a
// file takes and with which bytes.
type kernelLoader struct {
	finit func(fd int, params string, flags int) error
	init  func(image []byte, params string) error
}

func (k kernelLoader) Load(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// kmodule.FileInit reads even a plain .ko into memory and uses
	// init_module; finit_module lets the kernel read the file itself, which
	// is what integrity policies (LoadPin, IMA) expect.
	if filepath.Ext(path) == ".ko" {
		err := k.finit(int(f.Fd()), params, 0)
		if !errors.Is(err, unix.ENOSYS) {
			return err
		}
	}
	image, err := readModule(f)
	if err != nil {
		return err
	}
	return k.init(image, params)
}

// readModule returns the module image in f, decompressed according to its
// suffix with kmodule's readers (.zst, .xz, .gz; .ko is read as is).
func readModule(f *os.File) ([]byte, error) {
	r, err := kmodule.CompressionReader(f)
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	// The zstd and pgzip readers run goroutines until closed.
	switch c := r.(type) {
	case *os.File:
	case interface{ Close() error }:
		defer c.Close()
	case interface{ Close() }:
		defer c.Close()
	}
	image, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	return image, nil
}

// KernelRelease is uname -r: the directory under /lib/modules that holds
// this kernel's modules.
func KernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}
