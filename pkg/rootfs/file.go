// Package rootfs is the one place where kubeboot writes to the host file
// system. Every renderer returns Files; a Writer puts them under a root
// prefix so that tests and --dry-run never touch the real host.
package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"path"
	"sort"
)

// File is one rendered file: an absolute host path, its mode and contents.
type File struct {
	Path string
	Mode fs.FileMode
	Data []byte
	// Secret marks contents that must never be printed or logged.
	Secret bool
}

// Digest is the hex SHA-256 of the file's contents.
func (f File) Digest() string {
	sum := sha256.Sum256(f.Data)
	return hex.EncodeToString(sum[:])
}

// Sorted returns files ordered by path, which makes output and hashes stable.
func Sorted(files []File) []File {
	out := append([]File(nil), files...)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Clean normalises a host path; relative paths are made absolute.
func Clean(p string) string {
	return path.Clean("/" + p)
}

// ReadFile reads a host path from a file system rooted at the host's root
// (as Writer.FS returns); it accepts absolute host paths.
func ReadFile(fsys fs.FS, p string) ([]byte, error) {
	return fs.ReadFile(fsys, Clean(p)[1:])
}
