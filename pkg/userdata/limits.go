package userdata

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"strings"
)

// Limits that bound what untrusted userdata can make kubeboot do.
const (
	// MaxUserdata bounds one piece of userdata as read or fetched.
	MaxUserdata = 32 << 20
	// MaxDecompressed bounds what all decompression in one userdata yields
	// together, so a gzip bomb fails fast.
	MaxDecompressed = 64 << 20
	// MaxMultipartDepth bounds nested MIME multipart messages.
	MaxMultipartDepth = 4
	// MaxConfigDepth bounds Ignition config merge/replace chains.
	MaxConfigDepth = 4
)

// budget counts decompressed bytes across one userdata.
type budget struct {
	left int64
}

func newBudget() *budget { return &budget{left: MaxDecompressed} }

// readLimited reads r up to max bytes; more is an error naming what.
func readLimited(r io.Reader, max int64, what string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d MiB", what, max>>20)
	}
	return data, nil
}

// isGzip tells whether data starts with the gzip magic number.
func isGzip(data []byte) bool {
	return len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b
}

// gunzip decompresses data, charging b; past its budget it fails.
func (b *budget) gunzip(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, b.left+1))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if int64(len(out)) > b.left {
		return nil, fmt.Errorf("gzip: decompressed data exceeds %d MiB", MaxDecompressed>>20)
	}
	b.left -= int64(len(out))
	return out, nil
}

// checkPath accepts a clean absolute host path with no ".." element.
func checkPath(p string) error {
	if p == "" {
		return fmt.Errorf("empty path")
	}
	if strings.ContainsRune(p, 0) {
		return fmt.Errorf("path %q: contains a NUL byte", p)
	}
	if !path.IsAbs(p) {
		return fmt.Errorf("path %q: not absolute", p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Errorf("path %q: escapes the root (..)", p)
		}
	}
	if path.Clean(p) != p {
		return fmt.Errorf("path %q: not clean (want %q)", p, path.Clean(p))
	}
	if p == "/" {
		return fmt.Errorf("path %q: is the root", p)
	}
	return nil
}

// checkID accepts a numeric user or group ID.
func checkID(kind string, id int) error {
	if id < 0 || id > 1<<32-2 {
		return fmt.Errorf("%s %d: not a valid ID", kind, id)
	}
	return nil
}
